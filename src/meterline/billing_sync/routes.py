"""Stripe sync over HTTP (admin keys; the webhook is signed by Stripe instead)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.billing_sync import events, reconcile, service
from meterline.billing_sync.schemas import (
    IntegrationPut,
    IntegrationRead,
    ReconcileRequest,
    ReconcileResult,
    ReportList,
    ReportRead,
    ReportStatus,
    SyncQueued,
    WebhookReceived,
)
from meterline.customers.schemas import ExternalId
from meterline.kit.time import utc_now

router = APIRouter(prefix=V1, tags=["Stripe"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
STRIPE = "/integrations/stripe"


@router.put(STRIPE, response_model=IntegrationRead)
def connect(body: IntegrationPut, auth: Admin, db: DB) -> IntegrationRead:
    """Connect Stripe (or change the connection). The secret key is never answered back,
    only its last 4 characters. Failed reports are tried again at once."""
    now = utc_now()
    with db.write() as session:
        service.connect(session, auth.workspace_id, body, now)
        return service.status(session, auth.workspace_id, now)


@router.get(STRIPE, response_model=IntegrationRead)
def get_status(auth: Admin, db: DB) -> IntegrationRead:
    """Mode, status (`not_connected` until PUT), last successful report, pending and
    failed counts, the lag, and the customers and meters that are not mapped."""
    with db.read() as session:
        return service.status(session, auth.workspace_id, utc_now())


@router.delete(STRIPE, status_code=status.HTTP_204_NO_CONTENT)
def disconnect(auth: Admin, db: DB) -> Response:
    """Disconnect: the secrets are wiped, nothing more is sent; the reports stay."""
    with db.write() as session:
        service.disconnect(session, auth.workspace_id, utc_now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(STRIPE + "/reports", response_model=ReportList)
def list_reports(
    auth: Admin,
    db: DB,
    report_status: Annotated[ReportStatus | None, Query(alias="status")] = None,
    customer: Annotated[ExternalId | None, Query(description="A customer's external id.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> ReportList:
    """What was sent or is to be sent, newest first, each with every attempt."""
    with db.read() as session:
        page = service.reports(
            session,
            auth.workspace_id,
            status=report_status,
            customer=customer,
            limit=limit,
            after=after,
        )
    return ReportList(data=page.items, next_cursor=page.next_cursor)


@router.post(STRIPE + "/reports/{report_id}/retry", response_model=ReportRead)
def retry_report(report_id: str, auth: Admin, db: DB) -> ReportRead:
    """Send a report again now (pending again unless it was sent)."""
    with db.write() as session:
        return service.retry(session, auth.workspace_id, report_id, utc_now())


@router.post(STRIPE + "/sync", status_code=status.HTTP_202_ACCEPTED, response_model=SyncQueued)
def sync_now(auth: Admin, db: DB) -> SyncQueued:
    """Report every closed hour now instead of waiting for the schedule (answers once
    queued; the reports then show what was sent)."""
    with db.write() as session:
        mode = service.sync(session, auth.workspace_id, utc_now())
    return SyncQueued(mode=mode)


@router.post(STRIPE + "/reconcile", response_model=ReconcileResult)
def reconcile_range(body: ReconcileRequest, auth: Admin, db: DB) -> ReconcileResult:
    """Stripe's meter event summaries per customer, meter and hour against what
    Meterline reported; every difference, and with `repair` the deltas that close it
    (queued)."""
    return reconcile.reconcile(
        db, auth.workspace_id, body.from_, body.to, utc_now(), repair=body.repair
    )


@router.post(STRIPE + "/webhook", response_model=WebhookReceived)
async def stripe_webhook(request: Request, db: DB) -> WebhookReceived:
    """Stripe's webhooks (no API key: the `Stripe-Signature` header is checked with the
    `stripe` package against the webhook secret). `invoice.paid` and
    `invoice.payment_failed` set the invoice's `payment_status`;
    `v1.billing.meter.error_report_triggered` is recorded on the reports it names. A bad
    signature is 400 `invalid_signature` and changes nothing."""
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    return await run_in_threadpool(events.webhook, db, payload, signature, utc_now())
