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
from typing import Annotated, Any, get_args
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from meterline.api.deps import DB
from meterline.auth import customer_tokens, tokens
from meterline.auth import service as auth_service
from meterline.auth.deps import cached_token_secret
from meterline.auth.schemas import ApiKeyCreate
from meterline.auth.scopes import Scope
from meterline.credits import service as credits
from meterline.credits.schemas import DebitCreate, GrantCreate
from meterline.dashboard import catalog, views
from meterline.dashboard import session as sessions
from meterline.dashboard.session import DashboardSession
from meterline.dashboard.snapshot import Snapshots
from meterline.dashboard.web import (
    STATIC,
    DashboardRoute,
    Posted,
    field_errors,
    is_https,
    poster,
    redirect,
    render,
    viewer,
)
from meterline.entitlements import service as entitlements
from meterline.entitlements.schemas import LimitReset
from meterline.errors import MeterlineError, NotFound, invalid
from meterline.invoicing import service as invoicing
from meterline.kit.time import utc_now
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate, MeterUpdate
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate, PlanReplace
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import (
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
)
from meterline.webhooks import service as webhooks
from meterline.webhooks.schemas import EndpointCreate, EventType

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
Viewer = Annotated[DashboardSession, Depends(viewer)]
Post = Annotated[Posted, Depends(poster)]
Text = Annotated[str | None, Query()]


def _snapshots(request: Request) -> Snapshots:
    found: Snapshots = request.app.state.dashboard.snapshots
    return found


def _changed(request: Request, workspace_id: int) -> None:
    """A change made here: revenue figures across customers are computed again."""
    _snapshots(request).invalidate(workspace_id)


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
        request.app.state.key_cache,
        request.app.state.db,
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
    snapshot = _snapshots(request).get(who.workspace_id)
    with db.read() as session:
        now = utc_now()
        context: dict[str, Any] = {
            "events": views.events_chart(session, who.workspace_id, span, now),
            **views.overview(session, who.workspace_id),
        }
    context["revenue"] = views.revenue_summary(snapshot) if snapshot else None
    context["top_usage"] = views.top_usage(snapshot, feature) if snapshot else None
    return render(request, "overview.html", context, session=who)


# -- customers -------------------------------------------------------------------------------------


@router.get("/customers", response_class=HTMLResponse)
def customer_list(
    request: Request, who: Viewer, db: DB, q: Text = None, after: Text = None
) -> Response:
    snapshot = _snapshots(request).get(who.workspace_id)
    with db.read() as session:
        context = views.customer_list(session, who.workspace_id, snapshot, q, after)
    context["as_of"] = snapshot.as_of if snapshot else None
    return render(request, "customers.html", context, session=who)


def _customer(
    request: Request,
    who: DashboardSession,
    db: Any,
    external_id: str,
    *,
    ledger: str | None = None,
    feature: str | None = None,
    form: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    shown: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    now = utc_now()
    if who.can_write:
        credits.refresh(db, who.workspace_id, external_id, now)  # as GET …/credits does
    cache = request.app.state.standing_cache
    with db.read() as session:
        context = views.customer_page(
            session, who.workspace_id, external_id, cache, now, ledger, feature
        )
    context.update(form=form, errors=errors or {}, values=values or {}, shown=shown or {})
    return render(request, "customer.html", context, status=status, session=who)


@router.get("/customers/{external_id}", response_class=HTMLResponse)
def customer_page(
    request: Request,
    external_id: str,
    who: Viewer,
    db: DB,
    ledger: Text = None,
    feature: Text = None,
) -> Response:
    return _customer(request, who, db, external_id, ledger=ledger, feature=feature)


def _customer_url(external_id: str, done: str) -> str:
    return f"/dashboard/customers/{quote(external_id, safe='')}?done={quote(done)}"


def _failed(
    request: Request, post: Posted, db: Any, external_id: str, form: str, exc: Exception
) -> Response:
    return _customer(
        request,
        post.session,
        db,
        external_id,
        form=form,
        errors=field_errors(exc),
        values=post.values(),
        status=422,
    )


def _optional(post: Posted, *names: str) -> dict[str, str]:
    return {name: post.get(name) for name in names if post.get(name)}


@router.post("/customers/{external_id}/grant")
def grant_credits(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = GrantCreate.model_validate(
            {
                "amount": post.get("amount"),
                "source": post.get("source") or "purchase",
                "priority": post.get("priority") or 0,
                **_optional(post, "expires_at", "description"),
            }
        )
        with db.write() as session:
            credits.grant(session, post.session.workspace_id, external_id, body, utc_now())
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "grant", exc)
    return redirect(_customer_url(external_id, "Credits granted."))


@router.post("/customers/{external_id}/debit")
def debit_credits(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = DebitCreate.model_validate(
            {"amount": post.get("amount"), **_optional(post, "description", "reference")}
        )
        with db.write() as session:
            credits.debit(session, post.session.workspace_id, external_id, body, utc_now())
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "debit", exc)
    return redirect(_customer_url(external_id, "Credits debited."))


@router.post("/customers/{external_id}/subscribe")
def subscribe(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = SubscriptionCreate(
            customer=external_id,
            plan=post.get("plan"),
            billing_anchor=post.get("billing_anchor") or "calendar",
        )
        with db.write() as session:
            subscriptions.create(session, post.session.workspace_id, body)
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "subscribe", exc)
    _changed(request, post.session.workspace_id)
    return redirect(_customer_url(external_id, "Subscribed."))


@router.post("/customers/{external_id}/subscription/change")
def change_plan(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = SubscriptionChange(plan=post.get("plan"), at=post.get("at") or "now")
        with db.write() as session:
            subscriptions.change(session, post.session.workspace_id, post.get("subscription"), body)
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "change", exc)
    _changed(request, post.session.workspace_id)
    return redirect(_customer_url(external_id, f"Plan changed to {body.plan}."))


@router.post("/customers/{external_id}/subscription/cancel")
def cancel_subscription(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = SubscriptionCancel(at=post.get("at") or "period_end")
        with db.write() as session:
            subscriptions.cancel(session, post.session.workspace_id, post.get("subscription"), body)
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "cancel", exc)
    _changed(request, post.session.workspace_id)
    return redirect(_customer_url(external_id, "Subscription canceled."))


@router.post("/customers/{external_id}/limits/reset")
def reset_limit(request: Request, external_id: str, post: Post, db: DB) -> Response:
    feature, _, window = post.get("limit").partition(":")
    try:
        body = LimitReset.model_validate({"feature": feature or None, "window": window})
        with db.write() as session:
            now = utc_now()
            found = entitlements.cached_standing(
                request.app.state.standing_cache, session, post.session.workspace_id, external_id
            )
            entitlements.reset(session, post.session.workspace_id, found, external_id, body, now)
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "reset", exc)
    return redirect(_customer_url(external_id, f"The {window} limit of {feature} counts from now."))


@router.post("/customers/{external_id}/portal-link")
def portal_link(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        hours = int(post.get("hours") or "1")
        if not 1 <= hours <= 24:
            raise ValueError
    except ValueError:
        hours = 0
    if not hours:
        refused = invalid("hours", "invalid_value", "A link lives 1 to 24 hours.")
        return _failed(request, post, db, external_id, "portal", refused)
    with db.write() as session:
        made = customer_tokens.issue(
            session, post.session.workspace_id, external_id, hours * 3600, utc_now()
        )
    link = str(request.base_url).rstrip("/") + f"/portal/{made.token}"
    return _customer(
        request, post.session, db, external_id, shown={"portal": link, "expires": made.expires_at}
    )


# -- meters ----------------------------------------------------------------------------------------


def _meter_form(post: Posted) -> dict[str, Any]:
    """The meter form's fields as the API's body (filter as JSON, group_by by commas)."""
    body: dict[str, Any] = {}
    for name in ("name", "event_type", "aggregation", "value_property", "unit"):
        if name in post.form:  # an emptied field clears it (null)
            body[name] = post.get(name) or None
    text = post.get("filter")
    if text:
        try:
            body["filter"] = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise invalid("filter", "malformed_json", f"Not JSON: {exc}") from exc
    if "group_by" in post.form:
        body["group_by"] = [g.strip() for g in post.get("group_by").split(",") if g.strip()]
    return body


@router.get("/meters", response_class=HTMLResponse)
def meter_list(request: Request, who: Viewer, db: DB) -> Response:
    with db.read() as session:
        found = catalog.meter_list(session, who.workspace_id)
    return render(
        request, "meters.html", {"meters": found, "errors": {}, "values": {}}, session=who
    )


@router.post("/meters")
def create_meter(request: Request, post: Post, db: DB) -> Response:
    try:
        body = MeterCreate.model_validate({"key": post.get("key"), **_meter_form(post)})
        with db.write() as session:
            meters.create(session, post.session.workspace_id, body)
    except (ValidationError, MeterlineError) as exc:
        with db.read() as session:
            found = catalog.meter_list(session, post.session.workspace_id)
        context = {"meters": found, "errors": field_errors(exc), "values": post.values()}
        return render(request, "meters.html", context, status=422, session=post.session)
    return redirect(f"/dashboard/meters/{quote(body.key, safe='')}?done=Meter+created.")


def _meter(
    request: Request,
    who: DashboardSession,
    db: Any,
    key: str,
    options: dict[str, str | None],
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    chart_errors: dict[str, str] = {}
    with db.read() as session:
        meter = meters.get(session, who.workspace_id, key)
        read = views.dump(meters.to_read(meter))
        try:
            chosen = catalog.usage_options(
                meter,
                options.get("range"),
                options.get("window"),
                options.get("timezone"),
                options.get("group_by"),
            )
            found = catalog.meter_usage(session, who.workspace_id, meter, chosen, utc_now())
        except MeterlineError as exc:
            chart_errors = field_errors(exc)
            chosen = {k: v or "" for k, v in options.items()}
            found = None
    context = {
        "meter": read,
        "options": chosen,
        "usage": found,
        "chart_errors": chart_errors,
        "errors": errors or {},
        "values": values or {},
        "windows": catalog.WINDOWS,
        "ranges": list(views.RANGES),
    }
    return render(
        request, "meter.html", context, status=422 if chart_errors else status, session=who
    )


@router.get("/meters/{key}", response_class=HTMLResponse)
def meter_page(
    request: Request,
    key: str,
    who: Viewer,
    db: DB,
    range: Text = None,
    window: Text = None,
    timezone: Text = None,
    group_by: Text = None,
) -> Response:
    options = {"range": range, "window": window, "timezone": timezone, "group_by": group_by}
    return _meter(request, who, db, key, options)


@router.post("/meters/{key}")
def update_meter(request: Request, key: str, post: Post, db: DB) -> Response:
    try:
        body = MeterUpdate.model_validate(_meter_form(post))
        with db.write() as session:
            meters.update(session, post.session.workspace_id, key, body)
    except (ValidationError, MeterlineError) as exc:
        return _meter(
            request, post.session, db, key, {}, field_errors(exc), post.values(), status=422
        )
    _changed(request, post.session.workspace_id)
    return redirect(f"/dashboard/meters/{quote(key, safe='')}?done=Meter+saved.")


# -- plans -----------------------------------------------------------------------------------------


def _json_body(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise invalid("", "malformed_json", f"The definition is not JSON: {exc}") from exc


@router.get("/plans", response_class=HTMLResponse)
def plan_list(request: Request, who: Viewer, db: DB) -> Response:
    with db.read() as session:
        found = catalog.plan_list(session, who.workspace_id)
    context = {"plans": found, "errors": {}, "values": {}}
    return render(request, "plans.html", context, session=who)


@router.post("/plans")
def create_plan(request: Request, post: Post, db: DB) -> Response:
    try:
        definition = _json_body(post.get("definition") or "{}")
        if not isinstance(definition, dict):
            raise invalid("", "invalid_value", "The definition is a JSON object.")
        body = PlanCreate.model_validate({**definition, "key": post.get("key")})
        with db.write() as session:
            plans.create(session, post.session.workspace_id, body)
    except (ValidationError, MeterlineError) as exc:
        with db.read() as session:
            found = catalog.plan_list(session, post.session.workspace_id)
        context = {"plans": found, "errors": field_errors(exc), "values": post.values()}
        return render(request, "plans.html", context, status=422, session=post.session)
    return redirect(f"/dashboard/plans/{quote(body.key, safe='')}?done=Plan+created.")


def _plan(
    request: Request,
    who: DashboardSession,
    db: Any,
    key: str,
    asked: dict[str, str],
    n: str | None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    now = utc_now()
    quote_errors: dict[str, str] = {}
    with db.read() as session:
        context = catalog.plan_page(session, who.workspace_id, key)
        try:
            context["quote"] = catalog.quote(session, who.workspace_id, key, asked, now)
        except MeterlineError as exc:
            quote_errors = field_errors(exc)
            context["quote"] = None
        count = int(n) if n and n.isdigit() else 0
        count = min(count, 50)
        context["what_if"] = (
            catalog.what_if(session, who.workspace_id, key, count, now) if count else None
        )
    context.update(
        asked=asked,
        n=count or 10,
        quote_errors=quote_errors,
        errors=errors or {},
        values=values or {},
    )
    return render(request, "plan.html", context, status=status, session=who)


@router.get("/plans/{key}", response_class=HTMLResponse)
def plan_page(request: Request, key: str, who: Viewer, db: DB, n: Text = None) -> Response:
    asked = {
        k.removeprefix("used."): v for k, v in request.query_params.items() if k.startswith("used.")
    }
    return _plan(request, who, db, key, asked, n)


@router.post("/plans/{key}")
def replace_plan(request: Request, key: str, post: Post, db: DB) -> Response:
    try:
        body = PlanReplace.model_validate(_json_body(post.get("definition") or "{}"))
        with db.write() as session:
            plans.replace(session, post.session.workspace_id, key, body)
    except (ValidationError, MeterlineError) as exc:
        return _plan(
            request, post.session, db, key, {}, None, field_errors(exc), post.values(), 422
        )
    _changed(request, post.session.workspace_id)
    return redirect(f"/dashboard/plans/{quote(key, safe='')}?done=Plan+saved.")


# -- revenue, invoices, alerts ---------------------------------------------------------------------


@router.get("/revenue", response_class=HTMLResponse)
def revenue(request: Request, who: Viewer, db: DB) -> Response:
    snapshot = _snapshots(request).get(who.workspace_id)
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
    _changed(request, post.session.workspace_id)
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
    settings = request.app.state.settings
    try:
        body = EndpointCreate.model_validate(
            {
                "url": post.get("url"),
                "events": post.all("events"),
                **_optional(post, "description"),
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
    request.app.state.key_cache.clear()  # this process: at once (others: cache_seconds)
    return redirect("/dashboard/api-keys?done=Key+revoked.")


# -- the customer portal, the root, and the API docs -----------------------------------------------

portal_router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@portal_router.get("/portal/{token}", response_class=HTMLResponse)
def portal(request: Request, token: str, db: DB, after: Text = None) -> Response:
    """One customer's page, for a customer token (``mlct_…``) in the URL; an expired or
    altered token gets a page that says so (401)."""
    state = request.app.state
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
