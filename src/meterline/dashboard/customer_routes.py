"""A customer's page and its forms: credits, subscription, limits, portal links."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from meterline.api.deps import DB
from meterline.auth import customer_tokens
from meterline.credits import service as credits
from meterline.credits.schemas import DebitCreate, GrantCreate
from meterline.dashboard import views
from meterline.dashboard.session import DashboardSession
from meterline.dashboard.web import (
    DashboardRoute,
    Post,
    Posted,
    Text,
    Viewer,
    changed,
    field_errors,
    redirect,
    render,
    snapshots,
)
from meterline.entitlements import service as entitlements
from meterline.entitlements.schemas import LimitReset
from meterline.errors import MeterlineError, invalid
from meterline.kit.time import utc_now
from meterline.runtime import runtime_of
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import (
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
)

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


# -- customers -------------------------------------------------------------------------------------


@router.get("/customers", response_class=HTMLResponse)
def customer_list(
    request: Request, who: Viewer, db: DB, q: Text = None, after: Text = None
) -> Response:
    snapshot = snapshots(request).get(who.workspace_id)
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
    cache = runtime_of(request).standing_cache
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


@router.post("/customers/{external_id}/grant")
def grant_credits(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = GrantCreate.model_validate(
            {
                "amount": post.get("amount"),
                "source": post.get("source") or "purchase",
                "priority": post.get("priority") or 0,
                **post.given("expires_at", "description"),
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
            {"amount": post.get("amount"), **post.given("description", "reference")}
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
    changed(request, post.session.workspace_id)
    return redirect(_customer_url(external_id, "Subscribed."))


@router.post("/customers/{external_id}/subscription/change")
def change_plan(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = SubscriptionChange(plan=post.get("plan"), at=post.get("at") or "now")
        with db.write() as session:
            subscriptions.change(session, post.session.workspace_id, post.get("subscription"), body)
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "change", exc)
    changed(request, post.session.workspace_id)
    return redirect(_customer_url(external_id, f"Plan changed to {body.plan}."))


@router.post("/customers/{external_id}/subscription/cancel")
def cancel_subscription(request: Request, external_id: str, post: Post, db: DB) -> Response:
    try:
        body = SubscriptionCancel(at=post.get("at") or "period_end")
        with db.write() as session:
            subscriptions.cancel(session, post.session.workspace_id, post.get("subscription"), body)
    except (ValidationError, MeterlineError) as exc:
        return _failed(request, post, db, external_id, "cancel", exc)
    changed(request, post.session.workspace_id)
    return redirect(_customer_url(external_id, "Subscription canceled."))


@router.post("/customers/{external_id}/limits/reset")
def reset_limit(request: Request, external_id: str, post: Post, db: DB) -> Response:
    feature, _, window = post.get("limit").partition(":")
    try:
        body = LimitReset.model_validate({"feature": feature or None, "window": window})
        with db.write() as session:
            now = utc_now()
            found = entitlements.cached_standing(
                runtime_of(request).standing_cache, session, post.session.workspace_id, external_id
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
