"""A customer's usage in money: the current period, past periods, a forecast."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from meterline.api.deps import DB, V1
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require, require_or_customer
from meterline.auth.scopes import Scope
from meterline.credits import service as credits
from meterline.invoicing import service as invoicing
from meterline.kit.time import utc_now
from meterline.pricing import service
from meterline.pricing.schemas import ForecastRead, UsageHistory, UsageRead

router = APIRouter(prefix=f"{V1}/customers", tags=["Usage and billing"], route_class=MeterlineRoute)
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]
ReaderOrCustomer = Annotated[AuthContext, Depends(require_or_customer(Scope.READ))]


@router.get("/{external_id}/usage", response_model=UsageRead)
def get_usage(
    external_id: str,
    auth: ReaderOrCustomer,
    db: DB,
    features: Annotated[
        list[str] | None,
        Query(description="Only these features' lines (repeat or comma-separate)."),
    ] = None,
) -> UsageRead:
    """The current billing period as it stands: every feature of the plan with `used`,
    `included`, `billable` and `amount` (rounded half-up to the currency), the base
    fee (prorated by days when the period is partial or the plan changed in it), the
    total (the sum of the rounded lines) and the credit balance. A member of an
    organization answers with its organization's (`billed_to`). 404 `no_plan` without
    a subscription or a workspace default plan. `features` keeps only those features'
    lines (the base fee and the total stay the whole bill's); a feature the plan lacks
    is 422 `unknown_feature`. (A customer token may read its own.)"""
    auth.limit_to(external_id)
    wanted = [name for item in features or [] for name in item.split(",") if name]
    now = utc_now()
    credits.refresh(db, auth.workspace_id, external_id, now)
    with db.read() as session:
        return service.current(session, auth.workspace_id, external_id, now, wanted)


@router.get("/{external_id}/usage/history", response_model=UsageHistory)
def get_usage_history(
    external_id: str,
    auth: ReaderOrCustomer,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=120, description="How many past periods.")] = 12,
) -> UsageHistory:
    """Past periods, newest first, priced as the current period is, with each
    period's invoice. Usage counts every event of the period, late ones too: where
    that differs from a finalized invoice, the invoice shows it as `late_usage`.
    (A customer token may read its own.)"""
    auth.limit_to(external_id)
    with db.read() as session:
        return invoicing.usage_history(session, auth.workspace_id, external_id, utc_now(), limit)


@router.get("/{external_id}/usage/forecast", response_model=ForecastRead)
def get_usage_forecast(external_id: str, auth: Reader, db: DB) -> ForecastRead:
    """Projected usage and amount per feature at the end of the current period, and
    when each limit will be reached at the current rate (the `method` field says how:
    a straight-line projection of the period so far)."""
    now = utc_now()
    with db.read() as session:
        return service.forecast(session, auth.workspace_id, external_id, now)
