"""Subscriptions over HTTP: one open per customer, changes and cancellations now or at
the period's end, periods in the customer's time zone, the workspace default plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from jobs_support import at, frozen, run_jobs
from meterline.jobs.models import Job
from meterline.kit.periods import billing_period
from meterline.runtime import runtime_of
from support import Api, assert_problem


def setup(api: Api) -> None:
    assert (
        api.post(
            "/v1/meters", json={"key": "scan", "event_type": "scan", "aggregation": "count"}
        ).status_code
        == 201
    )
    for key, interval in (("basic", "month"), ("pro", "month"), ("annual", "year")):
        plan = {
            "key": key,
            "name": key.title(),
            "currency": "USD",
            "interval": interval,
            "features": {"scan": {}},
        }
        assert api.post("/v1/plans", json=plan).status_code == 201
    assert (
        api.post(
            "/v1/customers", json={"external_id": "acme", "timezone": "Europe/Berlin"}
        ).status_code
        == 201
    )


def subscribe(api: Api, **fields: object) -> dict[str, object]:
    r = api.post("/v1/subscriptions", json={"customer": "acme", "plan": "basic", **fields})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def parse(value: object) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def test_anniversary_subscription_from_jan_31(api: Api) -> None:
    setup(api)
    sub = subscribe(api, start_at="2026-01-30T23:00:00Z", billing_anchor="anniversary")
    assert (sub["status"], sub["plan"], sub["billing_anchor"]) == ("active", "basic", "anniversary")
    now = datetime.now(UTC)
    expected = billing_period(
        datetime(2026, 1, 30, 23, tzinfo=UTC),
        "month",
        "anniversary",
        ZoneInfo("Europe/Berlin"),
        now,
    )
    period = sub["current_period"]
    assert isinstance(period, dict)
    assert (parse(period["start"]), parse(period["end"])) == expected
    # Midnight Jan 31 in Berlin: every period starts on the 31st or the month's last day.
    local_start = expected[0].astimezone(ZoneInfo("Europe/Berlin"))
    assert (local_start.hour, local_start.minute) == (0, 0)
    assert local_start.day in (28, 29, 30, 31)
    assert api.get(f"/v1/subscriptions/{sub['id']}").json() == sub


def test_one_open_subscription_per_customer(api: Api) -> None:
    setup(api)
    future = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    sub = subscribe(api, start_at=future)
    assert sub["status"] == "scheduled"
    body = assert_problem(
        api.post("/v1/subscriptions", json={"customer": "acme", "plan": "pro"}),
        409,
        "subscription_exists",
    )
    assert sub["id"] in body["detail"]
    canceled = api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={"at": "now"}).json()
    assert canceled["status"] == "canceled"
    assert subscribe(api, plan="pro")["status"] == "active"


def test_refusals_name_the_field(api: Api) -> None:
    setup(api)
    api.post("/v1/customers", json={"external_id": "member", "parent": "acme"})
    cases = [
        ({"customer": "member", "plan": "basic"}, "customer", "customer_is_member"),
        ({"customer": "ghost", "plan": "basic"}, "customer", "unknown_customer"),
        ({"customer": "acme", "plan": "gold"}, "plan", "unknown_plan"),
        (
            {"customer": "acme", "plan": "basic", "start_at": "2026-01-01T00:00:00"},
            "start_at",
            "invalid_timestamp",
        ),
        (
            {"customer": "acme", "plan": "basic", "billing_anchor": "weekly"},
            "billing_anchor",
            "literal_error",
        ),
    ]
    for body, field, code in cases:
        problem = assert_problem(api.post("/v1/subscriptions", json=body), 422, "validation_error")
        assert [(e["field"], e["code"]) for e in problem["errors"]] == [(field, code)]
    assert_problem(api.get("/v1/subscriptions/sub_nope"), 404, "not_found")


def test_change_now_and_at_period_end(api: Api) -> None:
    setup(api)
    sub = subscribe(api, start_at="2026-01-01T00:00:00Z")
    later = api.post(
        f"/v1/subscriptions/{sub['id']}/change", json={"plan": "pro", "at": "period_end"}
    ).json()
    period = sub["current_period"]
    assert isinstance(period, dict)
    assert later["plan"] == "basic"  # still, until the period ends
    assert [(p["plan"], p["end_at"]) for p in later["phases"]] == [
        ("basic", period["end"].replace("+00:00", "Z"))
        if False
        else ("basic", later["phases"][0]["end_at"]),
        ("pro", None),
    ]
    assert parse(later["phases"][1]["start_at"]) == parse(period["end"])
    assert api.get("/v1/customers/acme/entitlements").json()["plan"] == "basic"
    now = api.post(
        f"/v1/subscriptions/{sub['id']}/change", json={"plan": "annual", "at": "now"}
    ).json()
    assert now["plan"] == "annual"
    assert [p["plan"] for p in now["phases"]] == [
        "basic",
        "annual",
    ]  # the scheduled change is replaced
    assert api.get("/v1/customers/acme/entitlements").json()["plan"] == "annual"
    # A yearly plan starts its own periods at the change: calendar years in Berlin, the
    # first cut short at the change.
    new_period = now["current_period"]
    assert parse(new_period["start"]) == parse(now["phases"][1]["start_at"])
    year_end = parse(new_period["end"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (year_end.month, year_end.day, year_end.hour) == (1, 1, 0)


def test_cancel_at_period_end_then_changes_are_refused_once_ended(api: Api) -> None:
    setup(api)
    sub = subscribe(api, start_at="2026-01-01T00:00:00Z")
    ending = api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={}).json()
    assert ending["status"] == "active"
    assert parse(ending["end_at"]) == parse(sub["current_period"]["end"])  # type: ignore[index]
    assert ending["canceled_at"] is not None
    ended = api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={"at": "now"}).json()
    assert ended["status"] == "canceled"
    assert ended["current_period"] is None
    assert api.get("/v1/customers/acme/entitlements").json()["plan"] is None
    assert_problem(
        api.post(f"/v1/subscriptions/{sub['id']}/change", json={"plan": "pro"}),
        409,
        "subscription_ended",
    )


def test_workspace_default_plan_applies_without_a_subscription(api: Api) -> None:
    setup(api)
    assert api.get("/v1/customers/acme/entitlements").json()["plan"] is None
    r = api.patch("/v1/workspace", json={"default_plan": "basic"})
    assert r.status_code == 200
    assert r.json()["default_plan"] == "basic"
    entitlements = api.get("/v1/customers/acme/entitlements").json()
    assert (entitlements["plan"], entitlements["subscription"]) == ("basic", None)
    assert [f["feature"] for f in entitlements["features"]] == ["scan"]
    subscribe(api, plan="pro")
    assert api.get("/v1/customers/acme/entitlements").json()["plan"] == "pro"
    problem = assert_problem(
        api.patch("/v1/workspace", json={"default_plan": "gold"}), 422, "validation_error"
    )
    assert problem["errors"][0]["code"] == "unknown_plan"
    assert api.patch("/v1/workspace", json={"default_plan": None}).json()["default_plan"] is None


def test_a_change_to_another_currency_is_refused_and_changes_nothing(api: Api) -> None:
    setup(api)
    euro = {"key": "euro", "name": "Euro", "currency": "EUR", "features": {"scan": {}}}
    assert api.post("/v1/plans", json=euro).status_code == 201
    sub = subscribe(api)
    r = api.post(f"/v1/subscriptions/{sub['id']}/change", json={"plan": "euro", "at": "now"})
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"][0]["code"] == "currency_mismatch"
    after = api.get(f"/v1/subscriptions/{sub['id']}").json()
    assert (after["plan"], after["phases"]) == ("basic", sub["phases"])


def test_subscriptions_are_listed_by_customer_and_status(api: Api) -> None:
    setup(api)
    for name in ("a", "b", "c"):
        assert api.post("/v1/customers", json={"external_id": name}).status_code == 201
    now = api.post("/v1/subscriptions", json={"customer": "a", "plan": "basic"}).json()
    later = api.post(
        "/v1/subscriptions",
        json={"customer": "b", "plan": "basic", "start_at": "2099-01-01T00:00:00Z"},
    ).json()
    ended = api.post("/v1/subscriptions", json={"customer": "c", "plan": "basic"}).json()
    assert (
        api.post(f"/v1/subscriptions/{ended['id']}/cancel", json={"at": "now"}).status_code == 200
    )

    def listed(**params: str) -> list[tuple[str, str]]:
        r = api.get("/v1/subscriptions", params=params)
        assert r.status_code == 200, r.text
        return [(s["customer"], s["status"]) for s in r.json()["data"]]

    assert listed() == [("c", "canceled"), ("b", "scheduled"), ("a", "active")]  # newest first
    assert listed(status="active") == [("a", "active")]
    assert listed(status="scheduled") == [("b", "scheduled")]
    assert listed(status="canceled") == [("c", "canceled")]
    assert listed(customer="b") == [("b", "scheduled")]
    assert listed(customer="nobody") == []
    first = api.get("/v1/subscriptions", params={"limit": 2}).json()
    rest = api.get("/v1/subscriptions", params={"after": first["next_cursor"]}).json()
    assert [s["id"] for s in first["data"] + rest["data"]] == [ended["id"], later["id"], now["id"]]
    assert_problem(api.get("/v1/subscriptions", params={"status": "gone"}), 422, "validation_error")


def _cycle_due(api: Api, subscription: object) -> datetime:
    with runtime_of(api.client.app).db.read() as session:
        due = session.scalar(select(Job.run_at).where(Job.key == f"cycle:{subscription}"))
    assert due is not None
    return due.replace(tzinfo=UTC) if due.tzinfo is None else due


def test_a_new_subscriptions_cycle_is_due_when_it_first_has_work(api: Api) -> None:
    """Not at once for every new subscription (a burst of jobs with nothing to do): at
    the first period's end; at once when a period has ended already (a past start) or
    the plan grants credits (at the start)."""
    setup(api)
    credited = {"key": "credited", "name": "C", "currency": "USD", "features": {"scan": {}}}
    credited["credits"] = {"amount": "100"}
    assert api.post("/v1/plans", json=credited).status_code == 201
    for name in ("past", "later", "granted", "granted_later"):
        assert api.post("/v1/customers", json={"external_id": name}).status_code == 201
    with frozen("2026-11-10T12:04:30"):
        now = at("2026-11-10T12:04:30")
        plain = subscribe(api)
        past = subscribe(api, customer="past", start_at="2026-09-20T00:00:00Z")
        later = subscribe(api, customer="later", start_at="2026-12-03T08:00:00Z")
        granted = subscribe(api, customer="granted", plan="credited")
        granted_later = subscribe(
            api, customer="granted_later", plan="credited", start_at="2026-12-03T08:00:00Z"
        )
        # acme is in Berlin: its period ends at midnight there.
        berlin = datetime(2026, 12, 1, tzinfo=ZoneInfo("Europe/Berlin"))
        assert _cycle_due(api, plain["id"]) == berlin
        assert _cycle_due(api, past["id"]) == now
        assert _cycle_due(api, later["id"]) == at("2027-01-01T00:00:00")
        assert _cycle_due(api, granted["id"]) == now
        assert _cycle_due(api, granted_later["id"]) == at("2026-12-03T08:00:00")
        run_jobs(api)  # what is due now: the past periods' invoices and the grant
        invoices = api.get("/v1/invoices", params={"customer": "past"}).json()["data"]
        assert len(invoices) == 2  # Sep 20 - Oct 1, October
        balance = api.get("/v1/customers/granted/credits").json()["balance"]
        assert Decimal(balance) == 100
        assert api.get("/v1/invoices", params={"customer": "acme"}).json()["data"] == []
    with frozen("2026-12-01T00:00:00"):  # acme's first period has ended (Berlin: 1 am)
        run_jobs(api)
        invoices = api.get("/v1/invoices", params={"customer": "acme"}).json()["data"]
        assert [i["period"]["start"][:10] for i in invoices] == ["2026-11-10"]
