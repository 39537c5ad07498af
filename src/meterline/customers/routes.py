from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.customers import service
from meterline.customers.schemas import (
    CustomerCreate,
    CustomerList,
    CustomerRead,
    CustomerUpdate,
    ExternalId,
)

router = APIRouter(prefix=f"{V1}/customers", tags=["Customers"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CustomerRead)
def create_customer(body: CustomerCreate, auth: Admin, db: DB) -> CustomerRead:
    """Create a customer; 409 `already_exists` when the external_id is taken."""
    with db.write() as session:
        return service.create(session, auth.workspace_id, body)


@router.get("", response_model=CustomerList)
def list_customers(
    auth: Reader,
    db: DB,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
    parent: Annotated[
        ExternalId | None, Query(description="Only members of this organization.")
    ] = None,
    stripe_customer_id: Annotated[
        str | None, Query(description="Only the customer(s) mapped to this Stripe customer.")
    ] = None,
) -> CustomerList:
    """Customers in creation order."""
    with db.read() as session:
        page = service.list_page(
            session,
            auth.workspace_id,
            limit=limit,
            after=after,
            parent=parent,
            stripe_customer_id=stripe_customer_id,
        )
    return CustomerList(data=page.items, next_cursor=page.next_cursor)


@router.get("/{external_id}", response_model=CustomerRead)
def get_customer(external_id: str, auth: Reader, db: DB) -> CustomerRead:
    with db.read() as session:
        return service.read(session, auth.workspace_id, external_id)


@router.patch("/{external_id}", response_model=CustomerRead)
def update_customer(external_id: str, body: CustomerUpdate, auth: Admin, db: DB) -> CustomerRead:
    """Change the fields sent; the others stay as they are."""
    with db.write() as session:
        return service.update(session, auth.workspace_id, external_id, body)


@router.delete("/{external_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_customer(external_id: str, auth: Admin, db: DB) -> Response:
    """Archive the customer: gone from the API, history kept, external_id free again.
    409 `customer_has_members` while members still name it as parent."""
    with db.write() as session:
        service.delete(session, auth.workspace_id, external_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
