"""Reservations: hold, settle (any size), release, and expiry at the TTL by itself."""

from __future__ import annotations

import time
from typing import Any

from limits_support import check, customer_on, limits, meter, plan_with
from support import Api, assert_problem


def tokens_plan(api: Api) -> None:
    meter(api, "llm_tokens", "sum")
    plan_with(api, {"llm_tokens": {"limits": [{"window": "day", "max": "10000"}]}})
    customer_on(api, "acme")


def hold(api: Api, quantity: str, ttl: int = 120, **fields: Any) -> dict[str, Any]:
    body = {
        "customer": "acme",
        "feature": "llm_tokens",
        "quantity": quantity,
        "ttl_seconds": ttl,
        **fields,
    }
    r = api.post("/v1/reservations", json=body)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def day(api: Api) -> dict[str, Any]:
    entitlements = api.get("/v1/customers/acme/entitlements").json()
    found: dict[str, Any] = entitlements["features"][0]["limits"][0]
    return found


def test_hold_then_settle_the_real_count(api: Api) -> None:
    tokens_plan(api)
    held = hold(api, "4000", properties={"model": "large"})
    assert (held["allowed"], held["status"], held["id"].startswith("res_")) == (True, "held", True)
    assert (held["limits"][0]["held"], held["limits"][0]["remaining"]) == ("4000", "6000")
    assert (day(api)["used"], day(api)["held"]) == ("0", "4000")
    # A second hold that does not fit beside the first is denied and holds nothing.
    denied = hold(api, "7000")
    assert (denied["allowed"], denied["reason"], denied["id"], denied["status"]) == (
        False,
        "limit_exceeded",
        None,
        None,
    )
    assert check(api, "acme", "llm_tokens", quantity="6001")["allowed"] is False
    settled = api.post(f"/v1/reservations/{held['id']}/settle", json={"quantity": "3500"}).json()
    assert (settled["status"], settled["settled_quantity"], settled["event_id"]) == (
        "settled",
        "3500",
        held["id"],
    )
    assert (day(api)["used"], day(api)["held"], day(api)["remaining"]) == ("3500", "0", "6500")
    event = api.get("/v1/events", params={"customer": "acme"}).json()["data"][0]
    assert (event["id"], event["quantity"], event["properties"]) == (
        held["id"],
        "3500",
        {"model": "large"},
    )
    again = api.post(f"/v1/reservations/{held['id']}/settle", json={"quantity": "3500"})
    assert_problem(again, 409, "reservation_closed")
    assert day(api)["used"] == "3500"  # counted once


def test_settling_above_the_hold_records_what_happened(api: Api) -> None:
    tokens_plan(api)
    held = hold(api, "9000")
    r = api.post(f"/v1/reservations/{held['id']}/settle", json={"quantity": "12000"})
    assert r.status_code == 200
    assert (day(api)["used"], day(api)["remaining"], day(api)["exceeded"]) == ("12000", "0", True)


def test_release_frees_everything_and_records_nothing(api: Api) -> None:
    tokens_plan(api)
    held = hold(api, "10000")
    assert check(api, "acme", "llm_tokens", quantity="1")["allowed"] is False
    released = api.post(f"/v1/reservations/{held['id']}/release", json={}).json()
    assert released["status"] == "released"
    assert limits(check(api, "acme", "llm_tokens", quantity="1"))["day"] == ("10000", "0", "10000")
    assert api.get("/v1/events").json()["data"] == []
    assert api.get(f"/v1/reservations/{held['id']}").json()["status"] == "released"
    assert_problem(
        api.post(f"/v1/reservations/{held['id']}/release", json={}), 409, "reservation_closed"
    )


def test_a_hold_lapses_at_its_ttl_with_nothing_else_happening(api: Api) -> None:
    tokens_plan(api)
    held = hold(api, "10000", ttl=1)
    assert day(api)["held"] == "10000"
    time.sleep(1.2)
    assert (day(api)["held"], day(api)["remaining"]) == ("0", "10000")
    assert api.get(f"/v1/reservations/{held['id']}").json()["status"] == "expired"
    # Work that finished after the TTL is still recorded when settled: it happened.
    late = api.post(f"/v1/reservations/{held['id']}/settle", json={"quantity": "2500"}).json()
    assert late["status"] == "settled"
    assert day(api)["used"] == "2500"


def test_reservation_refusals(api: Api) -> None:
    tokens_plan(api)
    assert hold(api, "1", customer="ghost")["reason"] == "unknown_customer"
    assert hold(api, "1", feature="nope")["reason"] == "feature_not_in_plan"
    bad = api.post(
        "/v1/reservations", json={"customer": "acme", "feature": "llm_tokens", "ttl_seconds": 0}
    )
    assert_problem(bad, 422, "validation_error")
    assert_problem(api.get("/v1/reservations/res_nope"), 404, "not_found")
    assert_problem(
        api.post("/v1/reservations/res_nope/settle", json={"quantity": "1"}), 404, "not_found"
    )
