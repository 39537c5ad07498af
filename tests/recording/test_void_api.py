"""POST /v1/events/{id}/void: an event stops counting everywhere, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobs_support import at, frozen, run_jobs
from limits_support import check, customer_on, limits, meter, plan_with
from meterline.credits import ledger
from meterline.db import Database
from support import Api, assert_problem


def send(api: Api, *events: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/v1/events", json={"events": list(events)})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["rejected"] == 0, body
    return body


def usage(api: Api, key: str, customer: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"/v1/meters/{key}/usage", params={"customer": customer, **params})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def total(api: Api, key: str, customer: str) -> str:
    rows = usage(api, key, customer, **{"from": "2026-01-01T00:00:00Z"})
    return rows[0]["value"] if rows else "0"


def test_a_voided_event_stops_counting_in_usage_limits_and_listing(api: Api) -> None:
    meter(api, "tok", "sum")
    plan_with(api, {"tok": {"limits": [{"window": "day", "max": "100", "enforcement": "hard"}]}})
    customer_on(api, "cc")
    now = datetime.now(UTC)
    send(
        api,
        {
            "id": "a",
            "type": "tok",
            "customer": "cc",
            "quantity": "60",
            "timestamp": now.isoformat(),
        },
        {
            "id": "b",
            "type": "tok",
            "customer": "cc",
            "quantity": "30",
            "timestamp": now.isoformat(),
        },
    )
    assert limits(check(api, "cc", "tok", quantity="20"))["day"] == ("100", "90", "10")
    assert check(api, "cc", "tok", quantity="20")["allowed"] is False

    r = api.post("/v1/events/a/void", json={"reason": "job failed"})
    assert r.status_code == 200, r.text
    voided = r.json()
    assert voided["id"] == "a"
    assert voided["voided_at"] is not None
    assert voided["void_reason"] == "job failed"

    assert total(api, "tok", "cc") == "30"
    body = check(api, "cc", "tok", quantity="20", consume=True)
    assert body["allowed"] is True
    assert limits(body)["day"] == ("100", "50", "50")
    listed = {e["id"]: e for e in api.get("/v1/events", params={"customer": "cc"}).json()["data"]}
    assert listed["a"]["voided_at"] == voided["voided_at"]
    assert listed["b"]["voided_at"] is None

    again = api.post("/v1/events/a/void")  # a no-op: the same answer, nothing changes
    assert again.status_code == 200
    assert again.json()["voided_at"] == voided["voided_at"]
    assert total(api, "tok", "cc") == "50"

    # The id stays used: re-sending the event is a duplicate, never counted again.
    same = {
        "id": "a",
        "type": "tok",
        "customer": "cc",
        "quantity": "60",
        "timestamp": now.isoformat(),
    }
    assert send(api, same)["duplicates"] == 1
    assert total(api, "tok", "cc") == "50"


def test_voiding_reverses_the_credit_debit_on_the_ledger(api: Api, db: Database) -> None:
    meter(api, "paper")
    r = api.post(
        "/v1/plans",
        json={
            "key": "edu",
            "name": "Edu",
            "currency": "USD",
            "features": {"paper": {"credit_cost": {"per_unit": "5"}}},
        },
    )
    assert r.status_code == 201, r.text
    customer_on(api, "stu", plan="edu")
    grant = api.post("/v1/customers/stu/credits/grants", json={"amount": "12"})
    assert grant.status_code == 201, grant.text
    first = check(api, "stu", "paper", consume=True, id="p1")
    second = check(api, "stu", "paper", consume=True, id="p2")
    assert (first["allowed"], second["allowed"]) == (True, True)
    assert check(api, "stu", "paper", consume=True, id="p3")["reason"] == "insufficient_credits"

    assert api.post("/v1/events/p2/void").status_code == 200
    credits = api.get("/v1/customers/stu/credits").json()
    assert credits["balance"] == "7"
    assert credits["grants"][0]["remaining"] == "7"
    newest = api.get("/v1/customers/stu/credits/transactions").json()["data"][0]
    assert (newest["type"], newest["amount"], newest["balance_after"]) == ("reversal", "5", "7")
    assert (newest["reference_type"], newest["reference"]) == ("void", "p2")
    assert newest["drawn"] == [{"grant": grant.json()["grant"]["id"], "amount": "-5"}]
    assert check(api, "stu", "paper", consume=True, id="p3")["allowed"] is True
    assert api.post("/v1/events/p2/void").status_code == 200  # twice: reversed once
    assert api.get("/v1/customers/stu/credits").json()["balance"] == "2"
    with db.write() as session:
        assert ledger.verify(session) == []


def test_a_used_up_grant_comes_back_to_life(api: Api, db: Database) -> None:
    meter(api, "paper")
    plan_with(api, {"paper": {"credit_cost": {"per_unit": "5"}}})
    customer_on(api, "stu")
    api.post("/v1/customers/stu/credits/grants", json={"amount": "5"})
    assert check(api, "stu", "paper", consume=True, id="p1")["allowed"] is True
    assert api.get("/v1/customers/stu/credits").json()["grants"] == []
    assert api.post("/v1/events/p1/void").status_code == 200
    credits = api.get("/v1/customers/stu/credits").json()
    assert (credits["balance"], [g["remaining"] for g in credits["grants"]]) == ("5", ["5"])
    with db.write() as session:
        assert ledger.verify(session) == []


def test_min_max_latest_and_unique_meters_are_rebuilt_from_the_bucket(api: Api) -> None:
    meter(api, "peak", "max", value_property="gb")
    meter(api, "low", "min", event_type="peak", value_property="gb")
    meter(api, "last", "latest", event_type="peak", value_property="gb")
    meter(api, "users", "unique_count", event_type="peak", value_property="user")
    meter(api, "avg", "avg", event_type="peak", value_property="gb")
    t = datetime.now(UTC).replace(second=0, microsecond=0)
    events = [
        {
            "id": "m1",
            "type": "peak",
            "customer": "c",
            "timestamp": (t - timedelta(seconds=3)).isoformat(),
            "properties": {"gb": 5, "user": "u1"},
        },
        {
            "id": "m2",
            "type": "peak",
            "customer": "c",
            "timestamp": (t - timedelta(seconds=2)).isoformat(),
            "properties": {"gb": 9, "user": "u2"},
        },
        {
            "id": "m3",
            "type": "peak",
            "customer": "c",
            "timestamp": (t - timedelta(seconds=1)).isoformat(),
            "properties": {"gb": 2, "user": "u1"},
        },
    ]
    send(api, *events)
    values = {k: total(api, k, "c") for k in ("peak", "low", "last", "users", "avg")}
    assert values == {"peak": "9", "low": "2", "last": "2", "users": "2", "avg": "5.333333333333"}
    assert api.post("/v1/events/m2/void").status_code == 200
    values = {k: total(api, k, "c") for k in ("peak", "low", "last", "users", "avg")}
    assert values == {"peak": "5", "low": "2", "last": "2", "users": "1", "avg": "3.5"}
    assert api.post("/v1/events/m3/void").status_code == 200
    values = {k: total(api, k, "c") for k in ("peak", "low", "last", "users", "avg")}
    assert values == {"peak": "5", "low": "5", "last": "5", "users": "1", "avg": "5"}
    assert api.post("/v1/events/m1/void").status_code == 200
    assert all(usage(api, k, "c") == [] for k in ("peak", "low", "last", "users", "avg"))


def subscribed(api: Api, customer: str, start: str) -> None:
    assert api.post("/v1/customers", json={"external_id": customer}).status_code == 201
    r = api.post(
        "/v1/subscriptions", json={"customer": customer, "plan": "plan", "start_at": start}
    )
    assert r.status_code == 201, r.text


def two_scans_in_march(api: Api) -> None:
    """acme on a plan at 1.00 a scan from March 1st, with two scans (s1, s2) in March."""
    meter(api, "scan")
    plan_with(api, {"scan": {"included": "0", "price": {"model": "per_unit", "unit_price": "1"}}})
    subscribed(api, "acme", "2026-03-01T00:00:00Z")
    send(
        api,
        {"id": "s1", "type": "scan", "customer": "acme"},
        {"id": "s2", "type": "scan", "customer": "acme"},
    )


def test_an_event_in_a_finalized_period_cannot_be_voided(api: Api) -> None:
    with frozen("2026-03-20T12:00:00Z") as clock:
        two_scans_in_march(api)
        clock.set(at("2026-04-02T00:00:00Z"))
        run_jobs(api)
        [invoice] = api.get("/v1/invoices", params={"customer": "acme"}).json()["data"]
        assert (invoice["status"], invoice["total"]) == ("finalized", "2.00")
        problem = assert_problem(api.post("/v1/events/s1/void"), 409, "period_finalized")
        assert invoice["number"] in problem["detail"]
        listed = api.get("/v1/events", params={"customer": "acme"}).json()["data"]
        assert [e["voided_at"] for e in listed] == [None, None]  # nothing changed
        assert total(api, "scan", "acme") == "2"


def test_voiding_in_the_grace_period_changes_the_draft_invoice(api: Api) -> None:
    with frozen("2026-03-20T12:00:00Z") as clock:
        assert api.patch("/v1/workspace", json={"invoice_grace_days": 3}).status_code == 200
        two_scans_in_march(api)
        clock.set(at("2026-04-01T01:00:00Z"))
        run_jobs(api)
        assert api.post("/v1/events/s1/void").status_code == 200
        clock.set(at("2026-04-05T00:00:00Z"))
        run_jobs(api)
        [invoice] = api.get("/v1/invoices", params={"customer": "acme"}).json()["data"]
        assert (invoice["status"], invoice["total"]) == ("finalized", "1.00")


def test_void_needs_admin_and_a_known_event(api: Api) -> None:
    assert_problem(api.post("/v1/events/nope/void"), 404, "not_found")
    send(api, {"id": "x", "type": "t", "customer": "c"})
    ingest = api.new_key("ingest")
    assert_problem(ingest.post("/v1/events/x/void"), 403, "insufficient_scope")
    assert_problem(api.post("/v1/events/x/void", json={"nope": 1}), 422, "validation_error")
