"""Reconciliation: Stripe's meter event summaries, per mapped customer, meter and hour,
against what the ledger says Stripe took; every difference listed, and with ``repair``
the ledger corrected to what Stripe really holds, so the next accounting sends what is
missing (a new revision of the hour) — never a negative value: what Stripe holds beyond
Meterline's usage is only acknowledged (it shows as ``excess``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.billing_sync import usage
from meterline.billing_sync.models import StripeReport, StripeUsageHour, StripeUsageSeries
from meterline.billing_sync.schemas import Difference, HourDifference, ReconcileResult
from meterline.billing_sync.service import WrongMode, connected
from meterline.billing_sync.stripe_client import Failure, Stripe
from meterline.db import Database
from meterline.errors import MeterlineError, invalid
from meterline.kit.decimals import format_decimal

Key = tuple[int, int]  # (customer, meter)
Cell = tuple[int, int, datetime]  # (customer, meter, hour)


class StripeRejected(MeterlineError):
    status = 422
    code = "stripe_rejected"
    title = "Stripe refused the request"


class StripeUnavailable(MeterlineError):
    status = 502
    code = "stripe_unavailable"
    title = "Stripe did not answer"


def stripe_error(failure: Failure) -> MeterlineError:
    if failure.retriable:
        return StripeUnavailable(f"Stripe: {failure.message}")
    return StripeRejected(f"Stripe answered {failure.status}: {failure.message}")


def check_range(start: datetime, end: datetime, now: datetime) -> None:
    for name, moment in (("from", start), ("to", end)):
        if not 1970 <= moment.year <= 9000:  # before any arithmetic that could overflow
            raise invalid(name, "invalid_timestamp", f"`{name}` must be in 1970-9000.")
        if moment != usage.hour_floor(moment):
            raise invalid(name, "not_whole_hour", f"`{name}` must be a whole hour (UTC).")
    if start >= end:
        raise invalid("from", "invalid_range", "`from` must be before `to`.")
    if end > now:
        raise invalid("to", "in_future", "`to` must not be after now.")


def _ledger(
    session: Session, workspace_id: int, mapped: usage.Mapping, start: datetime, end: datetime
) -> tuple[dict[Key, dict[datetime, int]], dict[Key, int]]:
    """Per series: the whole units Stripe should hold per hour (what the ledger accounts
    as sent, less events still on their way, plus events whose cancellation is still on
    its way), and the whole units decided but not yet there."""
    delivered: dict[Key, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    waiting: dict[Key, int] = defaultdict(int)
    for hour in session.scalars(
        select(StripeUsageHour).where(
            StripeUsageHour.meter_id.in_(list(mapped.meters)),
            StripeUsageHour.hour_start >= start,
            StripeUsageHour.hour_start < end,
        )
    ):
        delivered[(hour.customer_id, hour.meter_id)][hour.hour_start] += hour.sent
    rows = list(
        session.scalars(
            select(StripeReport).where(
                StripeReport.workspace_id == workspace_id,
                StripeReport.kind.in_(("meter_event", "meter_event_cancel")),
                StripeReport.hour_start >= start,
                StripeReport.hour_start < end,
            )
        )
    )
    by_id = {row.id: row for row in rows}
    for row in rows:
        key, value = (row.customer_id, row.meter_id or 0), row.value or 0
        assert row.hour_start is not None
        if row.kind == "meter_event" and row.status != "sent" and row.cancelled_by is None:
            waiting[key] += value
            delivered[key][row.hour_start] -= value
        elif row.kind == "meter_event_cancel" and row.status == "pending":
            target = by_id.get(row.cancels or "")
            if target is not None and target.status == "sent":
                delivered[key][row.hour_start] += value  # at Stripe until it is cancelled
    return delivered, waiting


def reconcile(
    db: Database, workspace_id: int, start: datetime, end: datetime, now: datetime, *, repair: bool
) -> ReconcileResult:
    """Compare ``[start, end)`` (whole hours) and, with ``repair``, close the gaps."""
    check_range(start, end, now)
    with db.read() as session:
        integration = connected(session, workspace_id)
        if integration.mode != "meter_events":
            raise WrongMode("Reconciliation compares meter events (meter_events mode).")
        mapped = usage.mapping(session, workspace_id)
        found = usage.measured(session, mapped, start, end)
        ours, on_the_way = _ledger(session, workspace_id, mapped, start, end)
    client = Stripe(str(integration.secret_key), db.settings)
    try:
        stripe_meters = client.meters()
    except Failure as failure:
        raise stripe_error(failure) from failure
    differences: list[Difference] = []
    adjust: dict[Cell, int] = {}
    pairs = [(c, m) for c in sorted(mapped.customers) for m in sorted(mapped.meters)]
    for key in pairs:
        customer_id, meter_id = key
        external_id, stripe_customer = mapped.customers[customer_id]
        meter = mapped.meters[meter_id]
        exact = sum(found.get(key, {}).values(), Decimal(0))
        row = Difference(
            customer=external_id,
            stripe_customer_id=stripe_customer,
            meter=meter.key,
            event_name=str(meter.stripe_event_name),
            meterline=Decimal(format_decimal(exact / usage.divisor(meter))),
            reported=sum(ours[key].values()),
            pending=on_the_way[key],
            stripe=0,
            difference=0,
            hours=[],
        )
        if _compare(client, stripe_meters, row, ours[key], adjust, key, start, end):
            differences.append(row)
    queued = _repair(db, workspace_id, adjust, start, end, now) if repair and adjust else 0
    return ReconcileResult(
        start=start,
        end=end,
        checked=len(pairs),
        differences=differences,
        repaired=repair and bool(adjust),
        queued=queued,
    )


def _compare(
    client: Stripe,
    stripe_meters: dict[str, str],
    row: Difference,
    ours: dict[datetime, int],
    adjust: dict[Cell, int],
    key: tuple[int, int],
    start: datetime,
    end: datetime,
) -> bool:
    """Fill ``row`` from Stripe's summaries, hour by hour (what differs goes to
    ``adjust``); whether it is a difference."""
    stripe_meter = stripe_meters.get(row.event_name)
    if stripe_meter is None:
        row.problem = f"Stripe has no active meter with event_name {row.event_name!r}."
        return bool(row.meterline or row.reported or row.pending)
    try:
        at_stripe = client.hourly_usage(stripe_meter, row.stripe_customer_id, start, end)
    except Failure as failure:
        raise stripe_error(failure) from failure
    row.stripe = sum(at_stripe.values())
    row.difference = row.stripe - row.reported
    for hour in sorted(set(at_stripe) | set(ours)):
        theirs, mine = at_stripe.get(hour, 0), ours.get(hour, 0)
        if theirs != mine:
            row.hours.append(HourDifference(hour_start=hour, stripe=theirs, reported=mine))
            adjust[(*key, hour)] = theirs - mine
    if row.stripe - row.meterline >= 1:  # only a decrease too late to cancel does this
        row.problem = (
            "Stripe holds more than Meterline measured (a decrease after Stripe's 24 hours "
            "to cancel); later usage absorbs it."
        )
    return bool(row.hours or row.problem)


def _repair(
    db: Database,
    workspace_id: int,
    adjust: dict[Cell, int],
    start: datetime,
    end: datetime,
    now: datetime,
) -> int:
    """Make the ledger say what Stripe holds, then account again: each hour Stripe
    lost units of gets a new revision for them."""
    with db.write() as session:
        integration = usage.lock(session, workspace_id)
        assert integration is not None
        force: dict[tuple[int, int], set[datetime]] = defaultdict(set)
        for (customer_id, meter_id, hour), change in adjust.items():
            row = session.get(StripeUsageHour, (customer_id, meter_id, hour))
            series = session.get(StripeUsageSeries, (customer_id, meter_id))
            if row is None or series is None:
                continue  # Stripe holds units Meterline never sent: nothing to correct
            row.sent += change
            series.sent += change
            if change < 0:
                force[(customer_id, meter_id)].add(hour)
        session.flush()
        mapped = usage.mapping(session, workspace_id)
        found = usage.measured(session, mapped, start, end)
        return usage.account(session, integration, mapped, found, start, end, now, force)
