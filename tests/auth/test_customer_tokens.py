"""Customer tokens: a browser's short-lived key to one customer's usage, entitlements,
credits and checks — nothing else, and 401 once expired or altered."""

from __future__ import annotations

from typing import Any

import pytest

from jobs_support import at, frozen
from limits_support import check, customer_on, meter, plan_with
from support import Api, assert_problem


def token_for(api: Api, customer: str, **body: Any) -> str:
    r = api.post(f"/v1/customers/{customer}/tokens", json=body or None)
    assert r.status_code == 201, r.text
    assert r.json()["customer"] == customer
    found: str = r.json()["token"]
    assert found.startswith("mlct_")
    return found


def setup(api: Api) -> None:
    meter(api, "scan")
    plan_with(api, {"scan": {"limits": [{"window": "day", "max": "5"}]}})
    customer_on(api, "acme")
    customer_on(api, "globex")


def test_a_token_reaches_its_customer_only(api: Api) -> None:
    setup(api)
    browser = api.with_key(token_for(api, "acme"))
    for path in ("usage", "entitlements", "credits", "usage/history", "credits/transactions"):
        r = browser.get(f"/v1/customers/acme/{path}")
        assert r.status_code == 200, (path, r.text)
        assert_problem(browser.get(f"/v1/customers/globex/{path}"), 403, "insufficient_scope")
    assert check(browser, "acme", "scan", consume=True)["allowed"] is True
    r = browser.post("/v1/check", json={"customer": "globex", "feature": "scan"})
    assert_problem(r, 403, "insufficient_scope")
    assert check(api, "acme", "scan")["limits"][0]["used"] == "1"  # the token's consume
    by_day = browser.get("/v1/meters/scan/usage", params={"customer": "acme", "window": "day"})
    assert by_day.status_code == 200, by_day.text
    assert [row["value"] for row in by_day.json()["data"]] == ["1"]
    for other in ({"customer": "globex"}, {}):  # its own customer, named, only
        r = browser.get("/v1/meters/scan/usage", params=other)
        assert_problem(r, 403, "insufficient_scope")
    for method, path in [
        ("GET", "/v1/customers"),
        ("GET", "/v1/customers/acme"),
        ("GET", "/v1/events"),
        ("POST", "/v1/events"),
        ("GET", "/v1/meters"),
        ("GET", "/v1/invoices"),
        ("GET", "/v1/customers/acme/usage/forecast"),
        ("POST", "/v1/customers/acme/credits/debits"),
        ("POST", "/v1/customers/acme/tokens"),
        ("POST", "/v1/reservations"),
        ("GET", "/v1/api-keys"),
        ("GET", "/v1/workspace"),
    ]:
        body = {"customer": "acme", "feature": "scan", "amount": "1", "type": "scan"}
        r = browser.request(method, path, json=body if method == "POST" else None)
        assert_problem(r, 403, "insufficient_scope")


def test_expired_or_altered_tokens_are_refused(api: Api, other: Api) -> None:
    setup(api)
    with frozen("2026-11-21T10:00:00") as clock:
        token = token_for(api, "acme", ttl_seconds=60)
        browser = api.with_key(token)
        assert browser.get("/v1/customers/acme/entitlements").status_code == 200
        clock.set(at("2026-11-21T10:01:00"))
        assert_problem(browser.get("/v1/customers/acme/entitlements"), 401, "token_expired")
    payload, signature = token.split(".")
    altered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    for bad in (altered, token[:-3] + "xyz", "mlct_garbage", "mlct_e30.x"):
        r = api.with_key(bad).get("/v1/customers/acme/entitlements")
        assert_problem(r, 401, "invalid_token")
    # Another workspace's token for a customer of the same name reaches only its own.
    other.post("/v1/customers", json={"external_id": "acme"})
    theirs = other.with_key(token_for(other, "acme"))
    usage = theirs.get("/v1/customers/acme/entitlements").json()
    assert usage["plan"] is None  # B's acme has no plan; A's is on "plan"


@pytest.mark.parametrize("ttl", [0, 86_401])
def test_ttl_is_at_most_a_day(api: Api, ttl: int) -> None:
    setup(api)
    r = api.post("/v1/customers/acme/tokens", json={"ttl_seconds": ttl})
    assert_problem(r, 422, "validation_error")
    assert_problem(api.post("/v1/customers/nobody/tokens"), 404, "not_found")
