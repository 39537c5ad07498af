"""The operator's pages under ``/dashboard`` (SPEC §10): HTTP only — read the request,
call the services (through ``views`` and ``catalog`` for what pages show), render.

GET pages need a session (else a redirect to the sign-in form); every POST goes
through ``web.poster`` (admin session, CSRF token). A POST that succeeds redirects
back (303) with ``?done=…``; one that fails re-renders its page with the messages by
their fields (422). Secrets made here (API keys, portal links) are shown in the
answer to the POST itself, never put in a URL.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from meterline.api.deps import DB
from meterline.auth import service as auth_service
from meterline.auth import tokens
from meterline.auth.deps import cached_token_secret
from meterline.auth.schemas import ApiKeyCreate
from meterline.auth.scopes import Scope
from meterline.credits import service as credits
from meterline.dashboard import session as sessions
from meterline.dashboard import views
from meterline.dashboard.session import DashboardSession
from meterline.dashboard.web import (
    STATIC,
    DashboardRoute,
    Post,
    Text,
    Viewer,
    changed,
    field_errors,
    is_https,
    redirect,
    render,
    snapshots,
)
from meterline.errors import MeterlineError, NotFound
from meterline.invoicing import service as invoicing
from meterline.kit.time import utc_now
from meterline.runtime import runtime_of
from meterline.webhooks import service as webhooks
from meterline.webhooks.schemas import EndpointCreate, EventType

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


# -- sign-in ---------------------------------------------------------------------------------------


def _next(target: str | None) -> str:
    """Only back into the dashboard (never an open redirect)."""
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return "/dashboard"


def _login_form(
    request: Request, target: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", {"csrf": token, "next": target, "error": error}, status=status
    )
    response.set_cookie(
        sessions.LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/dashboard/login",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Text = None) -> Response:
    return _login_form(request, _next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, db: DB) -> Response:
    form = await request.form()
    target = _next(str(form.get("next") or ""))
    sent = str(form.get(sessions.CSRF_FIELD) or "")
    expected = request.cookies.get(sessions.LOGIN_COOKIE) or ""
    if not sent or not hmac.compare_digest(sent, expected):
        return _login_form(request, target, "The form expired: paste the key again.", 403)
    try:
        cookie, expires_at = sessions.sign_in(db, str(form.get("api_key") or ""), utc_now())
    except MeterlineError as exc:
        return _login_form(request, target, field_errors(exc).get("api_key", exc.detail), 422)
    response = redirect(target)
    response.set_cookie(
        sessions.SESSION_COOKIE,
        cookie,
        expires=expires_at,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/dashboard/login")
    return response


@router.get("/logout")
def logout(request: Request, token: Text = None) -> Response:
    """Signs out when ``token`` is the session's CSRF token (the navigation's link);
    otherwise (a link from elsewhere) only to the sign-in page."""
    found = sessions.resolve(
        request.cookies.get(sessions.SESSION_COOKIE),
        runtime_of(request).key_cache,
        runtime_of(request).db,
        utc_now(),
    )
    if found is not None and not (token and hmac.compare_digest(token, found.csrf)):
        return redirect("/dashboard")
    response = redirect("/dashboard/login")
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response


# -- overview --------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def overview(
    request: Request, who: Viewer, db: DB, range: Text = None, feature: Text = None
) -> Response:
    span = range if range in views.RANGES else "24h"
    snapshot = snapshots(request).get(who.workspace_id)
    with db.read() as session:
        now = utc_now()
        context: dict[str, Any] = {
            "events": views.events_chart(session, who.workspace_id, span, now),
            **views.overview(session, who.workspace_id),
        }
    context["revenue"] = views.revenue_summary(snapshot) if snapshot else None
    context["top_usage"] = views.top_usage(snapshot, feature) if snapshot else None
    return render(request, "overview.html", context, session=who)


# -- revenue, invoices, alerts ---------------------------------------------------------------------


@router.get("/revenue", response_class=HTMLResponse)
def revenue(request: Request, who: Viewer, db: DB) -> Response:
    snapshot = snapshots(request).get(who.workspace_id)
    with db.read() as session:
        context = views.revenue(session, who.workspace_id, snapshot, utc_now())
    return render(request, "revenue.html", context, session=who)


@router.get("/invoices", response_class=HTMLResponse)
def invoice_list(
    request: Request,
    who: Viewer,
    db: DB,
    customer: Text = None,
    status: Text = None,
    after: Text = None,
) -> Response:
    with db.read() as session:
        context = views.invoice_list(session, who.workspace_id, customer, status, after)
    context.update(customer=customer or "", status=status or "")
    return render(request, "invoices.html", context, session=who)


@router.post("/invoices/{invoice_id}/{action}")
def invoice_action(request: Request, invoice_id: str, action: str, post: Post, db: DB) -> Response:
    act = {"finalize": invoicing.finalize, "void": invoicing.void}.get(action)
    if act is None:
        raise NotFound("No such action.")
    with db.write() as session:
        act(session, post.session.workspace_id, invoice_id, utc_now())
    changed(request, post.session.workspace_id)
    return redirect(f"/dashboard/invoices?done=Invoice+{action}d.")


@router.get("/alerts", response_class=HTMLResponse)
def alert_list(
    request: Request,
    who: Viewer,
    db: DB,
    customer: Text = None,
    type: Text = None,
    after: Text = None,
) -> Response:
    with db.read() as session:
        context = views.alert_list(session, who.workspace_id, customer, type, after)
    context.update(customer=customer or "", type=type or "")
    return render(request, "alerts.html", context, session=who)


# -- webhooks --------------------------------------------------------------------------------------


def _webhooks(
    request: Request,
    who: DashboardSession,
    db: Any,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    created: Any = None,
    status: int = 200,
) -> Response:
    with db.read() as session:
        context = views.webhook_page(session, who.workspace_id)
    context.update(
        errors=errors or {},
        values=values or {},
        created=created,
        event_types=list(get_args(EventType)),
    )
    return render(request, "webhooks.html", context, status=status, session=who)


@router.get("/webhooks", response_class=HTMLResponse)
def webhook_page(request: Request, who: Viewer, db: DB) -> Response:
    return _webhooks(request, who, db)


@router.post("/webhooks")
def create_endpoint(request: Request, post: Post, db: DB) -> Response:
    settings = runtime_of(request).settings
    try:
        body = EndpointCreate.model_validate(
            {
                "url": post.get("url"),
                "events": post.all("events"),
                **post.given("description"),
            }
        )
        with db.write() as session:
            created = webhooks.create(
                session, post.session.workspace_id, body, settings.webhooks_allow_private, utc_now()
            )
    except (ValidationError, MeterlineError) as exc:
        values: dict[str, Any] = {**post.values(), "events": post.all("events")}
        return _webhooks(request, post.session, db, field_errors(exc), values, status=422)
    return _webhooks(request, post.session, db, created=views.dump(created))


@router.get("/webhooks/{endpoint_id}", response_class=HTMLResponse)
def endpoint_page(
    request: Request, endpoint_id: str, who: Viewer, db: DB, after: Text = None
) -> Response:
    with db.read() as session:
        context = views.endpoint_page(session, who.workspace_id, endpoint_id, after)
    return render(request, "endpoint.html", context, session=who)


@router.post("/webhooks/{endpoint_id}/delete")
def delete_endpoint(endpoint_id: str, post: Post, db: DB) -> Response:
    with db.write() as session:
        webhooks.delete(session, post.session.workspace_id, endpoint_id, utc_now())
    return redirect("/dashboard/webhooks?done=Endpoint+deleted.")


@router.post("/webhooks/deliveries/{delivery_id}/retry")
def retry_delivery(delivery_id: str, post: Post, db: DB) -> Response:
    with db.write() as session:
        retried = webhooks.retry(session, post.session.workspace_id, delivery_id, utc_now())
    target = f"/dashboard/webhooks/{quote(retried.endpoint, safe='')}"
    return redirect(f"{target}?done=Delivery+queued+again.")


# -- API keys --------------------------------------------------------------------------------------


def _keys(
    request: Request,
    who: DashboardSession,
    db: Any,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    with db.read() as session:
        context = views.api_keys(session, who.workspace_id)
    context.update(
        errors=errors or {},
        values=values or {},
        created=created,
        scopes=[s.value for s in Scope],
    )
    return render(request, "api_keys.html", context, status=status, session=who)


@router.get("/api-keys", response_class=HTMLResponse)
def api_keys(request: Request, who: Viewer, db: DB) -> Response:
    return _keys(request, who, db)


@router.post("/api-keys")
def create_api_key(request: Request, post: Post, db: DB) -> Response:
    try:
        body = ApiKeyCreate.model_validate({"name": post.get("name"), "scopes": post.all("scopes")})
        with db.write() as session:
            row, secret = auth_service.create_key(
                session, post.session.workspace_id, name=body.name, scopes=body.scopes
            )
    except (ValidationError, MeterlineError) as exc:
        values: dict[str, Any] = {**post.values(), "scopes": post.all("scopes")}
        return _keys(request, post.session, db, field_errors(exc), values, status=422)
    created = {"id": row.id, "name": row.name, "scopes": row.scopes, "key": secret}
    return _keys(request, post.session, db, created=created)


@router.post("/api-keys/{key_id}/revoke")
def revoke_api_key(request: Request, key_id: str, post: Post, db: DB) -> Response:
    with db.write() as session:
        auth_service.revoke_key(session, post.session.workspace_id, key_id)
    runtime_of(request).key_cache.clear()  # this process: at once (others: cache_seconds)
    return redirect("/dashboard/api-keys?done=Key+revoked.")


# -- the customer portal, the root, and the API docs -----------------------------------------------

portal_router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@portal_router.get("/portal/{token}", response_class=HTMLResponse)
def portal(request: Request, token: str, db: DB, after: Text = None) -> Response:
    """One customer's page, for a customer token (``mlct_…``) in the URL; an expired or
    altered token gets a page that says so (401)."""
    state = runtime_of(request)
    now = utc_now()
    try:
        workspace_id, customer = tokens.verify(
            token, lambda w: cached_token_secret(state.key_cache, db, w), now
        )
    except MeterlineError as exc:
        return render(request, "portal.html", {"problem": exc}, status=exc.status)
    credits.refresh(db, workspace_id, customer, now)
    with db.read() as session:
        context = views.portal_page(
            session, workspace_id, customer, state.standing_cache, now, after
        )
    context["expires_at"] = tokens.expiry(token)
    return render(request, "portal.html", context)


@portal_router.get("/")
def root() -> Response:
    return redirect("/dashboard")


@portal_router.get("/docs")
def docs(request: Request) -> Response:
    """Swagger UI from files this server serves (no request to another host)."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title="Meterline API",
        swagger_js_url=f"{STATIC}/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/vendor/swagger-ui/favicon-32x32.png",
    )
