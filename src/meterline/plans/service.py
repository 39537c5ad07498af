"""Plans: definitions checked against the workspace's meters, replaced whole by PUT.

Editing a plan changes it for every subscription on it from that moment: limits and
prices of open periods follow the new version. Invoices keep the lines they were made
with (issue: billing), so a finalized invoice never changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.db import insert_unique
from meterline.errors import AlreadyExists, FieldError, NotFound, ValidationFailed
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.time import utc_now
from meterline.meters import service as meters
from meterline.plans.models import Plan
from meterline.plans.schemas import PlanCreate, PlanFields, PlanRead, PlanReplace
from meterline.workspaces import terms as workspace_terms

# Limits compare a running total with max, and credit costs price each unit used: only
# aggregations that add up can have either.
LIMITABLE = ("count", "sum", "duration")


def to_read(plan: Plan) -> PlanRead:
    return PlanRead.model_validate(
        {
            **plan.definition,
            "key": plan.key,
            "version": plan.version,
            "created_at": plan.created_at,
            "updated_at": plan.updated_at,
        }
    )


def definition(plan: Plan) -> PlanFields:
    """The plan's definition as validated models (stored JSON was validated on write)."""
    return PlanFields.model_validate(plan.definition)


def _checked(session: Session, workspace_id: int, data: PlanFields) -> dict[str, Any]:
    """The definition as stored JSON, once every feature names a meter that can do it."""
    found = meters.by_keys(session, workspace_id, set(data.features))
    errors = []
    for key, feature in data.features.items():
        meter = found.get(key)
        if meter is None:
            errors.append(FieldError(f"features.{key}", "unknown_meter", f"no meter {key!r}"))
        elif feature.limits and meter.aggregation not in LIMITABLE:
            errors.append(
                FieldError(
                    f"features.{key}.limits",
                    "limit_not_supported",
                    f"limits need a count, sum or duration meter; {key!r} is {meter.aggregation}",
                )
            )
        elif feature.credit_cost and meter.aggregation not in LIMITABLE:
            errors.append(
                FieldError(
                    f"features.{key}.credit_cost",
                    "credit_cost_not_supported",
                    "credit costs need a count, sum or duration meter; "
                    f"{key!r} is {meter.aggregation}",
                )
            )
    if errors:
        raise ValidationFailed("The plan names features it cannot have.", errors=errors)
    return data.model_dump(mode="json", exclude={"key"})


def create(session: Session, workspace_id: int, data: PlanCreate) -> Plan:
    plan = Plan(
        workspace_id=workspace_id, key=data.key, definition=_checked(session, workspace_id, data)
    )
    insert_unique(session, plan, AlreadyExists(f"A plan {data.key!r} exists."))
    _mark_features(session, workspace_id)
    workspace_terms.bump(session, workspace_id)
    return plan


def _mark_features(session: Session, workspace_id: int) -> None:
    features = [
        (key, feature)
        for definition in session.scalars(
            select(Plan.definition).where(Plan.workspace_id == workspace_id)
        )
        for key, feature in definition.get("features", {}).items()
    ]
    meters.mark_features(
        session,
        workspace_id,
        {key for key, feature in features if feature.get("limits")},
        {key for key, feature in features if feature.get("credit_cost")},
    )


def find(session: Session, workspace_id: int, key: str) -> Plan | None:
    return session.scalar(select(Plan).where(Plan.workspace_id == workspace_id, Plan.key == key))


def get(session: Session, workspace_id: int, key: str) -> Plan:
    plan = find(session, workspace_id, key)
    if plan is None:
        raise NotFound(f"No plan {key!r}.")
    return plan


def by_id(session: Session, plan_id: int) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None:  # pragma: no cover - plans are never deleted
        raise NotFound("No such plan.")
    return plan


def replace(session: Session, workspace_id: int, key: str, data: PlanReplace) -> Plan:
    plan = get(session, workspace_id, key)
    plan.definition = _checked(session, workspace_id, data)
    plan.version += 1
    plan.updated_at = utc_now()
    session.flush()
    _mark_features(session, workspace_id)
    workspace_terms.bump(session, workspace_id)
    return plan


def list_page(session: Session, workspace_id: int, *, limit: int, after: str | None) -> Page[Plan]:
    query = select(Plan).where(Plan.workspace_id == workspace_id).order_by(Plan.id)
    if (last := cursor_key(after, int)) is not None:
        query = query.where(Plan.id > last)
    return make_page(list(session.scalars(query.limit(limit + 1))), limit, key=lambda p: p.id)
