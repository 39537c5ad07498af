"""POST /v1/check and the entitlements view: limits per window, soft and unlimited,
reasons, idempotent consumes, resets, and events from /v1/events counting too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from limits_support import check, customer_on, limits, meter, plan_with
from support import Api, assert_problem

DAY_AND_MONTH = {
    "question": {
        "limits": [
            {"window": "day", "max": "20", "enforcement": "hard"},
            {"window": "month", "max": "100", "enforcement": "hard"},
        ]
    }
}


def earlier_this_month(days_back: int) -> str | None:
    """A moment earlier this month (UTC), or None on the 1st."""
    now = datetime.now(UTC)
    moment = now - timedelta(days=days_back)
    return moment.isoformat() if moment.month == now.month and moment.day != now.day else None


def test_twenty_a_day_and_a_hundred_a_month(api: Api) -> None:
    meter(api, "question")
    plan_with(api, DAY_AND_MONTH)
    customer_on(api, "alice")
    # Usage sent as plain events counts too: earlier this month where the calendar
    # allows, otherwise today (then the day is full sooner, and the numbers say so).
    earlier = earlier_this_month(1)
    sent = 0
    if earlier is not None:
        events = [
            {"id": f"old{i}", "type": "question", "customer": "alice", "timestamp": earlier}
            for i in range(20)
        ]
        assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 20
        sent = 20
    for i in range(20):
        body = check(api, "alice", "question", consume=True, id=f"q{i}")
        assert (body["allowed"], body["reason"], body["event_id"]) == (True, "ok", f"q{i}")
    denied = check(api, "alice", "question", consume=True, id="q20")
    assert (denied["allowed"], denied["reason"], denied["event_id"]) == (
        False,
        "limit_exceeded",
        None,
    )
    month_used = 20 + sent
    assert limits(denied) == {
        "day": ("20", "20", "0"),
        "month": ("100", str(month_used), str(100 - month_used)),
    }
    assert next(x for x in denied["limits"] if x["window"] == "day")["exceeded"] is True
    if sent:
        assert limits(denied)["month"][2] == "60"  # 40 used of 100
    # Nothing was recorded for the denial.
    assert (
        api.get("/v1/events", params={"customer": "alice", "type": "question"}).json()["data"][0][
            "id"
        ]
        == "q19"
    )
    r = api.post("/v1/customers/alice/limits/reset", json={"feature": "question", "window": "day"})
    assert r.status_code == 200, r.text
    day = r.json()["features"][0]["limits"][0]
    assert (day["window"], day["used"], day["remaining"]) == ("day", "0", "20")
    again = check(api, "alice", "question", consume=True, id="q21")
    assert again["allowed"] is True
    assert limits(again) == {
        "day": ("20", "1", "19"),
        "month": ("100", str(month_used + 1), str(99 - month_used)),
    }
    # Billing usage is untouched by the reset: the meter still counts everything.
    usage = api.get("/v1/meters/question/usage", params={"customer": "alice"}).json()["data"]
    assert usage[0]["value"] == str(month_used + 1)


def test_read_only_check_records_nothing(api: Api) -> None:
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "day", "max": "1"}]}})
    customer_on(api, "bob")
    for _ in range(3):
        body = check(api, "bob", "question")
        assert (body["allowed"], limits(body)) == (True, {"day": ("1", "0", "1")})
    assert api.get("/v1/events").json()["data"] == []
    assert check(api, "bob", "question", quantity=1, consume=True)["allowed"] is True
    assert check(api, "bob", "question")["allowed"] is False


def test_unlimited_soft_disabled_and_missing(api: Api) -> None:
    meter(api, "tokens", "sum")
    meter(api, "export")
    meter(api, "sso")
    meter(api, "other")
    plan_with(
        api,
        {
            "tokens": {
                "limits": [
                    {"window": "month", "max": None},
                    {"window": "day", "max": "10", "enforcement": "soft"},
                ]
            },
            "export": {},
            "sso": {"enabled": False},
        },
    )
    customer_on(api, "carol")
    for _ in range(3):
        body = check(api, "carol", "tokens", quantity="6", consume=True)
        assert body["allowed"] is True
    assert limits(body) == {"month": (None, "18", None), "day": ("10", "18", "0")}
    assert [x["exceeded"] for x in body["limits"]] == [False, True]
    assert check(api, "carol", "export", consume=True)["allowed"] is True  # no limits at all
    assert check(api, "carol", "sso")["reason"] == "feature_disabled"
    assert check(api, "carol", "other")["reason"] == "feature_not_in_plan"
    assert check(api, "carol", "nothing")["reason"] == "feature_not_in_plan"
    assert check(api, "nobody", "tokens")["reason"] == "unknown_customer"
    entitlements = api.get("/v1/customers/carol/entitlements").json()
    by_feature = {f["feature"]: f for f in entitlements["features"]}
    assert set(by_feature) == {"tokens", "export", "sso"}
    assert by_feature["sso"]["enabled"] is False
    assert by_feature["tokens"]["exceeded"] is False  # only the soft limit is past max
    assert (
        by_feature["tokens"]["limits"][1]["resets_at"]
        > by_feature["tokens"]["limits"][1]["window_start"]
    )


def test_consume_is_idempotent_by_id_and_is_an_ordinary_event(api: Api) -> None:
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "day", "max": "5"}]}})
    customer_on(api, "dave")
    first = check(api, "dave", "question", consume=True, id="evt_1", properties={"topic": "tax"})
    repeat = check(api, "dave", "question", consume=True, id="evt_1", properties={"topic": "tax"})
    assert (first["duplicate"], repeat["duplicate"]) == (False, True)
    assert repeat["allowed"] is True
    assert limits(repeat)["day"] == ("5", "1", "4")
    conflict = api.post(
        "/v1/check",
        json={
            "customer": "dave",
            "feature": "question",
            "consume": True,
            "id": "evt_1",
            "properties": {"topic": "law"},
        },
    )
    assert_problem(conflict, 409, "conflict")
    events = api.get("/v1/events", params={"customer": "dave"}).json()["data"]
    assert [(e["id"], e["type"], e["properties"]) for e in events] == [
        ("evt_1", "question", {"topic": "tax"})
    ]
    # The same id sent to /v1/events afterwards is a duplicate, not a second use.
    again = api.post(
        "/v1/events",
        json={
            "id": "evt_1",
            "type": "question",
            "customer": "dave",
            "properties": {"topic": "tax"},
        },
    )
    assert again.json()["duplicates"] == 1


def test_events_sent_after_the_counter_exists_count(api: Api) -> None:
    meter(api, "question")
    plan_with(
        api,
        {
            "question": {
                "limits": [{"window": "hour", "max": "10"}, {"window": "minute", "max": "100"}]
            }
        },
    )
    customer_on(api, "erin")
    assert limits(check(api, "erin", "question"))["hour"] == ("10", "0", "10")
    events = [{"type": "question", "customer": "erin"} for _ in range(9)]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 9
    body = check(api, "erin", "question", consume=True)
    assert limits(body) == {"hour": ("10", "10", "0"), "minute": ("100", "10", "90")}
    assert check(api, "erin", "question", consume=True)["allowed"] is False
    # Events are never refused for a limit: they only make the next check see them.
    assert (
        api.post("/v1/events", json={"type": "question", "customer": "erin"}).json()["accepted"]
        == 1
    )
    assert limits(check(api, "erin", "question"))["hour"] == ("10", "11", "0")


def test_members_use_and_fill_their_organizations_limits(api: Api) -> None:
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "period", "max": "3"}]}})
    customer_on(api, "org")
    api.post("/v1/customers", json={"external_id": "member", "parent": "org"})
    assert check(api, "member", "question", consume=True, subject="user_9")["allowed"] is True
    assert check(api, "org", "question", consume=True)["allowed"] is True
    body = check(api, "member", "question", consume=True)
    assert limits(body)["period"] == ("3", "3", "0")
    assert check(api, "member", "question", consume=True)["reason"] == "limit_exceeded"
    entitlements = api.get("/v1/customers/member/entitlements").json()
    assert (entitlements["customer"], entitlements["billed_to"], entitlements["plan"]) == (
        "member",
        "org",
        "plan",
    )
    period = entitlements["period"]
    assert entitlements["features"][0]["limits"][0]["resets_at"] == period["end"]


def test_quantities_the_meter_cannot_count_are_refused(api: Api) -> None:
    meter(api, "question")
    meter(api, "tokens", "sum", value_property="usage.tokens")
    plan_with(
        api,
        {
            "question": {"limits": [{"window": "day", "max": "5"}]},
            "tokens": {"limits": [{"window": "day", "max": "100"}]},
        },
    )
    customer_on(api, "fay")
    problem = assert_problem(
        api.post("/v1/check", json={"customer": "fay", "feature": "question", "quantity": 2}),
        422,
        "validation_error",
    )
    assert problem["errors"][0]["code"] == "quantity_not_counted"
    problem = assert_problem(
        api.post("/v1/check", json={"customer": "fay", "feature": "tokens", "consume": True}),
        422,
        "not_counted",
    )
    assert problem["errors"][0] == {
        "field": "properties.usage.tokens",
        "code": "missing_value",
        "message": "meter 'tokens' would not count this usage: property 'usage.tokens' is missing",
    }
    problem = assert_problem(
        api.post("/v1/check", json={"customer": "fay", "feature": "tokens", "quantity": "-1"}),
        422,
        "validation_error",
    )
    assert problem["errors"][0]["code"] == "invalid_quantity"
    body = check(api, "fay", "tokens", consume=True, properties={"usage": {"tokens": 60}})
    assert limits(body)["day"] == ("100", "60", "40")
    assert check(api, "fay", "tokens", properties={"usage": {"tokens": 41}})["allowed"] is False
    assert api.get("/v1/events").json()["data"][0]["properties"] == {"usage": {"tokens": 60}}


def test_plan_edits_apply_at_once(api: Api) -> None:
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "day", "max": "1"}]}})
    customer_on(api, "gus")
    assert check(api, "gus", "question", consume=True)["allowed"] is True
    assert check(api, "gus", "question")["allowed"] is False
    r = api.request(
        "PUT",
        "/v1/plans/plan",
        json={
            "name": "plan",
            "currency": "USD",
            "features": {"question": {"limits": [{"window": "day", "max": "2"}]}},
        },
    )
    assert r.status_code == 200
    assert limits(check(api, "gus", "question")) == {"day": ("2", "1", "1")}


def test_duration_limits_in_hours(api: Api) -> None:
    meter(api, "compute", "duration", unit="hour")
    plan_with(api, {"compute": {"limits": [{"window": "period", "max": "1"}]}})
    customer_on(api, "hal")
    body = check(api, "hal", "compute", quantity="1800", consume=True)  # seconds
    assert limits(body)["period"] == ("1", "0.5", "0.5")
    assert check(api, "hal", "compute", quantity="1801")["allowed"] is False
    body = check(api, "hal", "compute", quantity="1", consume=True)
    used = body["limits"][0]["used"]
    assert used == "0.500277777778"  # 1801 s in hours, answered to 12 places
    entitlements = api.get("/v1/customers/hal/entitlements")
    assert entitlements.status_code == 200
    assert entitlements.json()["features"][0]["limits"][0]["used"] == used
