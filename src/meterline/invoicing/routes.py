"""Invoices over HTTP: list, read, finalize, void, and the upcoming one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from meterline.api import idempotency
from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.customers.schemas import ExternalId
from meterline.invoicing import service
from meterline.invoicing.schemas import InvoiceList, InvoiceRead, InvoiceStatus
from meterline.kit.fields import ClientTime
from meterline.kit.time import utc_now

router = APIRouter(prefix=V1, tags=["Invoices"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]


@router.get("/invoices", response_model=InvoiceList)
def list_invoices(
    auth: Reader,
    db: DB,
    customer: Annotated[ExternalId | None, Query(description="A customer's external id.")] = None,
    status: InvoiceStatus | None = None,
    period_from: Annotated[
        ClientTime | None, Query(alias="from", description="Periods starting at or after.")
    ] = None,
    period_to: Annotated[
        ClientTime | None, Query(alias="to", description="Periods starting before.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> InvoiceList:
    """Invoices, newest first."""
    with db.read() as session:
        page = service.list_page(
            session,
            auth.workspace_id,
            customer=customer,
            status=status,
            period_from=period_from,
            period_to=period_to,
            limit=limit,
            after=after,
        )
    return InvoiceList(data=page.items, next_cursor=page.next_cursor)


@router.get("/invoices/{invoice_id}", response_model=InvoiceRead)
def get_invoice(invoice_id: str, auth: Reader, db: DB) -> InvoiceRead:
    """One invoice. A finalized one also lists `late_usage`: features whose usage for
    the period changed after it was finalized (late events), which it never bills."""
    with db.read() as session:
        return service.to_read(
            session, service.get(session, auth.workspace_id, invoice_id), late=True
        )


@router.post("/invoices/{invoice_id}/finalize", response_model=InvoiceRead)
def finalize_invoice(
    invoice_id: str,
    auth: Admin,
    db: DB,
    request: Request,
    idempotency_key: idempotency.KeyHeader = None,
) -> JSONResponse:
    """Finalize a draft now (before its grace period ends): its usage is read again,
    it takes the workspace's next number, and it never changes again. 409
    `invoice_not_draft` otherwise. Honours `Idempotency-Key`."""

    def act(session: Session) -> InvoiceRead:
        invoice = service.finalize(session, auth.workspace_id, invoice_id, utc_now())
        return service.to_read(session, invoice)

    return idempotency.once(db, request, auth.workspace_id, idempotency_key, None, 200, act)


@router.post("/invoices/{invoice_id}/void", response_model=InvoiceRead)
def void_invoice(invoice_id: str, auth: Admin, db: DB) -> InvoiceRead:
    """Mark a draft or finalized invoice void (it keeps its number). 409 `invoice_void`
    if it already is."""
    with db.write() as session:
        invoice = service.void(session, auth.workspace_id, invoice_id, utc_now())
        return service.to_read(session, invoice)


@router.get("/customers/{external_id}/invoices/upcoming", response_model=InvoiceRead)
def upcoming_invoice(external_id: str, auth: Reader, db: DB) -> InvoiceRead:
    """The invoice the current period would produce if it closed now (`status`
    `upcoming`, no id or number)."""
    with db.read() as session:
        return service.upcoming(session, auth.workspace_id, external_id, utc_now())
