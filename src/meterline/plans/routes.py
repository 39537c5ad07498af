from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.plans import service
from meterline.plans.schemas import PlanCreate, PlanList, PlanRead, PlanReplace

router = APIRouter(prefix=f"{V1}/plans", tags=["Plans"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PlanRead)
def create_plan(body: PlanCreate, auth: Admin, db: DB) -> PlanRead:
    """Define a plan: currency, interval, base fee, credits, and per-meter features with
    included units, price, credit cost and limits. 422 names each invalid field."""
    with db.write() as session:
        return service.to_read(service.create(session, auth.workspace_id, body))


@router.get("", response_model=PlanList)
def list_plans(auth: Reader, db: DB, limit: Limit = DEFAULT_LIMIT, after: After = None) -> PlanList:
    with db.read() as session:
        page = service.list_page(session, auth.workspace_id, limit=limit, after=after)
        return PlanList(data=[service.to_read(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/{key}", response_model=PlanRead)
def get_plan(key: str, auth: Reader, db: DB) -> PlanRead:
    with db.read() as session:
        return service.to_read(service.get(session, auth.workspace_id, key))


@router.put("/{key}", response_model=PlanRead)
def replace_plan(key: str, body: PlanReplace, auth: Admin, db: DB) -> PlanRead:
    """Replace the plan's definition (its `version` goes up by one). Every subscription
    on it follows the new definition from now on; invoices already made keep theirs."""
    with db.write() as session:
        return service.to_read(service.replace(session, auth.workspace_id, key, body))
