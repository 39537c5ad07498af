"""Rollups: a meter's totals per customer, 15-minute bucket and group, kept current.

``apply`` folds new contributions into the rollup tables in one upsert per table:
exact decimal arithmetic in SQL (NUMERIC on PostgreSQL, text + registered functions
on SQLite), so concurrent writers never lose an update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Table, case, delete, or_, select
from sqlalchemy.orm import Session

from meterline.db import dialect_insert
from meterline.kit.sqltypes import dec_add, dec_max, dec_min
from meterline.meters.aggregation import Contribution, MeterSpec, State
from meterline.meters.models import Meter, MeterRollup, MeterUnique

_ROLLUPS: Table = MeterRollup.__table__  # type: ignore[assignment]
_UNIQUES: Table = MeterUnique.__table__  # type: ignore[assignment]


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
    )


def specs_by_type(
    session: Session, workspace_id: int, event_types: Iterable[str]
) -> dict[str, list[MeterSpec]]:
    """The workspace's meters for these event types."""
    types = set(event_types)
    found: dict[str, list[MeterSpec]] = {}
    if not types:
        return found
    rows = session.scalars(
        select(Meter).where(Meter.workspace_id == workspace_id, Meter.event_type.in_(types))
    )
    for meter in rows:
        found.setdefault(meter.event_type, []).append(spec_of(meter))
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


def apply(session: Session, pending: Pending) -> None:
    """Fold pending contributions into the rollup tables."""
    if pending.states:
        insert = dialect_insert(session, _ROLLUPS)
        old, new = _ROLLUPS.c, insert.excluded
        newer = or_(old.latest_key.is_(None), new.latest_key > old.latest_key)
        statement = insert.on_conflict_do_update(
            index_elements=[old.meter_id, old.customer_id, old.bucket_start, old.group_key],
            set_={
                "count": old.count + new.count,
                "sum": dec_add(old.sum, new.sum),
                "min": dec_min(old.min, new.min),
                "max": dec_max(old.max, new.max),
                "latest_value": case((newer, new.latest_value), else_=old.latest_value),
                "latest_key": case((newer, new.latest_key), else_=old.latest_key),
            },
        )
        rows = [
            {
                "meter_id": meter_id,
                "customer_id": customer_id,
                "bucket_start": bucket,
                "group_key": group,
                "billing_customer_id": billing,
                "count": state.count,
                "sum": state.sum,
                "min": state.min,
                "max": state.max,
                "latest_key": state.latest_key,
                "latest_value": state.latest_value,
            }
            for (meter_id, customer_id, bucket, group), (billing, state) in sorted(
                pending.states.items(), key=lambda item: item[0]
            )
        ]
        session.execute(statement, rows)
    if pending.uniques:
        insert = dialect_insert(session, _UNIQUES).on_conflict_do_nothing()
        session.execute(
            insert,
            [
                {
                    "meter_id": m,
                    "customer_id": c,
                    "bucket_start": b,
                    "group_key": g,
                    "value": v,
                    "billing_customer_id": bc,
                }
                for m, c, b, g, v, bc in sorted(pending.uniques)
            ],
        )


def clear(session: Session, meter_id: int) -> None:
    session.execute(delete(MeterRollup).where(MeterRollup.meter_id == meter_id))
    session.execute(delete(MeterUnique).where(MeterUnique.meter_id == meter_id))


@dataclass(frozen=True)
class CustomerScope:
    """Whose usage: everything billed to a customer, or only what it sent itself."""

    customer_id: int
    billing: bool


RollupRow = tuple[
    int, datetime, str, int, Decimal, Decimal | None, Decimal | None, str | None, Decimal | None
]


def read_states(
    session: Session,
    meter_id: int,
    start: datetime,
    end: datetime,
    scope: CustomerScope | None,
) -> Sequence[RollupRow]:
    """Rollup rows of one meter in ``[start, end)`` (bucket-aligned), ordered by bucket."""
    t = MeterRollup
    query = (
        select(
            t.billing_customer_id,
            t.bucket_start,
            t.group_key,
            t.count,
            t.sum,
            t.min,
            t.max,
            t.latest_key,
            t.latest_value,
        )
        .where(t.meter_id == meter_id, t.bucket_start >= start, t.bucket_start < end)
        .order_by(t.bucket_start)
    )
    if scope is not None:
        query = query.where(
            (t.billing_customer_id if scope.billing else t.customer_id) == scope.customer_id
        )
    return session.execute(query).tuples().all()


def read_uniques(
    session: Session,
    meter_id: int,
    start: datetime,
    end: datetime,
    scope: CustomerScope | None,
) -> Sequence[tuple[int, datetime, str, str]]:
    t = MeterUnique
    query = (
        select(t.billing_customer_id, t.bucket_start, t.group_key, t.value)
        .where(t.meter_id == meter_id, t.bucket_start >= start, t.bucket_start < end)
        .order_by(t.bucket_start)
    )
    if scope is not None:
        query = query.where(
            (t.billing_customer_id if scope.billing else t.customer_id) == scope.customer_id
        )
    return session.execute(query).tuples().all()
