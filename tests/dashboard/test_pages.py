"""The dashboard through the real app: every page for an admin, a read and no session;
sign-in and its cookie; CSRF; read-only sessions; the numbers equal the API's."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from dashboard_support import Browser, populate, signed_in
from meterline.dashboard import session as sessions
from meterline.kit.time import Clock, clock, utc_now
from support import Api

PAGES = [
    ("/dashboard", "Events received per hour"),
    ("/dashboard?range=7d", "Events received per hour"),
    ("/dashboard?range=30d&feature=tokens", "Top 10 by usage"),
    ("/dashboard/customers", "org_a"),
    ("/dashboard/customers?q=solo", "Solo"),
    ("/dashboard/customers/org_a", "Org A"),
    ("/dashboard/customers/user_a1", "member of"),
    ("/dashboard/customers/solo", "Solo"),
    ("/dashboard/meters", "scans"),
    ("/dashboard/meters/scans", "Usage across customers"),
    (
        "/dashboard/meters/scans?range=7d&window=day&timezone=Europe/Berlin&group_by=document",
        "receipt",
    ),
    ("/dashboard/plans", "basic"),
    ("/dashboard/plans/pro", "5 scans free, then 0.25 USD each"),
    ("/dashboard/revenue", "upcoming"),
    ("/dashboard/invoices", "Invoices"),
    ("/dashboard/alerts", "Alerts"),
    ("/dashboard/webhooks", "127.0.0.1:9/hook"),
    ("/dashboard/api-keys", "admin"),
    ("/dashboard/stripe", "Failed reports"),
]


@pytest.fixture
def admin(api: Api) -> Browser:
    populate(api)
    return signed_in(api)


def test_every_page_for_an_admin(api: Api, admin: Browser) -> None:
    for path, needle in PAGES:
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text[:3000])
        assert needle in page.text, path
        assert page.headers["content-type"].startswith("text/html")
    assert "<form" in admin.get("/dashboard/customers/org_a").text


def test_every_page_for_a_read_session_has_no_form(api: Api) -> None:
    populate(api)
    reader = signed_in(api, "read")
    for path, needle in PAGES:
        page = reader.get(path)
        assert page.status_code == 200, path
        assert needle in page.text, path
        assert "<form" not in page.text, path
        assert "read-only session" in page.text


def test_without_a_session_every_page_sends_to_sign_in(api: Api) -> None:
    populate(api)
    anonymous = Browser.of(api)
    for path, _ in PAGES:
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/dashboard/login?next=/dashboard")
    htmx = anonymous.get("/dashboard/customers", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith("/dashboard/login")
    # After signing in, the browser goes back where it was sent from.
    form = anonymous.get("/dashboard/login?next=/dashboard/meters/scans")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = anonymous.client.post(
        "/dashboard/login",
        data={"api_key": api.key, "csrf_token": token.group(1), "next": "/dashboard/meters/scans"},
    )
    assert done.headers["location"] == "/dashboard/meters/scans"


def test_sign_in_refuses_bad_keys_by_the_field(api: Api) -> None:
    browser = Browser.of(api)
    for key, message in (
        ("", "Paste an API key"),
        ("ml_" + "x" * 43, "unknown or revoked"),
        (api.new_key("ingest").key, "needs the admin or read scope"),
    ):
        answer = browser.sign_in(key)
        assert answer.status_code == 422
        assert message in answer.text
        assert sessions.SESSION_COOKIE not in browser.client.cookies


def test_sign_in_form_needs_its_own_token(api: Api) -> None:
    browser = Browser.of(api)
    browser.get("/dashboard/login")
    answer = browser.client.post(
        "/dashboard/login", data={"api_key": api.key, "csrf_token": "forged", "next": ""}
    )
    assert answer.status_code == 403
    assert "The form expired" in answer.text


def test_session_cookie_is_signed_http_only_strict_and_secure_behind_https(api: Api) -> None:
    browser = Browser.of(api)
    answer = browser.sign_in(api.key)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{sessions.SESSION_COOKIE}=v1.")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie
    assert api.key not in cookie  # the cookie names the key, never holds it
    proxied = Browser.of(api)
    form = proxied.get("/dashboard/login", headers={"X-Forwarded-Proto": "https"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    secure = proxied.client.post(
        "/dashboard/login",
        data={"api_key": api.key, "csrf_token": token.group(1), "next": ""},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in secure.headers["set-cookie"]


def test_an_altered_cookie_is_no_session(api: Api) -> None:
    browser = signed_in(api)
    value = browser.client.cookies[sessions.SESSION_COOKIE]
    version, payload, signature = value.split(".")
    forged = f"{version}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    browser.client.cookies.clear()
    browser.client.cookies.set(sessions.SESSION_COOKIE, forged)
    assert browser.get("/dashboard").status_code == 303


def test_a_session_ends_after_12_hours(api: Api) -> None:
    browser = signed_in(api)
    assert browser.get("/dashboard/api-keys").status_code == 200
    later = Clock(utc_now() + timedelta(hours=12, seconds=1))
    with clock(later):
        assert browser.get("/dashboard/api-keys").status_code == 303


def test_a_session_ends_when_its_key_is_revoked(api: Api) -> None:
    reader_key = api.new_key("read")
    browser = Browser.of(api)
    browser.sign_in(reader_key.key)
    assert browser.get("/dashboard/api-keys").status_code == 200
    key_id = next(k["id"] for k in api.get("/v1/api-keys").json()["data"] if k["name"] == "read")
    assert api.delete(f"/v1/api-keys/{key_id}").status_code == 204
    assert browser.get("/dashboard/api-keys").status_code == 303


def test_sign_out_needs_the_sessions_token(api: Api) -> None:
    browser = signed_in(api)
    assert browser.get("/dashboard/logout").headers["location"] == "/dashboard"
    assert browser.get("/dashboard").status_code == 200  # a foreign link signs nobody out
    out = browser.get(f"/dashboard/logout?token={browser.csrf()}")
    assert out.headers["location"] == "/dashboard/login"
    assert browser.get("/dashboard").status_code == 303


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(api: Api, admin: Browser) -> None:
    before = api.get("/v1/customers/org_a/credits").json()["balance"]
    for data in ({"amount": "5"}, {"amount": "5", "csrf_token": "nope"}):
        answer = admin.post("/dashboard/customers/org_a/grant", data, csrf=False)
        assert answer.status_code == 403
        assert "Form expired" in answer.text
    assert api.get("/v1/customers/org_a/credits").json()["balance"] == before


def test_read_sessions_posts_are_403(api: Api) -> None:
    populate(api)
    reader = signed_in(api, "read")
    token = reader.csrf()
    for path, data in (
        ("/dashboard/customers/org_a/grant", {"amount": "5"}),
        ("/dashboard/meters", {"key": "x", "event_type": "x", "aggregation": "count"}),
        ("/dashboard/api-keys", {"name": "x", "scopes": "admin"}),
        ("/dashboard/plans/pro", {"definition": "{}"}),
    ):
        answer = reader.post(path, {**data, "csrf_token": token}, csrf=False)
        assert answer.status_code == 403, path
        assert "read scope only" in answer.text
    assert api.get("/v1/customers/org_a/credits").json()["balance"] == "100"
    assert "a-read" not in api.get("/v1/api-keys").text


def test_another_workspaces_ids_are_404(api: Api, other: Api) -> None:
    populate(api)
    endpoint = api.get("/v1/webhook-endpoints").json()["data"][0]["id"]
    stranger = signed_in(other)
    for path in (
        "/dashboard/customers/org_a",
        "/dashboard/meters/scans",
        "/dashboard/plans/pro",
        f"/dashboard/webhooks/{endpoint}",
    ):
        answer = stranger.get(path)
        assert answer.status_code == 404, path
        assert "Org A" not in answer.text
    for path, data in (
        ("/dashboard/customers/org_a/grant", {"amount": "5"}),
        ("/dashboard/customers/org_a/portal-link", {"hours": "1"}),
        (f"/dashboard/webhooks/{endpoint}/delete", {}),
        ("/dashboard/plans/pro", {"definition": '{"name": "x", "currency": "USD"}'}),
    ):
        assert stranger.post(path, data).status_code == 404, path
    assert "org_a" not in stranger.get("/dashboard/customers").text
    assert api.get("/v1/customers/org_a/credits").json()["balance"] == "100"


def test_pages_carry_a_strict_content_security_policy(api: Api, admin: Browser) -> None:
    page = admin.get("/dashboard/customers/org_a")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # every script is a file (src=…)
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline event handlers
    assert 'style="' not in page.text


def test_customer_page_numbers_are_the_apis(api: Api, admin: Browser) -> None:
    page = admin.get("/dashboard/customers/org_a").text
    usage = api.get("/v1/customers/org_a/usage").json()
    upcoming = api.get("/v1/customers/org_a/invoices/upcoming").json()
    credits = api.get("/v1/customers/org_a/credits").json()

    def figure(name: str) -> str:
        found = re.search(rf'data-figure="{re.escape(name)}">([^<]+)<', page)
        assert found is not None, name
        return found.group(1).split()[0]

    # 49.00 base fee + (8 - 5 included) scans x 0.25 + (1500 - 1000 free) tokens x 0.001
    assert figure("total") == usage["total"] == "50.25"
    for feature in usage["features"]:
        assert figure(f"used-{feature['feature']}") == feature["used"]
        assert figure(f"amount-{feature['feature']}") == feature["amount"]
    assert figure("upcoming") == upcoming["total"]
    assert figure("balance") == credits["balance"] == "100"
    assert "missing_value" in page  # the event whose meter got no value says why
    assert "unmetered" not in page or "solo" not in page


def test_overview_and_lists_agree_with_the_api(api: Api, admin: Browser) -> None:
    overview = admin.get("/dashboard").text
    upcoming = api.get("/v1/customers/org_a/invoices/upcoming").json()["total"]
    forecast = api.get("/v1/customers/org_a/usage/forecast").json()["total"]
    # solo has no plan (no subscription, no default plan): org_a is all the revenue.
    assert f'data-figure="so-far-USD">{upcoming}<' in overview
    assert f'data-figure="projected-USD">{forecast}<' in overview
    assert 'data-figure="accepted">11<' in overview
    # What POST /v1/events answered: t2's one meter gets no value from it and no meter
    # has x1's type, so both are unmetered.
    figures = re.findall(r"data-figure=\"(\w+)\">(\d+)<", overview)[:4]
    assert figures == [
        ("accepted", "11"),
        ("rejected", "0"),
        ("unmetered", "2"),
        ("duplicates", "0"),
    ]
    listed = admin.get("/dashboard/customers").text
    assert f"{upcoming} USD" in listed
    meter = admin.get("/dashboard/meters/scans?range=24h").text
    rows = api.get(
        "/v1/meters/scans/usage", params={"from": (utc_now() - timedelta(hours=24)).isoformat()}
    ).json()["data"]
    assert [r["value"] for r in rows if r["customer"] == "org_a"] == ["8"]
    assert 'data-figure="top-org_a">8 scan<' in meter


def test_calculator_is_the_rating_code(api: Api, admin: Browser) -> None:
    page = admin.get("/dashboard/plans/pro?used.scans=12&used.tokens=2500").text
    # 49 base + (12 - 5) x 0.25 + graduated: 1000 free, 1500 x 0.001
    assert 'data-figure="quote-total">52.25 USD<' in page
    bad = admin.get("/dashboard/plans/pro?used.scans=-1")
    assert "Usage is never negative." in bad.text


def test_what_if_prices_last_periods_real_usage(api: Api, admin: Browser) -> None:
    page = admin.get("/dashboard/plans/basic?n=5").text
    assert "org_a" in page
    assert 'data-figure="would-org_a">9.00 USD<' in page


def test_vendored_assets_are_the_pinned_releases() -> None:
    script = Path(__file__).parents[2] / "scripts" / "vendor_assets.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_static_files_and_docs_are_local(api: Api) -> None:
    for path in (
        "/dashboard/static/vendor/htmx/htmx.min.js",
        "/dashboard/static/vendor/uplot/uPlot.iife.min.js",
        "/dashboard/static/app.js",
    ):
        assert api.client.get(path).status_code == 200, path
    docs = api.client.get("/docs").text
    assert "/dashboard/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    assert not re.search(r'(src|href)="https?://', docs)
    root = api.client.get("/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (303, "/dashboard")


@pytest.mark.parametrize(
    ("meter", "params"),
    [("tokens", {"window": "hour"}), ("scans", {"window": "day", "group_by": "document"})],
)
def test_meter_chart_is_the_apis_rows_added_up(
    api: Api, admin: Browser, meter: str, params: dict[str, str]
) -> None:
    page = admin.get(f"/dashboard/meters/{meter}", params={"range": "24h", **params}).text
    found = re.search(r'data-range="([^/"]+)/([^"]+)"', page)
    chart = re.search(r"data-chart='([^']+)'", page)
    assert found is not None
    assert chart is not None
    drawn = json.loads(html.unescape(chart.group(1)))
    query = {"from": found.group(1), "to": found.group(2), **params}
    rows = api.get(f"/v1/meters/{meter}/usage", params=query).json()["data"]
    expected: dict[tuple[int, str], Decimal] = {}
    for row in rows:
        start = int(datetime.fromisoformat(row["window_start"]).timestamp())
        label = str(row["group"].get("document", meter))
        expected[(start, label)] = expected.get((start, label), Decimal(0)) + Decimal(row["value"])
    shown = {
        (x, series["label"]): Decimal(value)
        for series in drawn["series"]
        for x, value in zip(drawn["x"], series["values"], strict=True)
        if value != "0"
    }
    assert shown == expected
    assert sum(shown.values()) > 0


def test_serve_help_describes_the_dashboard() -> None:
    from cli_support import run

    done = run("serve", "--help")
    assert done.returncode == 0
    assert "/dashboard" in done.stdout
    assert "sign in with" in done.stdout


def test_top_customers_of_a_meter_no_plan_prices(api: Api, admin: Browser) -> None:
    meter = {"key": "misc", "event_type": "nothing_meters_this", "aggregation": "count"}
    assert api.post("/v1/meters", json=meter).status_code == 201  # counts x1 at once
    page = admin.get("/dashboard/meters/misc").text
    assert "Top customers over the range" in page
    rows = api.get("/v1/meters/misc/usage", params={"customer": "solo"}).json()["data"]
    assert [r["value"] for r in rows] == ["1"]
    assert 'data-figure="top-solo">1 <' in page
    plan_meter = admin.get("/dashboard/meters/scans").text
    assert "Top customers this billing period" in plan_meter
