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

from meterline.billing_sync import usage
from meterline.billing_sync.models import StripeReport, StripeUsageHour, StripeUsageSeries
from meterline.billing_sync.schemas import Difference, HourDifference, ReconcileResult
from meterline.billing_sync.service import WrongMode, connected
from meterline.billing_sync.stripe_client import Failure, Stripe
from meterline.db import Database
from meterline.errors import MeterlineError, invalid
from meterline.kit.decimals import format_decimal

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
        if moment != usage.hour_floor(moment):
            raise invalid(name, "not_whole_hour", f"`{name}` must be a whole hour (UTC).")
    if start >= end:
        raise invalid("from", "invalid_range", "`from` must be before `to`.")
    if end > now:
        raise invalid("to", "in_future", "`to` must not be after now.")


def _ledger(
    rows: list[StripeReport],
) -> tuple[dict[Cell, int], dict[Cell, int]]:
    """Per cell: whole units Stripe took (events sent, less cancellations sent) and
    whole units decided but not yet there."""
    delivered: dict[Cell, int] = defaultdict(int)
    waiting: dict[Cell, int] = defaultdict(int)
    for row in rows:
        cell = (row.customer_id, row.meter_id or 0, row.hour_start)
        value = row.value or 0
        if row.kind == "meter_event" and row.status == "sent":
            delivered[cell] += value  # type: ignore[index]
        elif row.kind == "meter_event_cancel" and row.status == "sent":
            delivered[cell] -= value  # type: ignore[index]
        elif row.kind == "meter_event" and row.cancelled_by is None:
            waiting[cell] += value  # type: ignore[index]
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
    delivered, waiting = _ledger(rows)
    client = Stripe(str(integration.secret_key), db.settings)
    try:
        stripe_meters = client.meters()
    except Failure as failure:
        raise stripe_error(failure) from failure
    differences: list[Difference] = []
    adjust: dict[Cell, int] = {}
    checked = 0
    for customer_id, (external_id, stripe_customer) in sorted(mapped.customers.items()):
        for meter_id, meter in sorted(mapped.meters.items()):
            checked += 1
            event_name = str(meter.stripe_event_name)
            cells = {
                h: v for (c, m, h), v in delivered.items() if (c, m) == (customer_id, meter_id)
            }
            pending = sum(
                v for (c, m, _), v in waiting.items() if (c, m) == (customer_id, meter_id)
            )
            exact = sum(found.get((customer_id, meter_id), {}).values(), Decimal(0))
            total = exact / usage.divisor(meter)
            row = Difference(
                customer=external_id,
                stripe_customer_id=stripe_customer,
                meter=meter.key,
                event_name=event_name,
                meterline=Decimal(format_decimal(total)),
                reported=sum(cells.values()),
                pending=pending,
                stripe=0,
                difference=0,
                hours=[],
            )
            stripe_meter = stripe_meters.get(event_name)
            if stripe_meter is None:
                if total or row.reported or pending:
                    row.problem = f"Stripe has no active meter with event_name {event_name!r}."
                    differences.append(row)
                continue
            try:
                hours = client.hourly_usage(stripe_meter, stripe_customer, start, end)
            except Failure as failure:
                raise stripe_error(failure) from failure
            row.stripe = sum(hours.values())
            row.difference = row.stripe - row.reported
            for hour in sorted(set(hours) | set(cells)):
                if hours.get(hour, 0) != cells.get(hour, 0):
                    row.hours.append(
                        HourDifference(
                            hour_start=hour, stripe=hours.get(hour, 0), reported=cells.get(hour, 0)
                        )
                    )
                    adjust[(customer_id, meter_id, hour)] = hours.get(hour, 0) - cells.get(hour, 0)
            if row.hours:
                differences.append(row)
    queued = _repair(db, workspace_id, adjust, start, end, now) if repair and adjust else 0
    return ReconcileResult(
        start=start,
        end=end,
        checked=checked,
        differences=differences,
        repaired=repair and bool(adjust),
        queued=queued,
    )


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
