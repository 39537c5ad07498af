"""Recorded usage, taken back: ``void`` makes a stored event stop counting everywhere it
counted, in one transaction.

A void is how a SaaS refunds usage that should not be billed (a failed job, a duplicate
sent under two ids). The event stays stored and listed (``voided_at``, ``void_reason``);
what it added is taken out of every meter's rollups, out of the limit counters of the
windows it fell in, and its credit debits are reversed on the ledger. An event in a
period whose invoice is finalized is refused (409 ``period_finalized``): a finalized
invoice never changes, and usage must agree with it. Voiding twice changes nothing.

Locks, in the order every writer takes them: the limit guards of the event's meters
(PostgreSQL), the customer's wallet, then the event's row (the void is decided by a
conditional update of it, so two voids at once cannot both go ahead).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from meterline.credits import ledger
from meterline.credits import service as credits
from meterline.errors import Conflict
from meterline.ingestion import store
from meterline.ingestion.models import Event
from meterline.ingestion.schemas import EventRead
from meterline.invoicing import service as invoicing
from meterline.kit.periods import BUCKET_SECONDS, bucket_floor
from meterline.meters import counters, rollups
from meterline.meters.aggregation import (
    Contribution,
    MeterSpec,
    ValueProblem,
    contribute,
    counted,
)
from meterline.recording import events
from meterline.workspaces import service as workspaces


class PeriodFinalized(Conflict):
    code = "period_finalized"
    title = "Period finalized"


class EventsPurged(Conflict):
    code = "events_purged"
    title = "Events purged"


def void(
    session: Session, workspace_id: int, event_id: str, reason: str | None, now: datetime
) -> EventRead:
    """Void a stored event (see the module). Answers the event as it now stands."""
    event = store.find(session, workspace_id, event_id)
    if event.voided_at is not None:
        return events.read_one(session, event)
    invoice = invoicing.covering(session, workspace_id, event.billing_customer_id, event.timestamp)
    if invoice is not None and invoice.status == "finalized":
        raise PeriodFinalized(
            f"Event {event_id!r} falls in the period of invoice {invoice.number} "
            f"({invoice.period_start.isoformat()} to {invoice.period_end.isoformat()}), "
            "which is finalized: it cannot change."
        )
    counts = _contributions(session, workspace_id, event)
    _refuse_if_purged(session, workspace_id, event, counts, now)
    counters.guard(
        session, {(spec.id, event.billing_customer_id) for spec, _ in counts if spec.limited}
    )
    debits = ledger.debits_of(session, event.billing_customer_id, event.event_id)
    book = (
        ledger.open_book(session, workspace_id, event.billing_customer_id, now) if debits else None
    )
    if not store.mark_voided(session, event, now, reason):
        return events.read_one(session, event)  # voided meanwhile, by another request
    bucket = bucket_floor(event.timestamp)
    for spec, contribution in counts:
        if spec.aggregation in rollups.ADDITIVE:
            rollups.retract(
                session, spec, event.customer_id, bucket, contribution.group_key, contribution.value
            )
        else:
            _rebuild(session, workspace_id, spec, event, bucket, contribution.group_key)
    counters.fold(
        session,
        [
            (spec.id, event.billing_customer_id, event.timestamp, -contribution.value)
            for spec, contribution in counts
            if spec.limited
        ],
    )
    if book is not None:
        for entry_id, drawn in debits:
            book.reverse(
                entry_id,
                drawn,
                subject_customer_id=event.customer_id,
                reference_type="void",
                reference=event.event_id,
            )
        credits.announce(session, book.flush())
    return events.read_one(session, event)


def _contributions(
    session: Session, workspace_id: int, event: Event
) -> list[tuple[MeterSpec, Contribution]]:
    """What the event added to each meter of its type (as ingestion folded it)."""
    specs = rollups.specs_by_type(session, workspace_id, {event.event_type})
    found = []
    for spec in specs.get(event.event_type, []):
        try:
            contribution = contribute(spec, event.quantity, event.properties)
        except ValueProblem:
            continue
        if contribution is not None:
            found.append((spec, contribution))
    return found


def _refuse_if_purged(
    session: Session,
    workspace_id: int,
    event: Event,
    counts: list[tuple[MeterSpec, Contribution]],
    now: datetime,
) -> None:
    """Min, max, latest and unique-count rollups are rebuilt from the bucket's events: a
    bucket retention may have cut into cannot be rebuilt, so such a void is refused."""
    if all(spec.aggregation in rollups.ADDITIVE for spec, _ in counts):
        return
    days = workspaces.get(session, workspace_id).event_retention_days
    if days is not None and bucket_floor(event.timestamp) < now - timedelta(days=days):
        raise EventsPurged(
            f"Event {event.event_id!r} lies in a 15-minute bucket that retention "
            f"({days} days) may have cut into: its min/max/latest/unique rollups cannot be "
            "rebuilt."
        )


def _rebuild(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    event: Event,
    bucket: datetime,
    group_key: str,
) -> None:
    """The event's rollup row of a non-additive meter, folded again from the bucket's
    remaining events of the same customer and group."""
    pending = rollups.Pending()
    for other in store.counting(
        session,
        workspace_id,
        spec.event_type,
        start=bucket,
        end=bucket + timedelta(seconds=BUCKET_SECONDS),
        scope=rollups.CustomerScope(event.customer_id, billing=False),
    ):
        found = counted(
            spec, other.quantity, other.properties, other.timestamp.astimezone(UTC), other.seq
        )
        if found is not None and found[0].group_key == group_key:
            pending.add(
                spec,
                other.customer_id,
                other.billing_customer_id,
                bucket,
                found[0],
                found[1],
            )
    rollups.replace_bucket(session, spec, event.customer_id, bucket, group_key, pending)
