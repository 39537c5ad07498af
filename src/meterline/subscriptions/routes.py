from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.customers.schemas import ExternalId
from meterline.subscriptions import service
from meterline.subscriptions.schemas import (
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionRead,
)

router = APIRouter(prefix=f"{V1}/subscriptions", tags=["Subscriptions"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SubscriptionRead)
def create_subscription(body: SubscriptionCreate, auth: Admin, db: DB) -> SubscriptionRead:
    """Put a customer on a plan from `start_at` (past or future; default now). 409
    `subscription_exists` while the customer has one that has not ended."""
    with db.write() as session:
        return service.to_read(session, service.create(session, auth.workspace_id, body))


@router.get("", response_model=SubscriptionList)
def list_subscriptions(
    auth: Reader,
    db: DB,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
    customer: Annotated[ExternalId | None, Query(description="A customer's external_id.")] = None,
    status: Annotated[
        Literal["scheduled", "active", "canceled"] | None, Query(description="Status now.")
    ] = None,
) -> SubscriptionList:
    """Subscriptions, newest first."""
    with db.read() as session:
        page = service.list_page(
            session, auth.workspace_id, customer=customer, status=status, limit=limit, after=after
        )
    return SubscriptionList(data=page.items, next_cursor=page.next_cursor)


@router.get("/{subscription_id}", response_model=SubscriptionRead)
def get_subscription(subscription_id: str, auth: Reader, db: DB) -> SubscriptionRead:
    with db.read() as session:
        return service.to_read(session, service.get(session, auth.workspace_id, subscription_id))


@router.post("/{subscription_id}/change", response_model=SubscriptionRead)
def change_subscription(
    subscription_id: str, body: SubscriptionChange, auth: Admin, db: DB
) -> SubscriptionRead:
    """Move to another plan `now` or at the current period's end (`period_end`)."""
    with db.write() as session:
        changed = service.change(session, auth.workspace_id, subscription_id, body)
        return service.to_read(session, changed)


@router.post("/{subscription_id}/cancel", response_model=SubscriptionRead)
def cancel_subscription(
    subscription_id: str, body: SubscriptionCancel, auth: Admin, db: DB
) -> SubscriptionRead:
    """End the subscription `now` or at the current period's end (default)."""
    with db.write() as session:
        canceled = service.cancel(session, auth.workspace_id, subscription_id, body)
        return service.to_read(session, canceled)
