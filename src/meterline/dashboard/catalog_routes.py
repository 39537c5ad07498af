"""The meter and plan pages and their forms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from meterline.api.deps import DB
from meterline.dashboard import catalog, views
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
from meterline.errors import MeterlineError, invalid
from meterline.kit.time import utc_now
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate, MeterUpdate
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate, PlanReplace

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


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
    snapshot = snapshots(request).get(who.workspace_id)
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
            found = catalog.meter_usage(
                session, who.workspace_id, meter, chosen, utc_now(), snapshot
            )
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
    changed(request, post.session.workspace_id)
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
    changed(request, post.session.workspace_id)
    return redirect(f"/dashboard/plans/{quote(key, safe='')}?done=Plan+saved.")
