"""Meters: definitions, and the rule that past numbers never change under a user."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.db import insert_unique
from meterline.errors import AlreadyExists, Conflict, FieldError, NotFound, ValidationFailed
from meterline.ingestion import store
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.time import utc_now
from meterline.meters import rollups
from meterline.meters.models import Meter
from meterline.meters.schemas import (
    ADDITIVE,
    MeterCreate,
    MeterRead,
    MeterUpdate,
    check_consistency,
    check_stripe_mapping,
)
from meterline.workspaces import terms as workspace_terms

# Changing one of these would rewrite numbers already reported or billed.
PROTECTED = ("event_type", "aggregation", "value_property", "filter")


class MeterInUse(Conflict):
    code = "meter_has_events"
    title = "Meter has events"


def to_read(meter: Meter) -> MeterRead:
    return MeterRead.model_validate(meter, from_attributes=True)


def get(session: Session, workspace_id: int, key: str) -> Meter:
    meter = session.scalar(
        select(Meter).where(Meter.workspace_id == workspace_id, Meter.key == key)
    )
    if meter is None:
        raise NotFound(f"No meter {key!r}.")
    return meter


def by_id(session: Session, meter_id: int) -> Meter:
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise NotFound("No such meter.")
    return meter


def by_keys(session: Session, workspace_id: int, keys: set[str]) -> dict[str, Meter]:
    if not keys:
        return {}
    rows = session.scalars(
        select(Meter).where(Meter.workspace_id == workspace_id, Meter.key.in_(keys))
    )
    return {meter.key: meter for meter in rows}


def by_ids(session: Session, meter_ids: set[int]) -> list[Meter]:
    if not meter_ids:
        return []
    return list(session.scalars(select(Meter).where(Meter.id.in_(meter_ids))))


def mark_features(
    session: Session, workspace_id: int, limited: set[str], credited: set[str]
) -> None:
    """Record which meters some plan limits (ingestion keeps their counters) and which
    some plan prices in credits (ingestion charges their usage)."""
    for meter in session.scalars(select(Meter).where(Meter.workspace_id == workspace_id)):
        meter.limited = meter.key in limited
        meter.credited = meter.key in credited
    session.flush()


def create(session: Session, workspace_id: int, data: MeterCreate) -> Meter:
    """A new meter; events of its type already stored count at once (backfilled)."""
    meter = Meter(
        workspace_id=workspace_id,
        key=data.key,
        name=data.name or data.key,
        event_type=data.event_type,
        aggregation=data.aggregation,
        value_property=data.value_property,
        filter=data.filter,
        group_by=data.group_by,
        unit=data.unit or ("second" if data.aggregation == "duration" else None),
        stripe_event_name=data.stripe_event_name,
    )
    insert_unique(session, meter, AlreadyExists(f"A meter {data.key!r} exists."))
    rollups.rebuild(session, workspace_id, rollups.spec_of(meter))
    workspace_terms.bump(session, workspace_id)
    return meter


def list_page(session: Session, workspace_id: int, *, limit: int, after: str | None) -> Page[Meter]:
    query = (
        select(Meter).where(Meter.workspace_id == workspace_id).order_by(Meter.id).limit(limit + 1)
    )
    if (last := cursor_key(after, int)) is not None:
        query = query.where(Meter.id > last)
    return make_page(list(session.scalars(query)), limit, key=lambda meter: meter.id)


def update(session: Session, workspace_id: int, key: str, patch: MeterUpdate) -> Meter:
    meter = get(session, workspace_id, key)
    changes = {
        name: getattr(patch, name)
        for name in patch.model_fields_set
        if getattr(patch, name) != getattr(meter, name)
    }
    for name in ("name", "event_type", "aggregation", "filter", "group_by"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(
                errors=[FieldError(name, "null_not_allowed", f"{name} cannot be null")]
            )
    protected = [name for name in PROTECTED if name in changes]
    if meter.aggregation == "duration" and "unit" in changes:
        protected.append("unit")
    if protected and store.has_events(session, workspace_id, meter.event_type):
        raise MeterInUse(
            f"Meter {key!r} has events: changing {', '.join(protected)} would rewrite past "
            "numbers. Create a new meter instead."
        )
    candidate = {
        **{n: getattr(meter, n) for n in ("aggregation", "value_property", "unit")},
        **changes,
    }
    try:
        check_consistency(candidate["aggregation"], candidate["value_property"], candidate["unit"])
    except ValueError as exc:  # PydanticCustomError is a ValueError
        raise ValidationFailed(
            str(exc), errors=[FieldError("aggregation", "inconsistent_meter", str(exc))]
        ) from exc
    try:
        check_stripe_mapping(
            candidate["aggregation"], changes.get("stripe_event_name", meter.stripe_event_name)
        )
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), errors=[FieldError("stripe_event_name", "meter_not_additive", str(exc))]
        ) from exc
    for name, value in changes.items():
        setattr(meter, name, value)
    meter.updated_at = utc_now()
    session.flush()
    if changes.keys() & {"group_by", *PROTECTED}:
        rollups.rebuild(session, workspace_id, rollups.spec_of(meter))
    workspace_terms.bump(session, workspace_id)
    return meter


def delete(session: Session, workspace_id: int, key: str) -> None:
    """Remove a meter and its rollups; its events stay (a new meter counts them again)."""
    meter = get(session, workspace_id, key)
    rollups.clear(session, meter.id)
    session.delete(meter)
    session.flush()
    workspace_terms.bump(session, workspace_id)


def stripe_mapped(session: Session, workspace_id: int) -> list[Meter]:
    """Meters reported to Stripe (with a ``stripe_event_name``)."""
    query = select(Meter).where(
        Meter.workspace_id == workspace_id, Meter.stripe_event_name.is_not(None)
    )
    return list(session.scalars(query.order_by(Meter.id)))


def stripe_unmapped(session: Session, workspace_id: int) -> list[str]:
    """Keys of the meters that could be reported to Stripe but are not mapped."""
    query = select(Meter.key).where(
        Meter.workspace_id == workspace_id,
        Meter.stripe_event_name.is_(None),
        Meter.aggregation.in_(ADDITIVE),
    )
    return list(session.scalars(query.order_by(Meter.key)))
