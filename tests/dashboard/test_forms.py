"""Every dashboard form: what it changes (read back through the API) and its
validation errors shown by the field, with nothing changed."""

from __future__ import annotations

import re

import pytest

from dashboard_support import Browser, populate, signed_in
from meterline.runtime import runtime_of
from support import Api


@pytest.fixture
def admin(api: Api) -> Browser:
    populate(api)
    return signed_in(api)


def _done(answer_location: str, browser: Browser) -> str:
    page = browser.get(answer_location)
    assert page.status_code == 200
    return page.text


def test_grant_and_debit_credits(api: Api, admin: Browser) -> None:
    granted = admin.post(
        "/dashboard/customers/org_a/grant",
        {"amount": "25.5", "source": "promotional", "priority": "1", "description": "Welcome"},
    )
    assert granted.status_code == 303
    assert "Credits granted." in _done(granted.headers["location"], admin)
    assert api.get("/v1/customers/org_a/credits").json()["balance"] == "125.5"
    debited = admin.post("/dashboard/customers/org_a/debit", {"amount": "0.5", "reference": "r1"})
    assert debited.status_code == 303
    assert api.get("/v1/customers/org_a/credits").json()["balance"] == "125"
    ledger = api.get("/v1/customers/org_a/credits/transactions").json()["data"]
    assert [t["amount"] for t in ledger[:2]] == ["-0.5", "25.5"]


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("grant", {"amount": "-3"}, "must be more than zero"),
        ("grant", {"amount": "abc"}, "amount"),
        ("grant", {"amount": "5", "expires_at": "2020-01-01T00:00:00Z"}, "future"),
        ("debit", {"amount": "1000"}, "does not cover"),
    ],
)
def test_credit_forms_show_errors_by_the_field(
    api: Api, admin: Browser, path: str, data: dict[str, str], message: str
) -> None:
    answer = admin.post(f"/dashboard/customers/org_a/{path}", data)
    assert answer.status_code == 422
    assert message in answer.text
    assert 'class="error"' in answer.text
    assert f'value="{data["amount"]}"' in answer.text  # what was typed stays in the form
    assert api.get("/v1/customers/org_a/credits").json()["balance"] == "100"


def test_grant_to_a_member_says_to_grant_to_its_organization(api: Api, admin: Browser) -> None:
    answer = admin.post("/dashboard/customers/user_a1/grant", {"amount": "5"})
    assert answer.status_code == 422
    assert "org_a" in answer.text


def test_change_cancel_and_subscribe(api: Api, admin: Browser) -> None:
    sub = api.get("/v1/customers/org_a/entitlements").json()["subscription"]
    changed = admin.post(
        "/dashboard/customers/org_a/subscription/change",
        {"subscription": sub, "plan": "basic", "at": "now"},
    )
    assert changed.status_code == 303
    assert "Plan changed to basic." in _done(changed.headers["location"], admin)
    assert api.get(f"/v1/subscriptions/{sub}").json()["plan"] == "basic"
    assert api.get("/v1/customers/org_a/usage").json()["plan"] == "basic"
    refused = admin.post(
        "/dashboard/customers/org_a/subscription/change",
        {"subscription": sub, "plan": "no_such_plan", "at": "now"},
    )
    assert refused.status_code == 422
    assert "no_such_plan" in refused.text
    canceled = admin.post(
        "/dashboard/customers/org_a/subscription/cancel", {"subscription": sub, "at": "now"}
    )
    assert canceled.status_code == 303
    assert api.get(f"/v1/subscriptions/{sub}").json()["status"] == "canceled"
    subscribed = admin.post(
        "/dashboard/customers/solo/subscribe", {"plan": "pro", "billing_anchor": "calendar"}
    )
    assert subscribed.status_code == 303
    assert api.get("/v1/customers/solo/entitlements").json()["plan"] == "pro"
    member = admin.post("/dashboard/customers/user_a1/subscribe", {"plan": "pro"})
    assert member.status_code == 422
    assert "member of an organization" in member.text


def test_reset_a_limit(api: Api, admin: Browser) -> None:
    def day_used() -> str:
        features = api.get("/v1/customers/org_a/entitlements").json()["features"]
        scans = next(f for f in features if f["feature"] == "scans")
        return next(lim["used"] for lim in scans["limits"] if lim["window"] == "day")

    assert day_used() == "8"
    reset = admin.post("/dashboard/customers/org_a/limits/reset", {"limit": "scans:day"})
    assert reset.status_code == 303
    assert day_used() == "0"
    refused = admin.post("/dashboard/customers/org_a/limits/reset", {"limit": "scans:hour"})
    assert refused.status_code == 422
    assert "No hour limit" in refused.text


def test_portal_link_is_shown_once_and_opens_that_customer(api: Api, admin: Browser) -> None:
    made = admin.post("/dashboard/customers/org_a/portal-link", {"hours": "2"})
    assert made.status_code == 200
    link = re.search(r'href="(http[^"]+/portal/mlct_[^"]+)"', made.text)
    assert link is not None
    path = link.group(1).split("testserver", 1)[1]
    portal = Browser.of(api).get(path)  # a fresh browser, no session
    assert portal.status_code == 200
    assert "Org A" in portal.text
    refused = admin.post("/dashboard/customers/org_a/portal-link", {"hours": "48"})
    assert refused.status_code == 422
    assert "1 to 24 hours" in refused.text


def test_create_and_edit_a_meter(api: Api, admin: Browser) -> None:
    created = admin.post(
        "/dashboard/meters",
        {
            "key": "pages",
            "name": "Pages",
            "event_type": "page",
            "aggregation": "sum",
            "value_property": "count",
            "filter": '{"kind": ["pdf"]}',
            "group_by": "kind, lang",
            "unit": "page",
        },
    )
    assert created.status_code == 303
    assert created.headers["location"].startswith("/dashboard/meters/pages")
    meter = api.get("/v1/meters/pages").json()
    assert (meter["filter"], meter["group_by"]) == ({"kind": ["pdf"]}, ["kind", "lang"])
    edited = admin.post("/dashboard/meters/pages", {"name": "PDF pages", "group_by": "kind"})
    assert edited.status_code == 303
    assert api.get("/v1/meters/pages").json()["name"] == "PDF pages"
    assert api.get("/v1/meters/pages").json()["group_by"] == ["kind"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "u", "event_type": "e", "aggregation": "unique_count"}, "value_property"),
        ({"key": "bad key", "event_type": "e", "aggregation": "count"}, "should match pattern"),
        ({"key": "f", "event_type": "e", "aggregation": "count", "filter": "{nope"}, "Not JSON"),
        ({"key": "scans", "event_type": "e", "aggregation": "count"}, "exists"),
    ],
)
def test_meter_form_errors_are_shown_inline(
    api: Api, admin: Browser, data: dict[str, str], message: str
) -> None:
    answer = admin.post("/dashboard/meters", data)
    assert answer.status_code == 422
    assert message in answer.text
    assert len(api.get("/v1/meters").json()["data"]) == 2


def test_a_meter_with_events_refuses_to_rewrite_its_numbers(api: Api, admin: Browser) -> None:
    answer = admin.post("/dashboard/meters/scans", {"aggregation": "sum", "value_property": "n"})
    assert answer.status_code == 422
    assert "has events" in answer.text or "already" in answer.text
    assert api.get("/v1/meters/scans").json()["aggregation"] == "count"


def test_create_and_edit_a_plan_as_json(api: Api, admin: Browser) -> None:
    definition = (
        '{"name": "Team", "currency": "EUR", "base_fee": "20", '
        '"features": {"scans": {"included": "10"}}}'
    )
    created = admin.post("/dashboard/plans", {"key": "team", "definition": definition})
    assert created.status_code == 303
    assert api.get("/v1/plans/team").json()["currency"] == "EUR"
    edited = admin.post(
        "/dashboard/plans/team",
        {"definition": definition.replace('"20"', '"25"')},
    )
    assert edited.status_code == 303
    plan = api.get("/v1/plans/team").json()
    assert (plan["base_fee"], plan["version"]) == ("25", 2)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("{not json", "not JSON"),
        ('{"name": "X", "currency": "XYZ"}', "not an ISO 4217 currency code"),
        ('{"name": "X", "currency": "USD", "features": {"ghost": {}}}', "no meter"),
        ('{"name": "X", "currency": "USD", "base_fee": "-1"}', "base_fee"),
    ],
)
def test_plan_json_errors_are_shown_inline(
    api: Api, admin: Browser, definition: str, message: str
) -> None:
    answer = admin.post("/dashboard/plans/pro", {"definition": definition})
    assert answer.status_code == 422
    assert message in answer.text
    assert api.get("/v1/plans/pro").json()["version"] == 1


def test_webhook_endpoints_deliveries_and_retry(api: Api, admin: Browser) -> None:
    created = admin.post(
        "/dashboard/webhooks",
        {"url": "http://127.0.0.1:9/other", "events": ["invoice.created", "credits.low"]},
    )
    assert created.status_code == 200
    assert re.search(r"data-secret>whsec_", created.text)
    endpoints = api.get("/v1/webhook-endpoints").json()["data"]
    assert sorted(e["url"] for e in endpoints) == [
        "http://127.0.0.1:9/hook",
        "http://127.0.0.1:9/other",
    ]
    refused = admin.post("/dashboard/webhooks", {"url": "ftp://x"})
    assert refused.status_code == 422
    hook = next(e for e in endpoints if e["url"].endswith("/hook"))
    api.post("/v1/customers/org_a/credits/grants", json={"amount": "1"})  # credits.granted
    delivery = api.get(f"/v1/webhook-endpoints/{hook['id']}/deliveries").json()["data"][0]
    page = admin.get(f"/dashboard/webhooks/{hook['id']}").text
    assert delivery["id"] in page
    retried = admin.post(f"/dashboard/webhooks/deliveries/{delivery['id']}/retry")
    assert retried.status_code == 303
    deleted = admin.post(f"/dashboard/webhooks/{hook['id']}/delete")
    assert deleted.status_code == 303
    assert len(api.get("/v1/webhook-endpoints").json()["data"]) == 1


def test_api_keys_created_once_and_revoked(api: Api, admin: Browser) -> None:
    created = admin.post("/dashboard/api-keys", {"name": "backend", "scopes": ["ingest", "read"]})
    assert created.status_code == 200
    secret = re.search(r"data-secret>(ml_[A-Za-z0-9_-]+)<", created.text)
    assert secret is not None
    assert api.with_key(secret.group(1)).get("/v1/customers").status_code == 200
    assert secret.group(1) not in admin.get("/dashboard/api-keys").text  # shown only once
    refused = admin.post("/dashboard/api-keys", {"name": "none"})
    assert refused.status_code == 422
    assert "scopes" in refused.text
    key_id = next(k["id"] for k in api.get("/v1/api-keys").json()["data"] if k["name"] == "backend")
    revoked = admin.post(f"/dashboard/api-keys/{key_id}/revoke")
    assert revoked.status_code == 303
    assert api.with_key(secret.group(1)).get("/v1/customers").status_code == 401


def test_the_keys_page_shows_each_keys_rate_limit(api: Api, admin: Browser) -> None:
    own = {"per_second": "2.5", "burst": 5}
    for name, rate_limit in [("own", own), ("free", {"per_second": None})]:
        body = {"name": name, "scopes": ["read"], "rate_limit": rate_limit}
        assert api.post("/v1/api-keys", json=body).status_code == 201
    page = admin.get("/dashboard/api-keys").text
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        if cells:  # name (and "this session"), prefix, scopes, created, last used, rate
            rows[cells[0].split()[0]] = cells[5].strip()
    assert rows == {"own": "2.5/s, 5 at once", "free": "unlimited", "admin": "default"}


def test_revoking_the_sessions_own_key_ends_it(api: Api) -> None:
    populate(api)
    own = api.new_key("admin")
    browser = Browser.of(api)
    browser.sign_in(own.key)
    key_id = next(
        k["id"]
        for k in api.get("/v1/api-keys").json()["data"]
        if k["name"] == "admin" and k["prefix"] == own.key[:11]
    )
    assert browser.post(f"/dashboard/api-keys/{key_id}/revoke").status_code == 303
    assert browser.get("/dashboard").status_code == 303


def test_finalize_and_void_invoices(api: Api, admin: Browser) -> None:
    from meterline.jobs.registry import runner

    api.patch("/v1/workspace", json={"invoice_grace_days": 90})
    state = runtime_of(api.client.app)
    runner(state.db, state.settings).drain()  # closes org_a's past periods into drafts
    drafts = api.get("/v1/invoices", params={"status": "draft"}).json()["data"]
    assert drafts
    first = drafts[0]["id"]
    assert admin.post(f"/dashboard/invoices/{first}/finalize").status_code == 303
    assert api.get(f"/v1/invoices/{first}").json()["status"] == "finalized"
    assert admin.post(f"/dashboard/invoices/{first}/void").status_code == 303
    assert api.get(f"/v1/invoices/{first}").json()["status"] == "void"
    again = admin.post(f"/dashboard/invoices/{first}/void")
    assert again.status_code == 409
    assert "already void" in again.text
