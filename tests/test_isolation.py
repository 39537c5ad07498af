"""Workspaces never see each other: another workspace's object is 404 and never listed.

The tables below must name every ``/v1`` route; ``test_every_route_is_covered``
fails when a later issue adds a route without adding it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from meterline.app import create_app
from meterline.jobs.registry import runner
from meterline.runtime import runtime_of
from support import Api, assert_problem


@dataclass
class Objects:
    """Ids of objects that workspace A owns."""

    customer: str
    api_key: str
    meter: str
    plan: str
    subscription: str
    reservation: str
    grant: str
    invoice: str
    endpoint: str
    delivery: str
    event: str
    report: str


def _objects_of(api: Api) -> Objects:
    hook = {"url": "http://127.0.0.1:9/a-hook", "events": ["subscription.created"]}
    endpoint = api.post("/v1/webhook-endpoints", json=hook).json()
    api.post("/v1/customers", json={"external_id": "a_org", "name": "A's org"})
    api.post("/v1/customers", json={"external_id": "a_member", "parent": "a_org"})
    key = api.post("/v1/api-keys", json={"name": "a-read", "scopes": ["read"]}).json()
    api.post("/v1/meters", json={"key": "a_meter", "event_type": "a_type", "aggregation": "count"})
    plan = {"key": "a_plan", "name": "A plan", "currency": "USD"}
    limit = {"window": "day", "max": "10", "alert_at": ["0.1", "1.0"]}
    plan["features"] = {"a_meter": {"limits": [limit]}}
    assert api.post("/v1/plans", json=plan).status_code == 201
    body = {"customer": "a_org", "plan": "a_plan", "start_at": "2026-10-01T00:00:00Z"}
    sub = api.post("/v1/subscriptions", json=body).json()
    consume = {"customer": "a_org", "feature": "a_meter", "consume": True, "id": "a_event"}
    assert api.post("/v1/check", json=consume).json()["allowed"] is True  # 10 %: an alert
    # A's Stripe (invoices mode): October's invoice becomes a report (failed, as a_org has
    # no Stripe customer: nothing is sent anywhere).
    stripe = {"secret_key": "sk_test_isolation0000", "mode": "invoices"}
    assert api.request("PUT", "/v1/integrations/stripe", json=stripe).status_code == 200
    state = runtime_of(api.client.app)
    runner(state.db, state.settings).drain()  # October closes into A's invoice
    invoice = api.get("/v1/invoices").json()["data"][0]
    deliveries = api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()["data"]
    hold = {"customer": "a_org", "feature": "a_meter", "ttl_seconds": 3600}
    reservation = api.post("/v1/reservations", json=hold).json()
    assert reservation["allowed"] is True
    grant = api.post("/v1/customers/a_org/credits/grants", json={"amount": "100"}).json()
    (report,) = api.get("/v1/integrations/stripe/reports").json()["data"]
    return Objects(
        customer="a_org",
        api_key=key["id"],
        meter="a_meter",
        plan="a_plan",
        subscription=sub["id"],
        reservation=reservation["id"],
        grant=grant["grant"]["id"],
        invoice=invoice["id"],
        endpoint=endpoint["id"],
        delivery=deliveries[0]["id"],
        event="a_event",
        report=report["id"],
    )


def _a_still_intact(api: Api) -> None:
    assert api.get("/v1/customers/a_org").json()["name"] == "A's org"
    assert "a-read" in api.get("/v1/api-keys").text
    assert api.get("/v1/meters/a_meter").json()["aggregation"] == "count"
    usage = api.get("/v1/meters/a_meter/usage", params={"customer": "a_org"}).json()["data"]
    assert [u["value"] for u in usage] == ["1"]
    assert api.get("/v1/plans/a_plan").json()["name"] == "A plan"
    entitlements = api.get("/v1/customers/a_org/entitlements").json()
    assert entitlements["plan"] == "a_plan"
    day = entitlements["features"][0]["limits"][0]
    assert (day["used"], day["held"]) == ("1", "1")  # the event, and the live hold
    credits = api.get("/v1/customers/a_org/credits").json()
    assert (credits["balance"], credits["low_balance_threshold"]) == ("100", None)
    assert len(api.get("/v1/customers/a_org/credits/transactions").json()["data"]) == 1
    assert api.get("/v1/webhook-endpoints").json()["data"][0]["enabled"] is True
    assert [a["type"] for a in api.get("/v1/alerts").json()["data"]] == ["usage.threshold_reached"]
    invoices = api.get("/v1/invoices").json()["data"]
    assert [(i["number"], i["status"]) for i in invoices] == [("INV-000001", "finalized")]
    events = api.get("/v1/events").json()["data"]
    assert [(e["id"], e["voided_at"]) for e in events] == [("a_event", None)]
    stripe = api.get("/v1/integrations/stripe").json()
    assert (stripe["status"], stripe["mode"], stripe["failed"]) == ("connected", "invoices", 1)
    assert [r["customer"] for r in api.get("/v1/integrations/stripe/reports").json()["data"]] == [
        "a_org"
    ]


# (method, route template, concrete path, body) for routes that address one object.
OBJECT_ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/customers/{external_id}", "/v1/customers/{customer}", None),
    ("PATCH", "/v1/customers/{external_id}", "/v1/customers/{customer}", {"name": "stolen"}),
    ("DELETE", "/v1/customers/{external_id}", "/v1/customers/{customer}", None),
    (
        "PATCH",
        "/v1/api-keys/{key_id}",
        "/v1/api-keys/{api_key}",
        {"name": "stolen", "rate_limit": {"per_second": None}},
    ),
    ("DELETE", "/v1/api-keys/{key_id}", "/v1/api-keys/{api_key}", None),
    ("GET", "/v1/meters/{key}", "/v1/meters/{meter}", None),
    ("PATCH", "/v1/meters/{key}", "/v1/meters/{meter}", {"name": "stolen"}),
    ("DELETE", "/v1/meters/{key}", "/v1/meters/{meter}", None),
    ("GET", "/v1/meters/{key}/usage", "/v1/meters/{meter}/usage", None),
    ("GET", "/v1/plans/{key}", "/v1/plans/{plan}", None),
    ("PUT", "/v1/plans/{key}", "/v1/plans/{plan}", {"name": "stolen", "currency": "USD"}),
    ("GET", "/v1/subscriptions/{subscription_id}", "/v1/subscriptions/{subscription}", None),
    (
        "POST",
        "/v1/subscriptions/{subscription_id}/change",
        "/v1/subscriptions/{subscription}/change",
        {"plan": "a_plan"},
    ),
    (
        "POST",
        "/v1/subscriptions/{subscription_id}/cancel",
        "/v1/subscriptions/{subscription}/cancel",
        {"at": "now"},
    ),
    ("GET", "/v1/reservations/{reservation_id}", "/v1/reservations/{reservation}", None),
    (
        "POST",
        "/v1/reservations/{reservation_id}/settle",
        "/v1/reservations/{reservation}/settle",
        {"quantity": "1"},
    ),
    (
        "POST",
        "/v1/reservations/{reservation_id}/release",
        "/v1/reservations/{reservation}/release",
        {},
    ),
    (
        "GET",
        "/v1/customers/{external_id}/entitlements",
        "/v1/customers/{customer}/entitlements",
        None,
    ),
    (
        "POST",
        "/v1/customers/{external_id}/limits/reset",
        "/v1/customers/{customer}/limits/reset",
        {"window": "day"},
    ),
    ("GET", "/v1/customers/{external_id}/credits", "/v1/customers/{customer}/credits", None),
    (
        "PATCH",
        "/v1/customers/{external_id}/credits",
        "/v1/customers/{customer}/credits",
        {"low_balance_threshold": "5"},
    ),
    (
        "POST",
        "/v1/customers/{external_id}/credits/grants",
        "/v1/customers/{customer}/credits/grants",
        {"amount": "5"},
    ),
    (
        "POST",
        "/v1/customers/{external_id}/credits/debits",
        "/v1/customers/{customer}/credits/debits",
        {"amount": "5"},
    ),
    (
        "POST",
        "/v1/customers/{external_id}/credits/grants/{grant_id}/void",
        "/v1/customers/{customer}/credits/grants/{grant}/void",
        {},
    ),
    (
        "GET",
        "/v1/customers/{external_id}/credits/transactions",
        "/v1/customers/{customer}/credits/transactions",
        None,
    ),
]

OBJECT_ROUTES += [
    ("GET", f"/v1/customers/{{external_id}}/{view}", f"/v1/customers/{{customer}}/{view}", None)
    for view in ("usage", "usage/history", "usage/forecast", "invoices/upcoming")
]
OBJECT_ROUTES += [
    ("GET", "/v1/invoices/{invoice_id}", "/v1/invoices/{invoice}", None),
    ("POST", "/v1/invoices/{invoice_id}/finalize", "/v1/invoices/{invoice}/finalize", {}),
    ("POST", "/v1/invoices/{invoice_id}/void", "/v1/invoices/{invoice}/void", {}),
]

OBJECT_ROUTES += [
    ("GET", "/v1/webhook-endpoints/{endpoint_id}", "/v1/webhook-endpoints/{endpoint}", None),
    (
        "PATCH",
        "/v1/webhook-endpoints/{endpoint_id}",
        "/v1/webhook-endpoints/{endpoint}",
        {"enabled": False},
    ),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}", "/v1/webhook-endpoints/{endpoint}", None),
    (
        "POST",
        "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        "/v1/webhook-endpoints/{endpoint}/rotate-secret",
        {},
    ),
    (
        "GET",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries",
        "/v1/webhook-endpoints/{endpoint}/deliveries",
        None,
    ),
    (
        "POST",
        "/v1/webhook-deliveries/{delivery_id}/retry",
        "/v1/webhook-deliveries/{delivery}/retry",
        {},
    ),
]

OBJECT_ROUTES += [
    ("POST", "/v1/customers/{external_id}/tokens", "/v1/customers/{customer}/tokens", {}),
    ("POST", "/v1/events/{event_id}/void", "/v1/events/{event}/void", {}),
    (
        "POST",
        "/v1/integrations/stripe/reports/{report_id}/retry",
        "/v1/integrations/stripe/reports/{report}/retry",
        {},
    ),
]

# (route template, params, what must not appear) for lists.
LIST_ROUTES: list[tuple[str, dict[str, str], str]] = [
    ("/v1/customers", {}, "a_org"),
    ("/v1/customers", {"parent": "a_org"}, "a_member"),
    ("/v1/api-keys", {}, "a-read"),
    ("/v1/events", {}, "a_event"),
    ("/v1/events", {"customer": "a_org"}, "a_event"),
    ("/v1/meters", {}, "a_meter"),
    ("/v1/plans", {}, "a_plan"),
    ("/v1/invoices", {}, "a_org"),
    ("/v1/webhook-endpoints", {}, "a-hook"),
    ("/v1/alerts", {}, "a_org"),
    ("/v1/alerts", {"customer": "a_org"}, "a_org"),
    ("/v1/invoices", {"customer": "a_org"}, "a_org"),
    ("/v1/workspace", {}, "alpha"),
    ("/v1/subscriptions", {}, "a_org"),
    ("/v1/subscriptions", {"customer": "a_org"}, "a_org"),
    ("/v1/integrations/stripe", {}, "invoices"),
    ("/v1/integrations/stripe/reports", {}, "a_org"),
    ("/v1/integrations/stripe/reports", {"customer": "a_org"}, "a_org"),
]

# Routes that create objects, with a body that points at A's objects.
CREATE_ROUTES: list[tuple[str, dict[str, Any], int, str]] = [
    ("/v1/customers", {"external_id": "b_member", "parent": "a_org"}, 422, "validation_error"),
    ("/v1/api-keys", {"name": "b", "scopes": ["read"]}, 201, ""),
    # B's event naming "a_org" creates B's own a_org; A's usage does not move.
    ("/v1/events", {"id": "a_event", "type": "a_type", "customer": "a_org"}, 200, ""),
    ("/v1/meters", {"key": "a_meter", "event_type": "a_type", "aggregation": "count"}, 201, ""),
    # B has no meter a_meter and no customer a_org: its plan and subscription are refused.
    (
        "/v1/plans",
        {"key": "a_plan", "name": "B", "currency": "USD", "features": {"a_meter": {}}},
        422,
        "validation_error",
    ),
    ("/v1/subscriptions", {"customer": "a_org", "plan": "a_plan"}, 422, "validation_error"),
    # Checks and holds for A's customer are answered for B's (unknown) one: denied.
    ("/v1/check", {"customer": "a_org", "feature": "a_meter", "consume": True}, 200, ""),
    ("/v1/reservations", {"customer": "a_org", "feature": "a_meter"}, 200, ""),
    ("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/b-hook"}, 201, ""),
]

# Routes about the caller's own workspace: B changes B, never A.
SELF_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/workspace", None),
    ("PATCH", "/v1/workspace", {"auto_create_customers": False}),
]


# Stripe's routes about the caller's own integration: B's calls never reach A's.
STRIPE_ROUTES: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    (
        "PUT",
        "/v1/integrations/stripe",
        {"secret_key": "sk_test_b0000000", "mode": "meter_events"},
        200,
        "",
    ),
    ("DELETE", "/v1/integrations/stripe", None, 409, "stripe_not_connected"),
    ("POST", "/v1/integrations/stripe/sync", {}, 409, "stripe_not_connected"),
    (
        "POST",
        "/v1/integrations/stripe/reconcile",
        {"from": "2026-10-01T00:00:00Z", "to": "2026-10-02T00:00:00Z"},
        409,
        "stripe_not_connected",
    ),
    # No key: Stripe signs it. Signed by no secret of any workspace: refused.
    ("POST", "/v1/integrations/stripe/webhook", {"type": "invoice.paid"}, 400, "invalid_signature"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), STRIPE_ROUTES)
def test_stripe_routes_touch_only_the_callers_integration(
    api: Api,
    other: Api,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    _objects_of(api)
    r = other.request(method, path, json=body) if body is not None else other.request(method, path)
    if code:
        assert_problem(r, status, code)
    else:
        assert r.status_code == status, r.text
        assert r.json()["mode"] == "meter_events"
    _a_still_intact(api)


@pytest.mark.parametrize(("method", "template", "path", "body"), OBJECT_ROUTES)
def test_other_workspaces_objects_are_404(
    api: Api, other: Api, method: str, template: str, path: str, body: dict[str, Any] | None
) -> None:
    objects = _objects_of(api)
    concrete = path.format(**objects.__dict__)
    r = other.request(method, concrete, json=body) if body else other.request(method, concrete)
    assert_problem(r, 404, "not_found")
    _a_still_intact(api)


@pytest.mark.parametrize(("path", "params", "needle"), LIST_ROUTES)
def test_lists_never_show_other_workspaces(
    api: Api, other: Api, path: str, params: dict[str, str], needle: str
) -> None:
    _objects_of(api)
    assert needle in api.get(path, params=params).text  # the object is really there
    r = other.get(path, params=params)
    assert r.status_code == 200
    assert needle not in r.text


@pytest.mark.parametrize(("path", "body", "status", "code"), CREATE_ROUTES)
def test_creates_cannot_reach_other_workspaces(
    api: Api, other: Api, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    _objects_of(api)
    r = other.post(path, json=body)
    if code:
        assert_problem(r, status, code)
    else:
        assert r.status_code == status
        if "allowed" in r.json():
            assert (r.json()["allowed"], r.json()["reason"]) == (False, "unknown_customer")
    assert "b_member" not in api.get("/v1/customers").text
    _a_still_intact(api)


@pytest.mark.parametrize(("method", "path", "body"), SELF_ROUTES)
def test_workspace_routes_touch_only_the_callers_workspace(
    api: Api, other: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    _objects_of(api)
    r = other.request(method, path, json=body) if body else other.request(method, path)
    assert r.status_code == 200
    assert r.json()["name"] == "beta"
    assert api.get("/v1/workspace").json()["auto_create_customers"] is True


# The workspace's configuration as one document: B exports and applies B's only.
CONFIG_ROUTES = {("GET", "/v1/config/export"), ("POST", "/v1/config/apply")}


def test_configuration_documents_are_the_callers_workspace_only(api: Api, other: Api) -> None:
    _objects_of(api)
    before = api.get("/v1/config/export").json()
    assert set(before["meters"]) == {"a_meter"}
    theirs = other.get("/v1/config/export").json()
    assert (theirs["meters"], theirs["plans"]) == ({}, {})
    # B declares a meter and plan with A's keys and prunes everything else: B's own, new.
    document = {
        "meters": {"a_meter": {"event_type": "b_type", "aggregation": "sum"}},
        "plans": {"a_plan": {"name": "B plan", "currency": "EUR"}},
        "workspace": {"auto_create_customers": False},
    }
    done = other.post("/v1/config/apply", params={"prune": True}, json=document).json()
    assert [(c["object"], c["action"]) for c in done["changes"]] == [
        ("meter", "create"),
        ("plan", "create"),
        ("workspace", "update"),
    ]
    assert api.get("/v1/config/export").json() == before
    assert other.get("/v1/meters/a_meter").json()["event_type"] == "b_type"


def test_same_external_id_lives_in_both_workspaces(api: Api, other: Api) -> None:
    api.post("/v1/customers", json={"external_id": "shared", "name": "A"})
    assert (
        other.post("/v1/customers", json={"external_id": "shared", "name": "B"}).status_code == 201
    )
    assert api.get("/v1/customers/shared").json()["name"] == "A"
    assert other.get("/v1/customers/shared").json()["name"] == "B"


def test_every_route_is_covered() -> None:
    covered = {(m, t) for m, t, _, _ in OBJECT_ROUTES}
    covered |= {("GET", t) for t, _, _ in LIST_ROUTES}
    covered |= {("POST", t) for t, _, _, _ in CREATE_ROUTES}
    covered |= {(m, t) for m, t, _ in SELF_ROUTES}
    covered |= {(m, t) for m, t, _, _, _ in STRIPE_ROUTES}
    covered |= CONFIG_ROUTES
    # The OpenAPI document lists every route (FastAPI now nests included routers, so
    # ``app.routes`` no longer shows them one by one).
    paths = create_app().openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method in operations
    }
    assert len(routes) > 20  # the walk really found the API
    assert routes - covered == set()


# The dashboard's routes that address one object (HTML, not in the OpenAPI document):
# (method, route template, concrete path). Another workspace's session gets 404.
DASHBOARD_ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/dashboard/customers/{external_id}", "/dashboard/customers/{customer}"),
    ("POST", "/dashboard/customers/{external_id}/grant", "/dashboard/customers/{customer}/grant"),
    ("POST", "/dashboard/customers/{external_id}/debit", "/dashboard/customers/{customer}/debit"),
    (
        "POST",
        "/dashboard/customers/{external_id}/subscribe",
        "/dashboard/customers/{customer}/subscribe",
    ),
    (
        "POST",
        "/dashboard/customers/{external_id}/subscription/change",
        "/dashboard/customers/{customer}/subscription/change",
    ),
    (
        "POST",
        "/dashboard/customers/{external_id}/subscription/cancel",
        "/dashboard/customers/{customer}/subscription/cancel",
    ),
    (
        "POST",
        "/dashboard/customers/{external_id}/limits/reset",
        "/dashboard/customers/{customer}/limits/reset",
    ),
    (
        "POST",
        "/dashboard/customers/{external_id}/portal-link",
        "/dashboard/customers/{customer}/portal-link",
    ),
    ("GET", "/dashboard/meters/{key}", "/dashboard/meters/{meter}"),
    ("POST", "/dashboard/meters/{key}", "/dashboard/meters/{meter}"),
    ("GET", "/dashboard/plans/{key}", "/dashboard/plans/{plan}"),
    ("POST", "/dashboard/plans/{key}", "/dashboard/plans/{plan}"),
    ("POST", "/dashboard/invoices/{invoice_id}/{action}", "/dashboard/invoices/{invoice}/void"),
    ("GET", "/dashboard/webhooks/{endpoint_id}", "/dashboard/webhooks/{endpoint}"),
    ("POST", "/dashboard/webhooks/{endpoint_id}/delete", "/dashboard/webhooks/{endpoint}/delete"),
    (
        "POST",
        "/dashboard/webhooks/deliveries/{delivery_id}/retry",
        "/dashboard/webhooks/deliveries/{delivery}/retry",
    ),
    ("POST", "/dashboard/api-keys/{key_id}/revoke", "/dashboard/api-keys/{api_key}/revoke"),
    (
        "POST",
        "/dashboard/stripe/reports/{report_id}/retry",
        "/dashboard/stripe/reports/{report}/retry",
    ),
]
# A customer token names its own workspace and customer: tests/dashboard/test_portal.py.
NOT_BY_ID = {("GET", "/portal/{token}")}


@pytest.mark.parametrize(("method", "template", "path"), DASHBOARD_ROUTES)
def test_dashboard_answers_404_for_other_workspaces_objects(
    api: Api, other: Api, method: str, template: str, path: str
) -> None:
    from dashboard_support import signed_in

    objects = _objects_of(api)
    concrete = path.format(**objects.__dict__)
    stranger = signed_in(other)
    form = {
        "amount": "5",
        "plan": "a_plan",
        "subscription": objects.subscription,
        "limit": "a_meter:day",
        "hours": "1",
        "name": "stolen",
        "definition": '{"name": "stolen", "currency": "USD"}',
    }
    answer = stranger.get(concrete) if method == "GET" else stranger.post(concrete, form)
    assert answer.status_code == 404, answer.text
    assert "A's org" not in answer.text
    _a_still_intact(api)


def test_every_dashboard_route_is_covered() -> None:
    from meterline.dashboard import ROUTERS

    routes = {
        (method, route.path)
        for r in ROUTERS
        for route in r.routes
        if "{" in getattr(route, "path", "")
        for method in getattr(route, "methods", ())
    }
    assert len(routes) > 10
    assert routes - {(m, t) for m, t, _ in DASHBOARD_ROUTES} - NOT_BY_ID == set()
