"""Usage queries: a meter's values per window, customer and group.

Cost is O(windows), not O(events): whole 15-minute buckets come from the rollups,
and only the partial buckets at the edges of the range (and minute windows, which are
finer than a bucket) read raw events.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.orm import Session

from meterline.customers import service as customers
from meterline.customers.models import Customer
from meterline.ingestion import store
from meterline.kit import rawsql
from meterline.kit.decimals import CONTEXT, ZERO, display_decimal
from meterline.kit.periods import (
    BUCKET_SECONDS,
    Window,
    bucket_ceil,
    bucket_floor,
    is_bucket_aligned,
    windows,
)
from meterline.kit.time import utc_now
from meterline.meters import rollups
from meterline.meters.aggregation import MeterSpec, State, counted, project
from meterline.meters.models import Meter
from meterline.meters.schemas import UsageRow

_BUCKET = timedelta(seconds=BUCKET_SECONDS)
# Aggregations whose total is the rollups' counts (False) or counts and sums (True)
# added up, so the database adds them.
_ADDED = {"count": False, "unique_count": False, "sum": True, "avg": True, "duration": True}
_Key = tuple[int, int, str]  # (customer, window index, projected group JSON)


def usage(
    session: Session,
    workspace_id: int,
    meter: Meter,
    *,
    customer: Customer | None,
    start: datetime,
    end: datetime,
    window: Window | None,
    zone: ZoneInfo,
    group_by: tuple[str, ...] = (),
) -> list[UsageRow]:
    spec = rollups.spec_of(meter)
    spans = list(windows(start, end, window, zone))
    if not spans:
        return []
    scope = rollups.CustomerScope(*customers.scope_of(customer)) if customer else None
    states = _collect(session, workspace_id, spec, scope, spans, window, group_by)
    return _rows(session, spec, spans, states, customer)


def total(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    billing_customer_id: int,
    start: datetime,
    end: datetime,
) -> State:
    """Everything billed to a customer that ``spec`` counted in ``[start, end)``."""
    return totals(session, workspace_id, [spec], billing_customer_id, start, end)[spec.id]


def totals(
    session: Session,
    workspace_id: int,
    specs: list[MeterSpec],
    billing_customer_id: int,
    start: datetime,
    end: datetime,
) -> dict[int, State]:
    """``total`` of several meters at once (by meter id), as a usage query over one
    window answers it: the whole 15-minute buckets inside ``[start, end)`` from the
    rollups, the partial buckets at its edges from raw events. The whole buckets take a
    few queries for all the meters: counts, and the exact sums of sum, avg and duration
    meters, added up in the database; unique_count meters' distinct values; the rows of
    min, max and latest meters, folded here."""
    low, high = bucket_ceil(start), bucket_floor(end)
    if low < high:
        found = _whole_buckets(session, specs, billing_customer_id, low, high)
    else:
        found = {spec.id: State() for spec in specs}
    if low <= high:
        edges = [(s, e) for s, e in ((start, low), (high, end)) if s < e]
    else:  # inside one bucket
        edges = [(start, end)] if start < end else []
    scope = rollups.CustomerScope(billing_customer_id, billing=True)
    kept = _kept_since(session, workspace_id) if edges else None
    counted: dict[tuple[str, datetime, datetime], tuple[int, int]] = {}  # meters of one event type
    for spec in specs:
        for edge_start, edge_end in edges:
            kept_whole = kept is not None and bucket_floor(edge_start) >= kept
            edge = (edge_start, edge_end)
            into = found[spec.id]
            _add_edge(session, workspace_id, spec, scope, edge, into, kept_whole, counted)
    return found


def _kept_since(session: Session, workspace_id: int) -> datetime:
    """Since when the workspace's raw events are all kept (retention deletes older)."""
    d = rawsql.driver(session)
    rows = rawsql.run(
        session, f"SELECT event_retention_days FROM workspaces WHERE id = {d.mark}", (workspace_id,)
    )
    days = rows[0][0] if rows else None
    return datetime.min.replace(tzinfo=UTC) if days is None else utc_now() - timedelta(days=days)


def _add_edge(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    scope: rollups.CustomerScope,
    edge: tuple[datetime, datetime],
    into: State,
    whole_bucket_kept: bool,
    counted: dict[tuple[str, datetime, datetime], tuple[int, int]],
) -> None:
    """Add what ``spec`` counted in ``edge``, part of one 15-minute bucket.

    Raw events, unless the meter adds up (``rollups.ADDITIVE``), every raw event of the
    bucket is still kept (retention) and the rest of the bucket holds fewer events than
    the edge (an index-only count tells): then the bucket's rollup less the rest's raw
    events. A period that starts or ends inside the current bucket (a subscription made
    at 12:04) would otherwise read every event of the bucket so far on each usage view
    and new limit window — a cost that grew with the traffic until the bucket closed,
    and stayed for the whole period; the rest (12:00 to 12:04, before the period) is
    usually empty."""
    start, end = edge
    bucket = bucket_floor(start)
    after = bucket + _BUCKET
    if spec.aggregation in rollups.ADDITIVE and whole_bucket_kept:
        key = (spec.event_type, start, end)
        if key not in counted:
            counted[key] = _event_counts(session, workspace_id, spec, scope, edge)
        inside, everything = counted[key]
        if everything - inside < inside:
            whole = _whole_buckets(session, [spec], scope.customer_id, bucket, after)[spec.id]
            outside = State()
            for rest in ((bucket, start), (end, after)):
                if rest[0] < rest[1]:
                    _add_raw(session, workspace_id, spec, scope, *rest, _into(outside))
            into.count += whole.count - outside.count
            into.sum = CONTEXT.add(into.sum, CONTEXT.subtract(whole.sum, outside.sum))
            return
    _add_raw(session, workspace_id, spec, scope, start, end, _into(into))


def _event_counts(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    scope: rollups.CustomerScope,
    edge: tuple[datetime, datetime],
) -> tuple[int, int]:
    """How many of the customer's events of the meter's type lie in ``edge``, and in
    its whole bucket (the events index alone answers)."""
    d = rawsql.driver(session)
    bucket = bucket_floor(edge[0])
    rows = rawsql.run(
        session,
        f'SELECT count(*), sum(CASE WHEN "timestamp" >= {d.mark} AND "timestamp" < {d.mark} '
        "THEN 1 ELSE 0 END) FROM events WHERE workspace_id = "
        f"{d.mark} AND billing_customer_id = {d.mark} AND event_type = {d.mark} "
        f'AND "timestamp" >= {d.mark} AND "timestamp" < {d.mark}',
        (
            d.timestamp(edge[0]),
            d.timestamp(edge[1]),
            workspace_id,
            scope.customer_id,
            spec.event_type,
            d.timestamp(bucket),
            d.timestamp(bucket + _BUCKET),
        ),
    )
    everything, inside = rows[0]
    return int(inside or 0), int(everything or 0)


def _into(state: State) -> Callable[..., State]:
    """Every raw contribution into one state (one window, every group)."""
    return lambda *_: state


def _whole_buckets(
    session: Session,
    specs: list[MeterSpec],
    billing_customer_id: int,
    low: datetime,
    high: datetime,
) -> dict[int, State]:
    """The meters' states over ``[low, high)``, on the 15-minute grid, from the rollups."""
    found = {spec.id: State() for spec in specs}
    for sums in (False, True):
        added = [s.id for s in specs if _ADDED.get(s.aggregation) is sums]
        if added:
            for meter_id, count, value in rollups.sums_by_meter(
                session, added, billing_customer_id, low, high, sums=sums
            ):
                found[meter_id] = State(count=count, sum=_dec(value) if sums else ZERO)
    uniques = [s.id for s in specs if s.aggregation == "unique_count"]
    if uniques:
        for meter_id, values in rollups.distinct_values(
            session, uniques, billing_customer_id, low, high
        ).items():
            found[meter_id].uniques = values
    folded = [s.id for s in specs if s.aggregation not in _ADDED]
    if not folded:
        return found
    rows = rollups.read_many(session, folded, billing_customer_id, low, high)
    for meter_id, count, sum_, min_, max_, latest_key, latest_value in rows:
        found[meter_id].merge(
            State(
                count=count,
                sum=_dec(sum_),
                min=None if min_ is None else _dec(min_),
                max=None if max_ is None else _dec(max_),
                latest_key=latest_key,
                latest_value=None if latest_value is None else _dec(latest_value),
            )
        )
    return found


def _collect(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    scope: rollups.CustomerScope | None,
    spans: list[tuple[datetime, datetime]],
    window: Window | None,
    group_by: tuple[str, ...],
) -> dict[_Key, State]:
    """States per (customer, window index, group) over ``spans``."""
    start, end = spans[0][0], spans[-1][1]
    starts = [s for s, _ in spans]
    states: dict[_Key, State] = {}

    def state_for(customer_id: int, moment: datetime, group: str) -> State:
        index = bisect.bisect_right(starts, moment) - 1
        key = (
            customer_id if scope is None else scope.customer_id,
            index,
            _projected(group, group_by),
        )
        found = states.get(key)
        if found is None:
            found = states[key] = State()
        return found

    low, high = bucket_ceil(start), bucket_floor(end)
    raw_spans = _raw_spans(start, end, low, high, spans, window)
    skipped = {bucket for s, e in raw_spans for bucket in _buckets(s, e)}
    if window != "minute" and low < high:
        _fold_rollups(session, spec, low, high, scope, spans, skipped, group_by, states)
        if spec.aggregation == "unique_count":
            for billing, bucket, group, value in rollups.read_uniques(
                session, spec.id, low, high, scope
            ):
                if bucket not in skipped:
                    target = state_for(billing, bucket, group)
                    target.uniques = (target.uniques or set()) | {value}
    for span_start, span_end in raw_spans:
        _add_raw(session, workspace_id, spec, scope, span_start, span_end, state_for)
    return states


def _fold_rollups(
    session: Session,
    spec: MeterSpec,
    low: datetime,
    high: datetime,
    scope: rollups.CustomerScope | None,
    spans: list[tuple[datetime, datetime]],
    skipped: set[datetime],
    group_by: tuple[str, ...],
    states: dict[_Key, State],
) -> None:
    """Rollup rows into per-window states: the hot loop of every usage query, kept to
    plain tuples and the driver's own values."""
    d = rawsql.driver(session)
    starts = [d.timestamp(s) for s, _ in spans]
    skip = {d.timestamp(b) for b in skipped}
    columns, rows = rollups.read_totals(session, spec, low, high, scope)
    extra = columns[4:]
    projected: dict[str, str] = {}
    totals: dict[_Key, list[Any]] = {}
    for row in rows:
        billing, bucket, group = row[0], row[1], row[2]
        if bucket in skip:
            continue
        if group_by:
            label = projected.get(group)
            if label is None:
                label = projected[group] = _projected(group, group_by)
        else:
            label = "{}"
        key = (
            billing if scope is None else scope.customer_id,
            bisect.bisect_right(starts, bucket) - 1,
            label,
        )
        total = totals.get(key)
        if total is None:
            totals[key] = [row[3], *row[4:]]
            continue
        total[0] += row[3]
        _combine(total, row[4:], extra)
    for key, total in totals.items():
        state = states.setdefault(key, State())
        state.merge(_as_state(total, extra))


def _combine(total: list[Any], values: tuple[Any, ...], extra: list[str]) -> None:
    if extra == ["sum"]:
        total[1] = CONTEXT.add(_dec(total[1]), _dec(values[0]))
    elif extra == ["min"]:
        total[1] = min(_dec(total[1]), _dec(values[0]))
    elif extra == ["max"]:
        total[1] = max(_dec(total[1]), _dec(values[0]))
    elif extra == ["latest_key", "latest_value"] and values[0] > total[1]:
        total[1], total[2] = values[0], values[1]


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _as_state(total: list[Any], extra: list[str]) -> State:
    state = State(count=total[0])
    if extra == ["sum"]:
        state.sum = _dec(total[1])
    elif extra == ["min"]:
        state.min = _dec(total[1])
    elif extra == ["max"]:
        state.max = _dec(total[1])
    elif extra == ["latest_key", "latest_value"]:
        state.latest_key, state.latest_value = total[1], _dec(total[2])
    return state


def _projected(group: str, group_by: tuple[str, ...]) -> str:
    return orjson.dumps(project(group, group_by), option=orjson.OPT_SORT_KEYS).decode()


def _buckets(start: datetime, end: datetime) -> Iterator[datetime]:
    bucket = bucket_floor(start)
    while bucket < end:
        yield bucket
        bucket += _BUCKET


def _raw_spans(
    start: datetime,
    end: datetime,
    low: datetime,
    high: datetime,
    spans: list[tuple[datetime, datetime]],
    window: Window | None,
) -> list[tuple[datetime, datetime]]:
    """Parts of ``[start, end)`` that whole buckets (``[low, high)``) cannot answer:
    read from raw events."""
    if window == "minute" or low >= high:
        return [(start, end)]
    parts = []
    if start < low:
        parts.append((start, low))
    # A window boundary off the 15-minute grid (historic zone offsets) splits a bucket.
    for boundary, _ in spans[1:]:
        floor = bucket_floor(boundary)
        if floor != boundary and low <= floor < high:
            parts.append((floor, floor + _BUCKET))
    if high < end:
        parts.append((high, end))
    return parts


def _add_raw(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    scope: rollups.CustomerScope | None,
    start: datetime,
    end: datetime,
    state_for: Any,
) -> None:
    for event in store.counting(
        session, workspace_id, spec.event_type, start=start, end=end, scope=scope
    ):
        found = counted(spec, event.quantity, event.properties, event.timestamp, event.seq)
        if found is not None:
            contribution, key = found
            state_for(event.billing_customer_id, event.timestamp, contribution.group_key).add(
                contribution.value, key, contribution.unique
            )


def _rows(
    session: Session,
    spec: MeterSpec,
    spans: list[tuple[datetime, datetime]],
    states: dict[_Key, State],
    customer: Customer | None,
) -> list[UsageRow]:
    names = (
        {customer.id: customer.external_id}
        if customer
        else customers.external_ids(session, {k[0] for k in states})
    )
    rows = []
    for (customer_id, index, group), state in sorted(
        states.items(), key=lambda item: (item[0][1], names[item[0][0]], item[0][2])
    ):
        if state.count == 0 and not state.uniques:
            continue
        window_start, window_end = spans[index]
        rows.append(
            UsageRow(
                window_start=window_start,
                window_end=window_end,
                customer=names[customer_id],
                group=orjson.loads(group),
                value=display_decimal(state.result(spec)),
            )
        )
    return rows


# Aggregations whose value over many customers follows from their summed counts and sums.
SUMMABLE = {"count", "sum", "avg", "duration"}


@dataclass(frozen=True)
class Across:
    """A meter over every customer: per window and group, and per billing customer."""

    windows: list[tuple[datetime, datetime]]
    cells: dict[tuple[int, str], Decimal]  # (window index, projected group) -> value
    customers: dict[str, Decimal]  # billing customer's external id -> value


def across_customers(
    session: Session,
    workspace_id: int,
    meter: Meter,
    *,
    start: datetime,
    end: datetime,
    window: Window,
    zone: ZoneInfo,
    group_by: tuple[str, ...] = (),
    per_customer: bool = True,
) -> Across | None:
    """``usage`` over every customer, combined in the database: a window's value is the
    meter's aggregation over every customer's events in it (an average over all their
    events, say), each customer's over the whole range. Cost grows with buckets times
    customers but is spent in SQL, not Python.

    Only for aggregations that add up (``SUMMABLE``) over whole 15-minute buckets (the
    range and the windows on the grid); None otherwise (call ``usage``). Without
    ``per_customer`` the customers' values are left out (one query less)."""
    spec = rollups.spec_of(meter)
    spans = list(windows(start, end, window, zone))
    if spec.aggregation not in SUMMABLE or not spans:
        return None
    if not all(is_bucket_aligned(s) and is_bucket_aligned(e) for s, e in spans):
        return None
    d = rawsql.driver(session)
    starts = [s for s, _ in spans]
    grouped: dict[tuple[int, str], State] = {}
    projected: dict[str, str] = {}
    for bucket, group, count, total in rollups.sums_across(
        session, spec.id, workspace_id, start, end, "bucket", sums=spec.aggregation != "count"
    ):
        label = projected.get(group)
        if label is None:
            label = projected[group] = _projected(group, group_by)
        index = bisect.bisect_right(starts, d.parse_timestamp(bucket)) - 1
        grouped.setdefault((index, label), State()).merge(State(count=count, sum=_dec(total)))
    by_customer = (
        rollups.sums_across(
            session, spec.id, workspace_id, start, end, "customer", spec.aggregation != "count"
        )
        if per_customer
        else []
    )
    names = customers.external_ids(session, {row[0] for row in by_customer})
    return Across(
        windows=spans,
        cells={key: state.result(spec) for key, state in grouped.items()},
        customers={
            names[billing]: State(count=count, sum=_dec(total)).result(spec)
            for billing, count, total in by_customer
        },
    )
