"""The meter and plan pages: definitions, a meter's usage across customers, plans in
words, the price calculator (the rating code) and a plan on last period's real usage."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.orm import Session

from meterline.customers import service as customers
from meterline.dashboard import words
from meterline.dashboard.snapshot import Snapshot
from meterline.dashboard.views import RANGES, dump
from meterline.errors import invalid
from meterline.invoicing import service as invoicing
from meterline.kit.decimals import CONTEXT, ZERO, display_decimal, parse_decimal
from meterline.kit.periods import Window, bucket_ceil, bucket_floor, windows
from meterline.kit.time import is_valid_timezone
from meterline.meters import rollups
from meterline.meters import service as meters
from meterline.meters.models import Meter
from meterline.meters.usage import across_customers, usage
from meterline.plans import service as plans
from meterline.plans.schemas import PlanFields
from meterline.pricing import service as pricing
from meterline.pricing.statement import Part, statement

WINDOWS: tuple[Window, ...] = ("minute", "hour", "day", "month")
DEFAULT_WINDOW: dict[str, Window] = {"24h": "hour", "7d": "day", "30d": "day"}
# How the chart combines customers' values in one window, by aggregation.
COMBINE = {"unique_count": "sum", "latest": "sum", "max": "max", "min": "min"}
COMBINE_WORDS = {"sum": "sum over customers", "max": "highest customer", "min": "lowest customer"}


def _combine(how: str, values: list[Decimal]) -> Decimal:
    if how == "sum":
        total = ZERO
        for value in values:
            total = CONTEXT.add(total, value)
        return total
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    raise ValueError(f"unknown combination {how!r}")


def usage_options(
    meter: Meter, span: str | None, window: str | None, timezone: str | None, group: str | None
) -> dict[str, Any]:
    """The chart's choices, checked like the API's usage query (422 with the field)."""
    span = span if span in RANGES else "24h"
    if window and window not in WINDOWS:
        raise invalid("window", "invalid_window", "Pick minute, hour, day or month.")
    chosen = window or DEFAULT_WINDOW[span]
    zone = timezone or "UTC"
    if not is_valid_timezone(zone):
        raise invalid("timezone", "invalid_timezone", f"{zone} is not an IANA time zone.")
    if chosen == "minute" and span != "24h":
        # Minutes are finer than the rollups' 15-minute buckets: read from raw events.
        raise invalid("window", "too_many_windows", "Minute windows: the 24h range only.")
    if group and group not in meter.group_by:
        raise invalid("group_by", "unknown_group_by", f"{group} is not among {meter.group_by}.")
    return {"span": span, "window": chosen, "timezone": zone, "group_by": group or ""}


def meter_usage(
    session: Session,
    workspace_id: int,
    meter: Meter,
    options: dict[str, Any],
    now: datetime,
    snapshot: Snapshot | None = None,
) -> dict[str, Any]:
    """The meter across every customer over the range (whole 15-minute buckets, the
    current one included): one series per group, and the top customers over the range.

    Meters that add up (count, sum, avg, duration) are combined in the database
    (``meters.usage.across_customers``: a window's value is the aggregation over every
    customer's events in it); the others go through ``meters.usage.usage``, the
    function behind ``GET /v1/meters/{key}/usage``, and each window combines the
    customers' values (``COMBINE``). Either way a customer's value over the range is
    what that API answers for it.

    Top customers: when the meter is a plan feature, by this billing period's usage
    from the revenue snapshot (``GET /v1/customers/{id}/usage``'s ``used`` at its
    instant); otherwise by the meter over the range."""
    zone = ZoneInfo(options["timezone"])
    window: Window = options["window"]
    start, end = bucket_floor(now - RANGES[options["span"]]), bucket_ceil(now)
    group_by = (options["group_by"],) if options["group_by"] else ()
    by_period = snapshot is not None and meter.key in snapshot.features
    found = across_customers(
        session,
        workspace_id,
        meter,
        start=start,
        end=end,
        window=window,
        zone=zone,
        group_by=group_by,
        per_customer=not by_period,
    )
    if found is not None:
        starts = [s for s, _ in found.windows]
        cells = {(starts[i], group): value for (i, group), value in found.cells.items()}
        totals = found.customers
        combine = "aggregation over every customer's events"
    else:
        starts = [s for s, _ in windows(start, end, window, zone)]
        cells, totals, combine = _combined(
            session, workspace_id, meter, start, end, window, zone, group_by
        )
    labels = sorted({group for _, group in cells})
    series = [
        {
            "label": _label(group, options["group_by"]) if group_by else meter.key,
            "values": [
                display_decimal(cells[(s, group)]) if (s, group) in cells else "0" for s in starts
            ],
        }
        for group in labels
    ]
    if by_period and snapshot is not None:
        ranked = [(f.external_id, f.usage[meter.key]) for f in snapshot.top_by_usage(meter.key)]
    else:
        ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:10]
    return {
        "chart": {"kind": "line", "x": [int(s.timestamp()) for s in starts], "series": series},
        "combine": combine,
        "top": [{"customer": name, "value": display_decimal(value)} for name, value in ranked],
        "top_as_of": snapshot.as_of if by_period and snapshot is not None else None,
        "start": start,
        "end": end,
    }


def _label(group: str, name: str) -> str:
    value = orjson.loads(group).get(name)
    return "(none)" if value is None else str(value)


def _combined(
    session: Session,
    workspace_id: int,
    meter: Meter,
    start: datetime,
    end: datetime,
    window: Window,
    zone: ZoneInfo,
    group_by: tuple[str, ...],
) -> tuple[dict[tuple[datetime, str], Decimal], dict[str, Decimal], str]:
    """Per window and group, the customers' values combined; per customer, its value."""
    how = COMBINE[meter.aggregation]
    rows = usage(
        session,
        workspace_id,
        meter,
        customer=None,
        start=start,
        end=end,
        window=window,
        zone=zone,
        group_by=group_by,
    )
    values: dict[tuple[datetime, str], list[Decimal]] = {}
    for row in rows:
        group = orjson.dumps(row.group, option=orjson.OPT_SORT_KEYS).decode()
        values.setdefault((row.window_start, group), []).append(parse_decimal(row.value))
    whole = usage(
        session, workspace_id, meter, customer=None, start=start, end=end, window=None, zone=zone
    )
    totals = {row.customer or "": parse_decimal(row.value) for row in whole}
    cells = {key: _combine(how, found) for key, found in values.items()}
    return cells, totals, COMBINE_WORDS[how]


def meter_list(session: Session, workspace_id: int) -> list[dict[str, Any]]:
    page = meters.list_page(session, workspace_id, limit=1000, after=None)
    return [dump(meters.to_read(m)) for m in page.items]


# -- plans ---------------------------------------------------------------------------------


def plan_list(session: Session, workspace_id: int) -> list[dict[str, Any]]:
    page = plans.list_page(session, workspace_id, limit=1000, after=None)
    return [dump(plans.to_read(p)) for p in page.items]


def _units(session: Session, workspace_id: int, keys: set[str]) -> dict[str, str | None]:
    return {key: meter.unit for key, meter in meters.by_keys(session, workspace_id, keys).items()}


def plan_page(session: Session, workspace_id: int, key: str) -> dict[str, Any]:
    plan = plans.to_read(plans.get(session, workspace_id, key))
    units = _units(session, workspace_id, set(plan.features))
    described = [
        {
            "feature": name,
            "unit": units.get(name),
            "words": words.feature_words(f, plan.currency, units.get(name)),
        }
        for name, f in plan.features.items()
    ]
    definition = PlanFields.model_validate(plan.model_dump(include=set(PlanFields.model_fields)))
    return {
        "plan": dump(plan),
        "features": described,
        "definition": definition.model_dump_json(indent=2, exclude_none=True),
    }


def quote(
    session: Session, workspace_id: int, key: str, asked: dict[str, str], now: datetime
) -> dict[str, Any]:
    """The rating code on usage typed in: a full period of the plan (its whole base fee)
    with each feature's usage as given; the lines and total an invoice would have."""
    plan = plans.get(session, workspace_id, key)
    fields = plans.definition(plan)
    used: dict[str, Decimal] = {}
    for feature in fields.features:
        text = (asked.get(feature) or "0").strip()
        try:
            used[feature] = parse_decimal(text)
        except (ValueError, ArithmeticError) as exc:
            raise invalid(feature, "invalid_quantity", f"{text!r} is not a number.") from exc
        if used[feature] < 0:
            raise invalid(feature, "invalid_quantity", "Usage is never negative.")
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    units = _units(session, workspace_id, set(fields.features))
    found = statement([Part(key, fields, start, end)], (start, end), ZoneInfo("UTC"), used, units)
    return {
        "lines": invoicing.lines_of(found),
        "total": format(found.total, "f"),
        "currency": found.currency,
        "used": {k: display_decimal(v) for k, v in used.items()},
    }


def what_if(
    session: Session, workspace_id: int, key: str, n: int, now: datetime
) -> list[dict[str, Any]]:
    """This plan on the last closed period of up to ``n`` billed customers (the most
    recently created first): what it would have billed, beside what they were billed."""
    plan = plans.get(session, workspace_id, key)
    fields = plans.definition(plan)
    specs = {
        k: rollups.spec_of(m)
        for k, m in meters.by_keys(session, workspace_id, set(fields.features)).items()
    }
    rows: list[dict[str, Any]] = []
    for customer_id, external_id, _ in reversed(customers.billing_roots(session, workspace_id)):
        if len(rows) == n:
            break
        found = pricing.last_period(session, workspace_id, external_id, now)
        if found is None:
            continue
        standing, bounds = found
        would = pricing.what_if(session, workspace_id, standing, bounds, key, fields, specs)
        stored = invoicing.of_periods(session, customer_id, [bounds.start]).get(bounds.start)
        invoice = None if stored is None else invoicing.to_read(session, stored)
        actual = pricing.period_statement(
            session,
            workspace_id,
            standing.billing_id,
            standing.terms,
            bounds,
            standing.specs,
            standing.zone,
        )
        rows.append(
            {
                "customer": external_id,
                "period": {"start": bounds.start, "end": bounds.end},
                "plan": actual.plan,
                "billed": format((actual if invoice is None else invoice).total, "f"),
                "invoice": None if invoice is None else invoice.number or invoice.id,
                "currency": actual.currency,
                "would_bill": format(would.total, "f"),
                "would_currency": would.currency,
            }
        )
    return rows
