"""What happens to an event, top to bottom: every path that records usage — HTTP
batches and single events, consume and settle, import, library mode — goes through
``record``, one batch in the caller's transaction (no per-event transaction).

The steps, each once per batch:

1. ``check`` (no I/O): each raw event validated on its own → ``ValidEvent`` or a
   ``Rejection`` with a stable code.
2. de-duplicate within the batch (same id: same content is a duplicate, other content a
   ``conflict``);
3. resolve customers (created when the workspace allows it) and their billing customer;
4. judge: what each event adds to each meter of its type, and why a meter gets nothing
   (an event that would add a negative value is refused whole);
5. lock, in the order every writer takes them: limit guards, then wallets;
6. store (``ingestion.store``: the database decides duplicates across batches,
   processes and restarts) and sort out ids stored before (duplicate or conflict);
7. warn: accepted events some meter does not count (never a silent zero);
8. fold the new events into the meters' rollups and the limit counters;
9. charge their credit cost to the ledgers (a decision passes what it already priced);
10. side effects once, from what the steps returned: usage alerts of customers whose
    limited usage changed, and the hourly ingestion statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from meterline.alerts import service as alerts
from meterline.credits import ledger
from meterline.credits import service as credits
from meterline.credits.costs import Strategies
from meterline.customers import service as customers
from meterline.db import Database
from meterline.ingestion import stats, store
from meterline.ingestion.validation import Rejection, ValidEvent, validate, validate_cloudevent
from meterline.kit import rawsql
from meterline.kit.ids import new_id
from meterline.kit.periods import bucket_floor
from meterline.kit.time import utc_now
from meterline.meters import counters, rollups
from meterline.meters.aggregation import (
    Contribution,
    MeterSpec,
    ValueProblem,
    contribute,
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


def record(
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


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Store new events (``ingestion.store``); returns event id → storage sequence of
    the rows inserted (ids stored before are skipped)."""
    d = rawsql.driver(session)
    received = d.timestamp(rows[0]["received_at"])  # the same for the whole batch
    return store.insert(
        session,
        [
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
        ],
    )


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
    if not repeats:
        return
    stored = store.stored_hashes(session, workspace_id, repeats)
    for event_id in repeats:
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
        latest = latest_key(
            (timestamp if timestamp.tzinfo is UTC else timestamp.astimezone(UTC)).isoformat(), seq
        )
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


def purge_expired(db: Database, now: datetime) -> int:
    """Delete raw events older than each workspace's ``event_retention_days`` (the
    background job, and ``meterline events purge``). Rollups stay: usage totals, limits
    and invoices keep their numbers."""
    with db.read() as session:
        kept = workspaces.retention(session)
    return store.purge(db, kept, now)
