"""The Stripe page (SPEC §9): the connection's status, the failed reports and their
retries, syncing now, and reconciling with Stripe, through the billing_sync service
functions behind ``/v1/integrations/stripe`` (the ones ``meterline stripe sync|reconcile``
and the job runner use too).

As on every page, a ``read`` session sees the figures and no form, and its posts get
403. An action that fails (Stripe not connected, a bad range, Stripe refusing or not
answering) re-renders the page with the problem by its field, under the error's own
status.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from meterline.api.deps import DB
from meterline.billing_sync import reconcile, service
from meterline.billing_sync.schemas import ReconcileRequest
from meterline.billing_sync.usage import hour_floor
from meterline.dashboard.session import DashboardSession
from meterline.dashboard.views import PAGE, dump
from meterline.dashboard.web import (
    DashboardRoute,
    Post,
    Posted,
    Text,
    Viewer,
    field_errors,
    redirect,
    render,
)
from meterline.errors import MeterlineError
from meterline.kit.time import utc_now

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)

RECONCILE_HOURS = 24  # the form's default range: the last whole day of closed hours


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def stripe_page(
    session: Session, workspace_id: int, now: datetime, after: str | None
) -> dict[str, Any]:
    """``GET /v1/integrations/stripe`` and a page of
    ``GET /v1/integrations/stripe/reports?status=failed``."""
    failed = service.reports(
        session, workspace_id, status="failed", customer=None, limit=PAGE, after=after
    )
    end = hour_floor(now)
    return {
        "stripe": dump(service.status(session, workspace_id, now)),
        "failed_reports": dump(failed.items),
        "next_cursor": failed.next_cursor,
        "default_range": {"from": _iso(end - timedelta(hours=RECONCILE_HOURS)), "to": _iso(end)},
    }


def _stripe(
    request: Request,
    who: DashboardSession,
    db: Any,
    *,
    after: str | None = None,
    form: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    reconciled: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    with db.read() as session:
        context = stripe_page(session, who.workspace_id, utc_now(), after)
    context.update(form=form, errors=errors or {}, values=values or {}, reconciled=reconciled)
    return render(request, "stripe.html", context, status=status, session=who)


def _refused(request: Request, post: Posted, db: Any, form: str, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, MeterlineError) else 422
    return _stripe(
        request,
        post.session,
        db,
        form=form,
        errors=field_errors(exc),
        values=post.values(),
        status=status,
    )


@router.get("/stripe", response_class=HTMLResponse)
def stripe(request: Request, who: Viewer, db: DB, after: Text = None) -> Response:
    return _stripe(request, who, db, after=after)


@router.post("/stripe/reports/{report_id}/retry")
def retry_report(request: Request, report_id: str, post: Post, db: DB) -> Response:
    """``POST /v1/integrations/stripe/reports/{id}/retry``."""
    try:
        with db.write() as session:
            found = service.retry(session, post.session.workspace_id, report_id, utc_now())
    except MeterlineError as exc:
        return _refused(request, post, db, "retry", exc)
    return redirect(f"/dashboard/stripe?done=Report+{found.id}+is+{found.status}.")


@router.post("/stripe/retry-failed")
def retry_failed(request: Request, post: Post, db: DB) -> Response:
    """Every failed report again (what connecting does, and the job every 6 hours)."""
    try:
        with db.write() as session:
            service.connected(session, post.session.workspace_id)
            count = service.retry_failed(session, post.session.workspace_id, utc_now())
    except MeterlineError as exc:
        return _refused(request, post, db, "retry", exc)
    return redirect(f"/dashboard/stripe?done={count}+failed+report(s)+queued+again.")


@router.post("/stripe/sync")
def sync(request: Request, post: Post, db: DB) -> Response:
    """``POST /v1/integrations/stripe/sync``: every closed hour reported now (queued)."""
    try:
        with db.write() as session:
            mode = service.sync(session, post.session.workspace_id, utc_now())
    except MeterlineError as exc:
        return _refused(request, post, db, "sync", exc)
    return redirect(f"/dashboard/stripe?done=Sync+queued+({mode}).")


@router.post("/stripe/reconcile", response_class=HTMLResponse)
def reconcile_range(request: Request, post: Post, db: DB) -> Response:
    """``POST /v1/integrations/stripe/reconcile``: the differences are shown in the
    answer; with ``repair`` the reports that close them are queued (sent by the job
    runner, as after the API's)."""
    try:
        body = ReconcileRequest.model_validate(
            {"from": post.get("from"), "to": post.get("to"), "repair": post.get("repair") == "1"}
        )
        found = reconcile.reconcile(
            db, post.session.workspace_id, body.from_, body.to, utc_now(), repair=body.repair
        )
    except (ValidationError, MeterlineError) as exc:
        return _refused(request, post, db, "reconcile", exc)
    return _stripe(
        request, post.session, db, form="reconcile", values=post.values(), reconciled=dump(found)
    )
