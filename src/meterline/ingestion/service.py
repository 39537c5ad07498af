"""Ingestion: validated events stored once, attributed, and folded into meter rollups.

``ingest`` is one batch in the caller's transaction: no per-event transaction. The
database decides duplicates (``INSERT … ON CONFLICT DO NOTHING`` on the unique
``(workspace, id)``), so retries and concurrent senders never count twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from meterline.alerts import service as alerts
from meterline.credits import ledger
from meterline.credits import service as credits
from meterline.credits.costs import Strategies
from meterline.customers import service as customers
from meterline.db import Database
from meterline.entitlements import counters
from meterline.errors import NotFound
from meterline.ingestion import stats
from meterline.ingestion.models import Event
from meterline.ingestion.schemas import EventRead, MeterProblem
from meterline.ingestion.validation import Rejection, ValidEvent, validate, validate_cloudevent
from meterline.kit import rawsql
from meterline.kit.decimals import display_decimal
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.periods import bucket_floor
from meterline.kit.time import utc_now
from meterline.meters import rollups
from meterline.meters.aggregation import (
    Contribution,
    MeterSpec,
    ValueProblem,
    contribute,
    counted,
    excluded_by,
    latest_key,
)
from meterline.workspaces import service as workspaces

MAX_BATCH = 10_000


MAX_WARNINGS = 100  # per answer: the count (`unmetered`) stays exact


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    unmetered: int = 0  # accepted events no meter counts
    # Accepted events some meter of their type could not count, and why.
    warnings: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rejected = sorted(self.rejections)
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(rejected),
            "errors": [r.as_dict() for r in rejected],
            "unmetered": self.unmetered,
            "warnings": [w.as_dict() for w in sorted(self.warnings)[:MAX_WARNINGS]],
        }


@dataclass(frozen=True)
class Policy:
    """A workspace's ingestion settings."""

    workspace_id: int
    auto_create_customers: bool
    lateness: timedelta


def policy(session: Session, workspace_id: int) -> Policy:
    workspace = workspaces.get(session, workspace_id)
    return Policy(
        workspace_id,
        workspace.auto_create_customers,
        timedelta(days=workspace.event_lateness_days),
    )


def check(
    raws: Sequence[Any], policy: Policy, *, cloudevents: bool = False, now: datetime | None = None
) -> tuple[list[ValidEvent], list[Rejection]]:
    """Validate each event on its own (no I/O)."""
    now = now or utc_now()
    checker = validate_cloudevent if cloudevents else validate
    valid: list[ValidEvent] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(raws):
        result = checker(raw, index, now, policy.lateness)
        (rejected if isinstance(result, Rejection) else valid).append(result)  # type: ignore[arg-type]
    return valid, rejected


def ingest(
    session: Session,
    policy: Policy,
    events: Sequence[ValidEvent],
    known: dict[str, tuple[int, int]] | None = None,
    specs: dict[str, list[MeterSpec]] | None = None,
    *,
    accounts: dict[int, credits.Account] | None = None,
    strategies: Strategies | None = None,
    reference_type: str = "event",
    watch: bool = True,
    decided: dict[str, Decimal] | None = None,
    rejected_before: int = 0,
) -> Outcome:
    """Store a batch of valid events; report accepted, duplicates and conflicts; charge
    the credit cost of new usage to the ledgers; have the usage alerts of customers
    whose limited usage changed evaluated (``watch``; a consume does it in line).

    A caller that has them already (a consume) passes ``known`` — customer external ids
    to (customer id, billing customer id) — ``specs``, the meters of the events' types
    (read in this transaction), and ``accounts`` (billing customers' terms); the rest
    is looked up here. ``strategies`` price features in Python (library mode).
    ``decided``: event id → the credits a decision priced it at (debited as such).
    ``rejected_before``: events of the same request refused by validation (counted in
    the hourly statistics with this batch)."""
    outcome = _store(
        session,
        policy,
        events,
        known,
        specs,
        accounts=accounts,
        strategies=strategies,
        reference_type=reference_type,
        watch=watch,
        decided=decided,
    )
    stats.add(
        session,
        policy.workspace_id,
        utc_now(),
        stats.Counts(
            outcome.accepted,
            outcome.duplicates,
            len(outcome.rejections) + rejected_before,
            outcome.unmetered,
        ),
    )
    return outcome


def _store(
    session: Session,
    policy: Policy,
    events: Sequence[ValidEvent],
    known: dict[str, tuple[int, int]] | None,
    specs: dict[str, list[MeterSpec]] | None,
    *,
    accounts: dict[int, credits.Account] | None,
    strategies: Strategies | None,
    reference_type: str,
    watch: bool,
    decided: dict[str, Decimal] | None,
) -> Outcome:

    outcome = Outcome()
    batch: dict[str, ValidEvent] = {}
    for event in events:
        if event.event_id is None:
            event.event_id = new_id("evt")
        first = batch.get(event.event_id)
        if first is None:
            batch[event.event_id] = event
        elif first.content_hash == event.content_hash:
            outcome.duplicates += 1
        else:
            outcome.rejections.append(_conflict(event))
    if not batch:
        return outcome
    named = {e.customer for e in batch.values()}
    if known is None or not named <= known.keys():
        known = customers.resolve_many(
            session, policy.workspace_id, named, create=policy.auto_create_customers
        )
    rows: list[dict[str, Any]] = []
    received = utc_now()
    for event_id, event in list(batch.items()):
        ids = known.get(event.customer)
        if ids is None:
            outcome.rejections.append(
                Rejection(event.index, "unknown_customer", f"no customer {event.customer!r}")
            )
            del batch[event_id]
            continue
        rows.append(
            {
                "workspace_id": policy.workspace_id,
                "event_id": event_id,
                "event_type": event.event_type,
                "customer_id": ids[0],
                "billing_customer_id": ids[1],
                "customer": event.customer,
                "subject": event.subject,
                "timestamp": event.timestamp,
                "received_at": received,
                "quantity": event.quantity,
                "properties": event.properties,
                "content_hash": event.content_hash,
                "index": event.index,
            }
        )
    if not rows:
        return outcome
    types = {row["event_type"] for row in rows}
    if specs is None or not types <= specs.keys():
        specs = rollups.specs_by_type(session, policy.workspace_id, types)
    rows = _judge(rows, specs, batch, outcome)
    if not rows:
        return outcome
    counters.guard(
        session,
        {
            (spec.id, row["billing_customer_id"])
            for row in rows
            for spec, _ in row["counts"]
            if spec.limited
        },
    )
    priced = {
        spec.id
        for found in specs.values()
        for spec in found
        if spec.credited or (strategies and spec.key in strategies)
    }
    if priced:  # wallets next in the lock order (before the events' own rows)
        ledger.open_books(
            session,
            policy.workspace_id,
            {
                row["billing_customer_id"]
                for row in rows
                if any(spec.id in priced for spec, _ in row["counts"])
            },
            received,
        )
    inserted = _insert(session, rows)
    outcome.accepted += len(inserted)
    _sort_out_repeats(session, policy.workspace_id, batch, inserted, outcome)
    _warn(rows, inserted, outcome)
    charges, watched = _fold(session, rows, inserted, priced, decided or {})
    if watch:
        alerts.watch(session, policy.workspace_id, watched, received)
    if charges:
        credits.charge(
            session,
            policy.workspace_id,
            charges,
            accounts if accounts is not None else {},
            received,
            strategies=strategies,
            reference_type=reference_type,
        )
    return outcome


def _judge(
    rows: list[dict[str, Any]],
    specs: dict[str, list[MeterSpec]],
    batch: dict[str, ValidEvent],
    outcome: Outcome,
) -> list[dict[str, Any]]:
    """What each event adds to each meter of its type (``counts``) and why a meter gets
    nothing (``problems``). An event that would add a negative value to a meter is
    refused whole: usage is never negative."""
    kept = []
    for row in rows:
        counts: list[tuple[MeterSpec, Contribution]] = []
        problems: list[tuple[str, str, str]] = []  # (meter, code, message)
        negative = None
        for spec in specs.get(row["event_type"], ()):
            try:
                found = contribute(spec, row["quantity"], row["properties"])
            except ValueProblem as problem:
                if problem.code == "negative_value":
                    negative = f"meter {spec.key!r}: {problem.message}"
                    break
                problems.append((spec.key, problem.code, problem.message))
                continue
            if found is None:
                reason = excluded_by(spec, row["properties"]) or "its filter excludes it"
                problems.append((spec.key, "filtered_out", reason))
            else:
                counts.append((spec, found))
        if negative is not None:
            event = batch.pop(row["event_id"])
            outcome.rejections.append(Rejection(event.index, "negative_value", negative))
            continue
        row["counts"] = counts
        row["problems"] = problems
        kept.append(row)
    return kept


def _warn(rows: list[dict[str, Any]], inserted: dict[str, int], outcome: Outcome) -> None:
    """Accepted events that some meter of their type does not count, and why: never a
    silent zero. An event no meter counts at all is ``unmetered``."""
    for row in rows:
        if row["event_id"] not in inserted or (row["counts"] and not row["problems"]):
            continue
        index = row["index"]
        if not row["counts"]:
            outcome.unmetered += 1
            if not row["problems"]:
                outcome.warnings.append(
                    Rejection(
                        index,
                        "unmetered",
                        f"no meter counts events of type {row['event_type']!r}",
                    )
                )
        for meter, code, message in row["problems"]:
            outcome.warnings.append(
                Rejection(index, code, f"not counted by meter {meter!r}: {message}")
            )


EVENT_COLUMNS = (  # (name, PostgreSQL type)
    ("workspace_id", "bigint"),
    ("event_id", "text"),
    ("event_type", "text"),
    ("customer_id", "bigint"),
    ("billing_customer_id", "bigint"),
    ("subject", "text"),
    ('"timestamp"', "timestamptz"),
    ("received_at", "timestamptz"),
    ("quantity", "numeric"),
    ("properties", "json"),
    ("content_hash", "text"),
)


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert new events; ids already stored are skipped by the unique constraint.
    Returns event id → storage sequence for the rows inserted."""
    d = rawsql.driver(session)
    received = d.timestamp(rows[0]["received_at"])  # the same for the whole batch
    values = [
        (
            r["workspace_id"],
            r["event_id"],
            r["event_type"],
            r["customer_id"],
            r["billing_customer_id"],
            r["subject"],
            d.timestamp(r["timestamp"]),
            received,
            d.decimal(r["quantity"]),
            d.json(r["properties"]),
            r["content_hash"],
        )
        for r in rows
    ]
    returned = d.insert_many(
        session,
        "events",
        EVENT_COLUMNS,
        values,
        "ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING seq, event_id",
    )
    return {event_id: seq for seq, event_id in returned}


def _conflict(event: ValidEvent) -> Rejection:
    return Rejection(
        event.index, "conflict", f"id {event.event_id!r} was already used for different content"
    )


def _sort_out_repeats(
    session: Session,
    workspace_id: int,
    batch: dict[str, ValidEvent],
    inserted: dict[str, int],
    outcome: Outcome,
) -> None:
    """Ids already stored: the same content is a duplicate, other content a conflict."""
    repeats = [event_id for event_id in batch if event_id not in inserted]
    for start in range(0, len(repeats), 500):
        chunk = repeats[start : start + 500]
        stored = dict(
            session.execute(
                select(Event.event_id, Event.content_hash).where(
                    Event.workspace_id == workspace_id, Event.event_id.in_(chunk)
                )
            ).all()
        )
        for event_id in chunk:
            if stored.get(event_id) == batch[event_id].content_hash:
                outcome.duplicates += 1
            else:
                outcome.rejections.append(_conflict(batch[event_id]))


def _fold(
    session: Session,
    rows: list[dict[str, Any]],
    inserted: dict[str, int],
    priced: set[int],
    decided: dict[str, Decimal],
) -> tuple[list[credits.Charge], set[int]]:
    """New events into the rollups, and into the limit counters of limited meters;
    returns what they used of meters priced in credits, and the billing customers whose
    limited usage changed (their usage alerts are evaluated next)."""
    pending = rollups.Pending()
    limited: list[tuple[int, int, datetime, Decimal]] = []
    charges: list[credits.Charge] = []
    for row in rows:
        seq = inserted.get(row["event_id"])
        if seq is None or not row["counts"]:
            continue
        timestamp: datetime = row["timestamp"]
        latest = latest_key(timestamp.astimezone(UTC).isoformat(), seq)
        bucket = bucket_floor(timestamp)
        for spec, contribution in row["counts"]:
            pending.add(
                spec,
                row["customer_id"],
                row["billing_customer_id"],
                bucket,
                contribution,
                latest,
            )
            value = contribution.value
            if spec.limited:
                limited.append((spec.id, row["billing_customer_id"], timestamp, value))
            if spec.id in priced and value:
                charges.append(
                    credits.Charge(
                        row["billing_customer_id"],
                        row["customer_id"],
                        row["customer"],
                        spec,
                        row["event_id"],
                        timestamp,
                        value,
                        row["quantity"],
                        row["properties"],
                        decided.get(row["event_id"]),
                    )
                )
    if pending.states or pending.uniques:
        rollups.apply(session, pending)
    counters.fold(session, limited)
    return charges, {customer for _, customer, _, _ in limited}


def _add(
    pending: rollups.Pending, spec: MeterSpec, row: dict[str, Any], seq: int
) -> Decimal | None:
    """Fold one stored event into ``pending``; returns what it counted (None: nothing)."""
    timestamp: datetime = row["timestamp"]
    found = counted(spec, row["quantity"], row["properties"], timestamp, seq)
    if found is None:
        return None
    contribution, key = found
    pending.add(
        spec,
        row["customer_id"],
        row["billing_customer_id"],
        bucket_floor(timestamp),
        contribution,
        key,
    )
    return contribution.value


# -- reading events -------------------------------------------------------------------


def iter_for_meter(
    session: Session,
    workspace_id: int,
    event_type: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    scope: rollups.CustomerScope | None = None,
    chunk: int = 5000,
) -> Iterator[Event]:
    """Events of one type that count (not voided), in storage order, streamed in chunks."""
    last = 0
    while True:
        query = (
            _filtered(workspace_id, scope, start, end)
            .where(Event.event_type == event_type, Event.seq > last, Event.voided_at.is_(None))
            .order_by(Event.seq)
            .limit(chunk)
        )
        batch = list(session.scalars(query))
        yield from batch
        if len(batch) < chunk:
            return
        last = batch[-1].seq


def _filtered(
    workspace_id: int,
    scope: rollups.CustomerScope | None,
    start: datetime | None,
    end: datetime | None,
) -> Select[Event]:
    """A workspace's events, for one customer's scope (an organization's includes its
    members'), with timestamps in ``[start, end)``."""
    query = select(Event).where(Event.workspace_id == workspace_id)
    if scope is not None:
        column = Event.billing_customer_id if scope.billing else Event.customer_id
        query = query.where(column == scope.customer_id)
    if start is not None:
        query = query.where(Event.timestamp >= start)
    if end is not None:
        query = query.where(Event.timestamp < end)
    return query


def find(session: Session, workspace_id: int, event_id: str) -> Event:
    """A stored event by its id; 404 when there is none (or it was purged)."""
    found = session.scalar(
        select(Event).where(Event.workspace_id == workspace_id, Event.event_id == event_id)
    )
    if found is None:
        raise NotFound(f"No event {event_id!r}.")
    return found


def mark_voided(session: Session, event: Event, now: datetime, reason: str | None) -> bool:
    """Mark the event void (it stays stored and listed); False when it already was —
    decided by the row itself, so two voids at once cannot both go ahead."""
    result = session.execute(
        update(Event)
        .where(Event.seq == event.seq, Event.voided_at.is_(None))
        .values(voided_at=now, void_reason=reason)
    )
    if int(result.rowcount) == 0:  # type: ignore[attr-defined]
        return False
    session.refresh(event)
    return True


def stored_hash(session: Session, workspace_id: int, event_id: str) -> str | None:
    """The content hash of a stored event id (None: not stored)."""
    d = rawsql.driver(session)
    rows = rawsql.run(
        session,
        f"SELECT content_hash FROM events WHERE workspace_id = {d.mark} AND event_id = {d.mark}",
        (workspace_id, event_id),
    )
    return str(rows[0][0]) if rows else None


def has_events(session: Session, workspace_id: int, event_type: str) -> bool:
    return (
        session.scalar(
            select(Event.seq)
            .where(Event.workspace_id == workspace_id, Event.event_type == event_type)
            .limit(1)
        )
        is not None
    )


def rebuild_rollups(session: Session, workspace_id: int, spec: MeterSpec) -> None:
    """Recompute a meter's rollups from its events (new meter, or new group_by)."""
    rollups.clear(session, spec.id)
    pending = rollups.Pending()
    for count, event in enumerate(iter_for_meter(session, workspace_id, spec.event_type), 1):
        row = {
            "quantity": event.quantity,
            "properties": event.properties,
            "customer_id": event.customer_id,
            "billing_customer_id": event.billing_customer_id,
            "timestamp": event.timestamp,
        }
        _add(pending, spec, row, event.seq)
        if count % 20_000 == 0:
            rollups.apply(session, pending)
            pending = rollups.Pending()
    rollups.apply(session, pending)


def problems(specs: Sequence[MeterSpec], event: Event) -> list[MeterProblem]:
    """Why meters of this event's type get nothing from it — no meter of its type, a
    filter that leaves it out, a missing or unusable value — so nothing is silently zero."""
    if not specs:
        return [
            MeterProblem(
                meter=None,
                code="unmetered",
                message=f"no meter counts events of type {event.event_type!r}",
            )
        ]
    found = []
    for spec in specs:
        try:
            counted = contribute(spec, event.quantity, event.properties)
        except ValueProblem as problem:
            found.append(MeterProblem(meter=spec.key, code=problem.code, message=problem.message))
            continue
        if counted is None:
            reason = excluded_by(spec, event.properties) or "its filter excludes it"
            found.append(MeterProblem(meter=spec.key, code="filtered_out", message=reason))
    return found


def list_page(
    session: Session,
    workspace_id: int,
    *,
    limit: int,
    after: str | None,
    customer: str | None = None,
    event_type: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Page[EventRead]:
    """Events, newest first, with what went wrong for each of its meters."""
    scope = None
    if customer is not None:
        found = customers.find(session, workspace_id, customer)
        if found is None:
            return Page([], None)
        scope = rollups.CustomerScope(*customers.scope_of(found))
    query = _filtered(workspace_id, scope, start, end)
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    if (last := cursor_key(after, int)) is not None:
        query = query.where(Event.seq < last)
    rows = list(session.scalars(query.order_by(Event.seq.desc()).limit(limit + 1)))
    page = make_page(rows, limit, key=lambda event: event.seq)
    specs = rollups.specs_by_type(session, workspace_id, {e.event_type for e in page.items})
    names = customers.external_ids(
        session, {e.customer_id for e in page.items} | {e.billing_customer_id for e in page.items}
    )
    return Page([to_read(e, names, specs) for e in page.items], page.next_cursor)


def to_read(event: Event, names: dict[int, str], specs: dict[str, list[MeterSpec]]) -> EventRead:
    """An event as answered; ``names`` maps its customers' ids to external ids."""
    return EventRead(
        id=event.event_id,
        type=event.event_type,
        customer=names[event.customer_id],
        billed_to=names[event.billing_customer_id],
        subject=event.subject,
        timestamp=event.timestamp,
        received_at=event.received_at,
        quantity=display_decimal(event.quantity),
        properties=event.properties,
        problems=[] if event.voided_at else problems(specs.get(event.event_type, []), event),
        voided_at=event.voided_at,
        void_reason=event.void_reason,
    )


def read_one(session: Session, event: Event) -> EventRead:
    specs = rollups.specs_by_type(session, event.workspace_id, {event.event_type})
    names = customers.external_ids(session, {event.customer_id, event.billing_customer_id})
    return to_read(event, names, specs)


# -- retention ----------------------------------------------------------------------------------

PURGE_CHUNK = 5000


def purge(db: Database, now: datetime) -> int:
    """Delete raw events older than each workspace's ``event_retention_days`` (the
    background job), a chunk per transaction. Rollups stay: usage totals, limits and
    invoices keep their numbers; only event listings, minute windows and rebuilding a
    meter's rollups lose what is gone."""
    with db.read() as session:
        kept = workspaces.retention(session)
    deleted = 0
    for workspace_id, days in kept:
        cutoff = now - timedelta(days=days)
        while True:
            with db.write() as session:
                doomed = select(Event.seq).where(
                    Event.workspace_id == workspace_id, Event.timestamp < cutoff
                )
                result = session.execute(
                    delete(Event).where(Event.seq.in_(doomed.limit(PURGE_CHUNK).scalar_subquery()))
                )
            count = int(result.rowcount)  # type: ignore[attr-defined]
            deleted += count
            if count < PURGE_CHUNK:
                break
    return deleted
