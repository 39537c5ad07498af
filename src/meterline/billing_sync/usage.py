"""meter_events mode, the deciding half: closed hours of mapped meters and customers are
read from the rollups (never raw events), compared with what was accounted before, and
every whole unit owed becomes a report — written in this transaction, with its
identifier fixed, before anything is sent (``deltas`` does the arithmetic)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.billing_sync import deltas
from meterline.billing_sync.models import (
    StripeIntegration,
    StripeReport,
    StripeUsageHour,
    StripeUsageSeries,
)
from meterline.customers import service as customers
from meterline.jobs import service as jobs
from meterline.kit.ids import new_id
from meterline.meters import rollups
from meterline.meters import service as meters
from meterline.meters.aggregation import unit_divisor
from meterline.meters.models import Meter

HOUR = timedelta(hours=1)
# Stripe takes meter events at most 35 days old; an hour of margin for the queue.
OLDEST = timedelta(days=35) - HOUR
RECENT = timedelta(hours=24)  # what the hourly run reads again (the daily run: OLDEST)
SEND = "stripe.send"
_ZERO = Decimal(0)

Key = tuple[int, int]  # (billing customer id, meter id)
Cell = tuple[int, int, datetime]  # (billing customer id, meter id, hour)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def window(integration: StripeIntegration, now: datetime, full: bool) -> tuple[datetime, datetime]:
    """The closed hours an aggregation reads: ``[start, cutoff)``. An hour is closed
    once it ended ``report_delay_minutes`` ago."""
    cutoff = hour_floor(now - timedelta(minutes=integration.report_delay_minutes))
    oldest = hour_floor(now - OLDEST) + HOUR
    start = oldest if full else max(oldest, cutoff - RECENT)
    return start, max(start, cutoff)


@dataclass
class Mapping:
    meters: dict[int, Meter]
    customers: dict[int, tuple[str, str]]  # id → (external id, Stripe customer id)


def mapping(session: Session, workspace_id: int) -> Mapping:
    found = {m.id: m for m in meters.stripe_mapped(session, workspace_id)}
    return Mapping(found, customers.stripe_mapped(session, workspace_id))


def measured(
    session: Session, mapped: Mapping, start: datetime, end: datetime
) -> dict[Key, dict[datetime, Decimal]]:
    """Each mapped series' usage per hour of ``[start, end)``, in raw units (a count
    meter counts events; sum and duration meters sum their values)."""
    found: dict[Key, dict[datetime, Decimal]] = defaultdict(dict)
    for meter_id, billing, bucket, count, total in rollups.read_range(
        session, list(mapped.meters), start, end
    ):
        if billing not in mapped.customers:
            continue
        meter = mapped.meters[meter_id]
        value = Decimal(count) if meter.aggregation == "count" else total
        hours = found[(billing, meter_id)]
        hour = hour_floor(bucket)
        hours[hour] = hours.get(hour, _ZERO) + value
    return found


def divisor(meter: Meter) -> Decimal:
    return unit_divisor(rollups.spec_of(meter))


def lock(session: Session, workspace_id: int) -> StripeIntegration | None:
    """The integration, locked (PostgreSQL) so one aggregation of a workspace runs at
    a time; SQLite's single writer does the same."""
    return session.get(StripeIntegration, workspace_id, with_for_update=True)


def aggregate(session: Session, workspace_id: int, now: datetime, *, full: bool) -> int:
    """Account for every closed hour in the window (the last day, or with ``full`` every
    hour Stripe still takes); returns how many reports were written."""
    integration = lock(session, workspace_id)
    if integration is None or integration.status != "connected":
        return 0
    if integration.mode != "meter_events":
        return 0
    start, end = window(integration, now, full)
    mapped = mapping(session, workspace_id)
    written = 0
    if start < end and mapped.meters and mapped.customers:
        written = account(
            session,
            integration,
            mapped,
            measured(session, mapped, start, end),
            start,
            end,
            now,
            force={},
        )
    integration.aggregated_through = end
    session.flush()
    return written


def account(
    session: Session,
    integration: StripeIntegration,
    mapped: Mapping,
    found: dict[Key, dict[datetime, Decimal]],
    start: datetime,
    end: datetime,
    now: datetime,
    force: dict[Key, set[datetime]],
) -> int:
    """Compare ``found`` (usage per series and hour in ``[start, end)``) with what was
    accounted, plan each changed series (and each series and hour in ``force``, whose
    ``sent`` a reconciliation corrected) and write the reports."""
    hours: dict[Cell, StripeUsageHour] = {
        (row.customer_id, row.meter_id, row.hour_start): row
        for row in session.scalars(
            select(StripeUsageHour).where(
                StripeUsageHour.meter_id.in_(list(mapped.meters)),
                StripeUsageHour.hour_start >= start,
                StripeUsageHour.hour_start < end,
            )
        )
        if row.customer_id in mapped.customers
    }
    changes = _changes(found, hours, force)
    if not changes:
        return 0
    written = 0
    series_rows = _series(session, integration.workspace_id, set(changes))
    live = _live_events(session, integration.workspace_id, set(changes), now)
    for key in sorted(changes):
        written += _apply(
            session,
            integration,
            mapped,
            key,
            changes[key],
            series_rows[key],
            live.get(key, []),
            hours,
            now,
        )
    if written:
        schedule_send(session, integration.workspace_id, now)
    return written


def _changes(
    found: dict[Key, dict[datetime, Decimal]],
    hours: dict[Cell, StripeUsageHour],
    force: dict[Key, set[datetime]],
) -> dict[Key, list[deltas.Change]]:
    """Per series, the hours whose usage differs from what was accounted (and the
    forced ones, unchanged)."""
    changes: dict[Key, list[deltas.Change]] = defaultdict(list)
    keys = {(c, m, h) for (c, m), per_hour in found.items() for h in per_hour} | hours.keys()
    for c, m, h in sorted(keys):
        row = hours.get((c, m, h))
        before = row.measured if row is not None else _ZERO
        after = found.get((c, m), {}).get(h, _ZERO)
        if after != before or h in force.get((c, m), ()):
            changes[(c, m)].append(deltas.Change(h, before, after))
    for key, hours_forced in force.items():
        for h in hours_forced:
            if (*key, h) not in keys:
                changes[key].append(deltas.Change(h, _ZERO, _ZERO))
    return changes


def schedule_send(
    session: Session, workspace_id: int, now: datetime, *, sooner: bool = False
) -> None:
    """Have the workspace's send job run. New reports leave a waiting job as it is (it
    is running, or waiting for the head of the queue, which they follow); ``sooner``
    (a connect, a retry) moves it to now."""
    jobs.schedule_many(
        session,
        SEND,
        {f"stripe-send:{workspace_id}": {"workspace": workspace_id}},
        now,
        workspace_id=workspace_id,
        existing="sooner" if sooner else "keep",
    )


def _series(session: Session, workspace_id: int, keys: set[Key]) -> dict[Key, StripeUsageSeries]:
    found = {
        (row.customer_id, row.meter_id): row
        for row in session.scalars(
            select(StripeUsageSeries).where(
                StripeUsageSeries.meter_id.in_({m for _, m in keys}),
                StripeUsageSeries.customer_id.in_({c for c, _ in keys}),
            )
        )
    }
    for key in keys - found.keys():
        row = StripeUsageSeries(
            customer_id=key[0], meter_id=key[1], workspace_id=workspace_id, measured=_ZERO, sent=0
        )
        session.add(row)
        found[key] = row
    return found


def _live_events(
    session: Session, workspace_id: int, keys: set[Key], now: datetime
) -> dict[Key, list[tuple[deltas.Event, StripeReport]]]:
    """Meter events that may still be cancelled, per series."""
    recent = now - deltas.CANCEL_WINDOW
    query = select(StripeReport).where(
        StripeReport.workspace_id == workspace_id,
        StripeReport.kind == "meter_event",
        StripeReport.status.in_(("pending", "sent")),
        StripeReport.cancelled_by.is_(None),
        StripeReport.meter_id.in_({m for _, m in keys}),
        (StripeReport.sent_at.is_(None)) | (StripeReport.sent_at >= recent),
    )
    found: dict[Key, list[tuple[deltas.Event, StripeReport]]] = defaultdict(list)
    for report in session.scalars(query):
        key = (report.customer_id, report.meter_id or 0)
        if key in keys and report.hour_start is not None and report.value:
            event = deltas.Event(report.id, report.hour_start, report.value, report.sent_at)
            found[key].append((event, report))
    return found


def _apply(
    session: Session,
    integration: StripeIntegration,
    mapped: Mapping,
    key: Key,
    changes: list[deltas.Change],
    row: StripeUsageSeries,
    live: list[tuple[deltas.Event, StripeReport]],
    hours: dict[Cell, StripeUsageHour],
    now: datetime,
) -> int:
    customer_id, meter_id = key
    meter = mapped.meters[meter_id]
    series = deltas.Series(row.measured, row.sent, divisor(meter))
    events = {event.id: (event, report) for event, report in live}
    touched = {c.hour for c in changes} | {event.hour for event, _ in live}
    hour_rows = {
        h: _hour(session, hours, integration.workspace_id, customer_id, meter_id, h)
        for h in touched
    }
    plan = deltas.plan(
        series, changes, [e for e, _ in live], {h: r.sent for h, r in hour_rows.items()}, now
    )
    row.measured, row.sent = series.measured, series.sent
    for change in changes:
        hour_rows[change.hour].measured = change.after
    for hour, sent in plan.hour_sent.items():
        hour_rows[hour].sent = sent
    reports = _Reports(
        session, integration, meter, customer_id, mapped.customers[customer_id][1], now
    )
    for action in plan.actions:
        if isinstance(action, deltas.Cancel):
            reports.cancel(events[action.event.id][1])
        else:
            reports.send(action, hour_rows[action.hour])
    return len(plan.actions)


@dataclass
class _Reports:
    """Writes one series' reports, each flushed at once: ``seq`` is the order they go
    to Stripe."""

    session: Session
    integration: StripeIntegration
    meter: Meter
    customer_id: int
    stripe_customer: str
    now: datetime

    def send(self, action: deltas.Send, hour: StripeUsageHour) -> None:
        hour.revision += 1
        identifier = deltas.identifier(
            self.integration.identifier_prefix,
            self.customer_id,
            self.meter.id,
            action.hour,
            hour.revision,
        )
        self._add(
            kind="meter_event",
            hour_start=action.hour,
            value=action.value,
            revision=hour.revision,
            identifier=identifier,
        )

    def cancel(self, target: StripeReport) -> None:
        cancel = self._add(
            kind="meter_event_cancel",
            hour_start=target.hour_start,
            value=target.value,
            cancels=target.id,
            revision=target.revision,
            progress={"identifier": target.identifier},
        )
        target.cancelled_by = cancel.id

    def _add(self, **fields: Any) -> StripeReport:
        fields.setdefault("progress", {})
        report = StripeReport(
            id=new_id("srp"),
            workspace_id=self.integration.workspace_id,
            status="pending",
            customer_id=self.customer_id,
            stripe_customer_id=self.stripe_customer,
            meter_id=self.meter.id,
            event_name=self.meter.stripe_event_name,
            attempts=0,
            next_attempt_at=self.now,
            created_at=self.now,
            **fields,
        )
        self.session.add(report)
        self.session.flush()
        return report


def _hour(
    session: Session,
    hours: dict[Cell, StripeUsageHour],
    workspace_id: int,
    customer_id: int,
    meter_id: int,
    hour: datetime,
) -> StripeUsageHour:
    found = hours.get((customer_id, meter_id, hour))
    if found is None:
        found = session.get(StripeUsageHour, (customer_id, meter_id, hour))
    if found is None:
        found = StripeUsageHour(
            customer_id=customer_id,
            meter_id=meter_id,
            hour_start=hour,
            workspace_id=workspace_id,
            measured=_ZERO,
            sent=0,
            revision=0,
        )
        session.add(found)
    hours[(customer_id, meter_id, hour)] = found
    return found
