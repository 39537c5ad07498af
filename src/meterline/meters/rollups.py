"""Rollups: a meter's totals per customer, 15-minute bucket and group, kept current.

``apply`` folds new contributions into the rollup tables in one upsert per table:
exact decimal arithmetic in SQL (NUMERIC on PostgreSQL, text + registered functions
on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, select
from sqlalchemy.orm import Session

from meterline.ingestion import store
from meterline.kit import rawsql
from meterline.kit.periods import bucket_floor
from meterline.meters.aggregation import Contribution, MeterSpec, State, counted
from meterline.meters.models import Meter, MeterRollup, MeterUnique


def spec_of(meter: Meter) -> MeterSpec:
    return MeterSpec(
        id=meter.id,
        key=meter.key,
        event_type=meter.event_type,
        aggregation=meter.aggregation,  # type: ignore[arg-type]
        value_property=meter.value_property,
        filter=dict(meter.filter),
        group_by=tuple(meter.group_by),
        unit=meter.unit,
        limited=meter.limited,
        credited=meter.credited,
    )


def specs_by_type(
    session: Session, workspace_id: int, event_types: Iterable[str]
) -> dict[str, list[MeterSpec]]:
    """The workspace's meters for these event types (read on every write, never
    cached, so a meter made by another process counts its next event)."""
    types = sorted(set(event_types))
    found: dict[str, list[MeterSpec]] = {}
    if not types:
        return found
    d = rawsql.driver(session)
    rows = rawsql.run(
        session,
        "SELECT id, key, event_type, aggregation, value_property, filter, group_by, unit, "
        f"limited, credited FROM meters WHERE workspace_id = {d.mark} "
        f"AND event_type IN ({', '.join([d.mark] * len(types))})",
        (workspace_id, *types),
    )
    for row in rows:
        mid, key, event_type, aggregation, value_property, filter_, group_by, unit = row[:8]
        found.setdefault(event_type, []).append(
            MeterSpec(
                id=mid,
                key=key,
                event_type=event_type,
                aggregation=aggregation,
                value_property=value_property,
                filter=d.parse_json(filter_),
                group_by=tuple(d.parse_json(group_by)),
                unit=unit,
                limited=bool(row[8]),
                credited=bool(row[9]),
            )
        )
    return found


@dataclass
class Pending:
    """Contributions gathered for one write, merged per rollup row."""

    states: dict[tuple[int, int, datetime, str], tuple[int, State]] = field(default_factory=dict)
    uniques: set[tuple[int, int, datetime, str, str, int]] = field(default_factory=set)

    def add(
        self,
        spec: MeterSpec,
        customer_id: int,
        billing_customer_id: int,
        bucket: datetime,
        contribution: Contribution,
        latest_key: str,
    ) -> None:
        key = (spec.id, customer_id, bucket, contribution.group_key)
        entry = self.states.get(key)
        if entry is None:
            entry = (billing_customer_id, State())
            self.states[key] = entry
        entry[1].add(contribution.value, latest_key, None)
        if contribution.unique is not None:
            self.uniques.add(
                (
                    spec.id,
                    customer_id,
                    bucket,
                    contribution.group_key,
                    contribution.unique,
                    billing_customer_id,
                )
            )


_ROLLUP_COLUMNS = (  # (name, PostgreSQL type)
    ("meter_id", "bigint"),
    ("customer_id", "bigint"),
    ("bucket_start", "timestamptz"),
    ("group_key", "text"),
    ("billing_customer_id", "bigint"),
    ("count", "bigint"),
    ("sum", "numeric"),
    ("min", "numeric"),
    ("max", "numeric"),
    ("latest_key", "text"),
    ("latest_value", "numeric"),
)
_UNIQUE_COLUMNS = (
    ("meter_id", "bigint"),
    ("customer_id", "bigint"),
    ("bucket_start", "timestamptz"),
    ("group_key", "text"),
    ("value", "text"),
    ("billing_customer_id", "bigint"),
)


def _rollup_upsert(d: rawsql.Driver) -> str:
    newer = "(meter_rollups.latest_key IS NULL OR excluded.latest_key > meter_rollups.latest_key)"
    return (
        "ON CONFLICT (meter_id, customer_id, bucket_start, group_key) DO UPDATE SET "
        "count = meter_rollups.count + excluded.count, "
        f"sum = {d.add.format('meter_rollups.sum', 'excluded.sum')}, "
        f"min = {d.least.format('meter_rollups.min', 'excluded.min')}, "
        f"max = {d.greatest.format('meter_rollups.max', 'excluded.max')}, "
        f"latest_value = CASE WHEN {newer} THEN excluded.latest_value "
        "ELSE meter_rollups.latest_value END, "
        f"latest_key = CASE WHEN {newer} THEN excluded.latest_key "
        "ELSE meter_rollups.latest_key END"
    )


def apply(session: Session, pending: Pending) -> None:
    """Fold pending contributions into the rollup tables: one upsert per table, with the
    arithmetic in SQL so concurrent writers never lose an update. Rows go in key order,
    so concurrent transactions lock them in the same order (no deadlocks)."""
    d = rawsql.driver(session)
    if pending.states:
        rows = [
            (
                meter_id,
                customer_id,
                d.timestamp(bucket),
                group,
                billing,
                state.count,
                d.decimal(state.sum),
                d.decimal(state.min),
                d.decimal(state.max),
                state.latest_key,
                d.decimal(state.latest_value),
            )
            for (meter_id, customer_id, bucket, group), (billing, state) in sorted(
                pending.states.items(), key=lambda item: item[0]
            )
        ]
        d.insert_many(session, "meter_rollups", _ROLLUP_COLUMNS, rows, _rollup_upsert(d))
    if pending.uniques:
        values = [(m, c, d.timestamp(b), g, v, bc) for m, c, b, g, v, bc in sorted(pending.uniques)]
        d.insert_many(
            session,
            "meter_uniques",
            _UNIQUE_COLUMNS,
            values,
            "ON CONFLICT DO NOTHING",
        )


# Aggregations whose rollup rows can take an event back by subtraction (count and sum);
# the others (min, max, latest, unique values) are rebuilt from the bucket's events.
ADDITIVE = frozenset({"count", "sum", "avg", "duration"})


def _row_key(d: rawsql.Driver) -> str:
    return (
        f"meter_id = {d.mark} AND customer_id = {d.mark} AND bucket_start = {d.mark} "
        f"AND group_key = {d.mark}"
    )


def retract(
    session: Session,
    spec: MeterSpec,
    customer_id: int,
    bucket: datetime,
    group_key: str,
    value: Decimal,
) -> None:
    """Take one event's contribution (``value``) back out of an additive meter's rollup
    row; a row left with no event goes."""
    d = rawsql.driver(session)
    key = (spec.id, customer_id, d.timestamp(bucket), group_key)
    rawsql.run(
        session,
        f"UPDATE meter_rollups SET count = count - 1, sum = {d.add.format('sum', d.mark)} "
        f"WHERE {_row_key(d)}",
        (d.decimal(-value), *key),
    )
    rawsql.run(session, f"DELETE FROM meter_rollups WHERE {_row_key(d)} AND count <= 0", key)


def replace_bucket(
    session: Session,
    spec: MeterSpec,
    customer_id: int,
    bucket: datetime,
    group_key: str,
    pending: Pending,
) -> None:
    """Rebuild one rollup row (and its unique values) from ``pending``: the bucket's
    remaining events, folded again."""
    d = rawsql.driver(session)
    key = (spec.id, customer_id, d.timestamp(bucket), group_key)
    rawsql.run(session, f"DELETE FROM meter_rollups WHERE {_row_key(d)}", key)
    rawsql.run(session, f"DELETE FROM meter_uniques WHERE {_row_key(d)}", key)
    apply(session, pending)


def clear(session: Session, meter_id: int) -> None:
    session.execute(delete(MeterRollup).where(MeterRollup.meter_id == meter_id))
    session.execute(delete(MeterUnique).where(MeterUnique.meter_id == meter_id))


CustomerScope = store.Scope


def _in_range(
    table: type[MeterUnique],
    meter_id: int,
    start: datetime,
    end: datetime,
    scope: CustomerScope | None,
) -> ColumnElement[bool]:
    """One meter's rows in ``[start, end)``, for one customer's scope or everyone's."""
    condition = and_(
        table.meter_id == meter_id, table.bucket_start >= start, table.bucket_start < end
    )
    if scope is not None:
        column = table.billing_customer_id if scope.billing else table.customer_id
        condition = and_(condition, column == scope.customer_id)
    return condition


def read_uniques(
    session: Session,
    meter_id: int,
    start: datetime,
    end: datetime,
    scope: CustomerScope | None,
) -> Sequence[tuple[int, datetime, str, str]]:
    """Distinct values of a unique_count meter in ``[start, end)``, ordered by bucket."""
    t = MeterUnique
    query = select(t.billing_customer_id, t.bucket_start, t.group_key, t.value).where(
        _in_range(t, meter_id, start, end, scope)
    )
    return session.execute(query.order_by(t.bucket_start)).all()


# What each aggregation needs from a rollup row, beyond its count.
_TOTALS = {
    "count": (),
    "sum": ("sum",),
    "avg": ("sum",),
    "duration": ("sum",),
    "unique_count": (),
    "min": ("min",),
    "max": ("max",),
    "latest": ("latest_key", "latest_value"),
}


def read_totals(
    session: Session,
    meter: MeterSpec,
    start: datetime,
    end: datetime,
    scope: CustomerScope | None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The hot read of usage queries: only the columns ``meter``'s aggregation needs, as
    the driver returns them (bucket starts stay in the driver's form: ISO text on
    SQLite, which sorts like time). Returns (columns, rows)."""
    d = rawsql.driver(session)
    columns = [
        "billing_customer_id",
        "bucket_start",
        "group_key",
        "count",
        *_TOTALS[meter.aggregation],
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM meter_rollups WHERE meter_id = {d.mark} "
        f"AND bucket_start >= {d.mark} AND bucket_start < {d.mark}"
    )
    params: list[Any] = [meter.id, d.timestamp(start), d.timestamp(end)]
    if scope is not None:
        sql += f" AND {'billing_customer_id' if scope.billing else 'customer_id'} = {d.mark}"
        params.append(scope.customer_id)
    rows = rawsql.run(session, sql + " ORDER BY bucket_start", tuple(params))
    return columns, [tuple(row) for row in rows]


def read_many(
    session: Session,
    meter_ids: Sequence[int],
    billing_customer_id: int,
    start: datetime,
    end: datetime,
) -> list[tuple[Any, ...]]:
    """Every rollup row of several meters for one billing customer in ``[start, end)``:
    (meter id, count, sum, min, max, latest key, latest value), as the driver returns them."""
    d = rawsql.driver(session)
    marks = ", ".join([d.mark] * len(meter_ids))
    sql = (
        "SELECT meter_id, count, sum, min, max, latest_key, latest_value FROM meter_rollups "
        f"WHERE meter_id IN ({marks}) AND billing_customer_id = {d.mark} "
        f"AND bucket_start >= {d.mark} AND bucket_start < {d.mark}"
    )
    params = (*meter_ids, billing_customer_id, d.timestamp(start), d.timestamp(end))
    return [tuple(row) for row in rawsql.run(session, sql, params)]


def sums_by_meter(
    session: Session,
    meter_ids: Sequence[int],
    billing_customer_id: int,
    start: datetime,
    end: datetime,
    *,
    sums: bool,
) -> list[tuple[int, int, Any]]:
    """(meter id, count, exact sum) of several meters' rollup rows for one billing
    customer in ``[start, end)``, added up in the database (a meter with no row is
    absent). Without ``sums`` the sum is left out (0): a count meter needs none, and
    SQLite's exact sum calls Python once per row."""
    d = rawsql.driver(session)
    total = "0" if not sums else "dec_sum(sum)" if d.dialect == "sqlite" else "SUM(sum)"
    marks = ", ".join([d.mark] * len(meter_ids))
    sql = (
        f"SELECT meter_id, SUM(count), {total} FROM meter_rollups "
        f"WHERE meter_id IN ({marks}) AND billing_customer_id = {d.mark} "
        f"AND bucket_start >= {d.mark} AND bucket_start < {d.mark} GROUP BY meter_id"
    )
    params = (*meter_ids, billing_customer_id, d.timestamp(start), d.timestamp(end))
    return [
        (int(meter), int(count), value) for meter, count, value in rawsql.run(session, sql, params)
    ]


def distinct_values(
    session: Session,
    meter_ids: Sequence[int],
    billing_customer_id: int,
    start: datetime,
    end: datetime,
) -> dict[int, set[str]]:
    """The distinct values each unique_count meter saw for one billing customer in
    ``[start, end)``, across groups (a meter with none is absent)."""
    d = rawsql.driver(session)
    marks = ", ".join([d.mark] * len(meter_ids))
    sql = (
        f"SELECT DISTINCT meter_id, value FROM meter_uniques WHERE meter_id IN ({marks}) "
        f"AND billing_customer_id = {d.mark} AND bucket_start >= {d.mark} "
        f"AND bucket_start < {d.mark}"
    )
    params = (*meter_ids, billing_customer_id, d.timestamp(start), d.timestamp(end))
    found: dict[int, set[str]] = {}
    for meter_id, value in rawsql.run(session, sql, params):
        found.setdefault(int(meter_id), set()).add(value)
    return found


def read_range(
    session: Session, meter_ids: Sequence[int], start: datetime, end: datetime
) -> list[tuple[int, int, datetime, int, Decimal]]:
    """(meter id, billing customer id, bucket start, count, sum) of every rollup row of
    these meters in ``[start, end)``, in bucket order (what a report to another system
    needs of additive meters)."""
    if not meter_ids:
        return []
    d = rawsql.driver(session)
    marks = ", ".join([d.mark] * len(meter_ids))
    sql = (
        "SELECT meter_id, billing_customer_id, bucket_start, count, sum FROM meter_rollups "
        f"WHERE meter_id IN ({marks}) AND bucket_start >= {d.mark} AND bucket_start < {d.mark} "
        "ORDER BY bucket_start"
    )
    params = (*meter_ids, d.timestamp(start), d.timestamp(end))
    return [
        (meter_id, billing, d.parse_timestamp(bucket), count, Decimal(str(total)))
        for meter_id, billing, bucket, count, total in rawsql.run(session, sql, params)
    ]


def sums_across(
    session: Session,
    meter_id: int,
    workspace_id: int,
    start: datetime,
    end: datetime,
    by: Literal["bucket", "customer"],
    sums: bool = True,
) -> list[tuple[Any, ...]]:
    """A meter's count and exact sum over every customer of the workspace in ``[start,
    end)``, added up in the database: per (bucket start, group key), or per billing
    customer. The customers are named (``IN`` the workspace's ids) so that the index on
    (meter, billing customer, bucket) is used customer by customer instead of every
    row of the meter being read. Without ``sums`` the sum is left out (0): a count
    meter needs none, and SQLite's exact sum calls Python once per row."""
    d = rawsql.driver(session)
    total = "0" if not sums else "dec_sum(sum)" if d.dialect == "sqlite" else "SUM(sum)"
    key = "bucket_start, group_key" if by == "bucket" else "billing_customer_id"
    sql = (
        f"SELECT {key}, SUM(count), {total} FROM meter_rollups WHERE meter_id = {d.mark} "
        f"AND billing_customer_id IN (SELECT id FROM customers WHERE workspace_id = {d.mark}) "
        f"AND bucket_start >= {d.mark} AND bucket_start < {d.mark} GROUP BY {key}"
    )
    params = (meter_id, workspace_id, d.timestamp(start), d.timestamp(end))
    return [tuple(row) for row in rawsql.run(session, sql, params)]


def fold_stored(pending: Pending, spec: MeterSpec, event: Any) -> Decimal | None:
    """Fold one stored event (an ``Event`` row) into ``pending``; returns what it
    counted (None: nothing)."""
    timestamp: datetime = event.timestamp
    found = counted(spec, event.quantity, event.properties, timestamp, event.seq)
    if found is None:
        return None
    contribution, key = found
    pending.add(
        spec,
        event.customer_id,
        event.billing_customer_id,
        bucket_floor(timestamp),
        contribution,
        key,
    )
    return contribution.value


def rebuild(session: Session, workspace_id: int, spec: MeterSpec) -> None:
    """Recompute a meter's rollups from its stored events (a new meter, a new
    ``group_by``, voids): the rollups are always what the events say."""
    clear(session, spec.id)
    pending = Pending()
    for count, event in enumerate(store.counting(session, workspace_id, spec.event_type), 1):
        fold_stored(pending, spec, event)
        if count % 20_000 == 0:
            apply(session, pending)
            pending = Pending()
    apply(session, pending)
