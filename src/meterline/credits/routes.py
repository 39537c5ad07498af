"""Credits over HTTP: balance and live grants, grants, debits, voids, the ledger.

Grants and debits honour an ``Idempotency-Key`` header (``api.idempotency``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse

from meterline.api import idempotency
from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require, require_or_customer
from meterline.auth.scopes import Scope
from meterline.credits import service
from meterline.credits.schemas import (
    CreditSettings,
    CreditsRead,
    DebitCreate,
    GrantCreate,
    GrantRead,
    GrantResult,
    TransactionList,
    TransactionRead,
)
from meterline.kit.time import utc_now

router = APIRouter(prefix=f"{V1}/customers", tags=["Credits"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Ingester = Annotated[AuthContext, Depends(require(Scope.INGEST))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]
ReaderOrCustomer = Annotated[AuthContext, Depends(require_or_customer(Scope.READ))]
IdempotencyKey = idempotency.KeyHeader


@router.get("/{external_id}/credits", response_model=CreditsRead)
def get_credits(external_id: str, auth: ReaderOrCustomer, db: DB) -> CreditsRead:
    """The balance, what live reservations hold, and the live grants in the order they
    are spent (lowest priority number, then earliest expiry, then oldest). A member of
    an organization answers with its organization's credits. (A customer token may read
    its own.)"""
    auth.limit_to(external_id)
    now = utc_now()
    service.refresh(db, auth.workspace_id, external_id, now)
    with db.read() as session:
        return service.read(session, auth.workspace_id, external_id, now)


@router.patch("/{external_id}/credits", response_model=CreditsRead)
def configure_credits(external_id: str, body: CreditSettings, auth: Admin, db: DB) -> CreditsRead:
    """Set the low-balance threshold (`credits.low` alert when the balance falls below
    it; null turns it off)."""
    now = utc_now()
    with db.write() as session:
        service.configure(session, auth.workspace_id, external_id, body, now)
        return service.read(session, auth.workspace_id, external_id, now)


@router.post(
    "/{external_id}/credits/grants",
    status_code=status.HTTP_201_CREATED,
    response_model=GrantResult,
)
def create_grant(
    external_id: str,
    body: GrantCreate,
    auth: Admin,
    db: DB,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Add credits (`source` purchase, promotional, adjustment or allocation) with a
    priority and an optional expiry. Members of an organization spend its credits:
    grant to the organization (422 `customer_is_member`)."""
    return idempotency.once(
        db,
        request,
        auth.workspace_id,
        idempotency_key,
        body,
        201,
        lambda s: service.grant(s, auth.workspace_id, external_id, body, utc_now()),
    )


@router.post(
    "/{external_id}/credits/debits",
    status_code=status.HTTP_201_CREATED,
    response_model=TransactionRead,
    responses={402: {"description": "insufficient_credits: nothing was debited."}},
)
def create_debit(
    external_id: str,
    body: DebitCreate,
    auth: Ingester,
    db: DB,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Deduct credits, drawn from the grants in consumption order. 402
    `insufficient_credits` (with `balance`, `available` and `required`) when the balance
    less what reservations hold is short: nothing is debited. A member's debit is its
    organization's, with the member as `subject`."""
    return idempotency.once(
        db,
        request,
        auth.workspace_id,
        idempotency_key,
        body,
        201,
        lambda s: service.debit(s, auth.workspace_id, external_id, body, utc_now()),
    )


@router.post("/{external_id}/credits/grants/{grant_id}/void", response_model=GrantRead)
def void_grant(external_id: str, grant_id: str, auth: Admin, db: DB) -> GrantRead:
    """Remove what is left of a grant (what was spent stays spent). 409 `grant_closed`
    when it already expired, was voided or is used up."""
    with db.write() as session:
        return service.void(session, auth.workspace_id, external_id, grant_id, utc_now())


@router.get("/{external_id}/credits/transactions", response_model=TransactionList)
def list_transactions(
    external_id: str,
    auth: ReaderOrCustomer,
    db: DB,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> TransactionList:
    """The ledger, newest first: every change of the balance with its signed amount,
    the balance after it, when it took effect, what it refers to, and the grants it
    drew from. (A customer token may read its own: the "history" page of a user.)"""
    auth.limit_to(external_id)
    service.refresh(db, auth.workspace_id, external_id, utc_now())
    with db.read() as session:
        page = service.transactions(
            session, auth.workspace_id, external_id, limit=limit, after=after
        )
    return TransactionList(data=page.items, next_cursor=page.next_cursor)
