"""Usage in money over HTTP: the current period for an organization and its members,
past periods newest first, and a forecast whose numbers follow its documented method."""

from __future__ import annotations

from datetime import datetime

from jobs_support import at, frozen, run_jobs
from limits_support import meter
from support import Api, assert_problem


def setup(api: Api) -> None:
    meter(api, "ocr_scan", unit="scan")
    meter(api, "storage", "max", unit="GB")
    plan = {
        "key": "pro",
        "name": "Pro",
        "currency": "USD",
        "base_fee": "49.00",
        "features": {
            "ocr_scan": {
                "included": "50",
                "price": {"model": "per_unit", "unit_price": "0.05"},
                "limits": [
                    {"window": "day", "max": "1000"},
                    {"window": "month", "max": "200", "enforcement": "soft"},
                ],
            },
            "storage": {"included": "5", "price": {"model": "per_unit", "unit_price": "0.02"}},
        },
    }
    assert api.post("/v1/plans", json=plan).status_code == 201
    assert api.post("/v1/customers", json={"external_id": "org"}).status_code == 201
    member = {"external_id": "dev", "parent": "org"}
    assert api.post("/v1/customers", json=member).status_code == 201
    sub = {"customer": "org", "plan": "pro", "start_at": "2026-08-01T00:00:00Z"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201


def scans(api: Api, count: int, when: str, who: str = "org", prefix: str = "s") -> None:
    events = [
        {"id": f"{prefix}{i}", "type": "ocr_scan", "customer": who, "timestamp": when}
        for i in range(count)
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == count


def test_current_usage_of_an_organization_and_its_member(api: Api) -> None:
    setup(api)
    with frozen("2026-08-20T00:00:00"):
        scans(api, 40, "2026-08-02T00:00:00Z", who="dev")
        scans(api, 35, "2026-08-03T00:00:00Z", prefix="o")
        r = api.post(
            "/v1/events",
            json={"id": "disk", "type": "storage", "customer": "org", "quantity": "7.5"},
        )
        assert r.json()["accepted"] == 1
        grant = {"amount": "12"}
        assert api.post("/v1/customers/org/credits/grants", json=grant).status_code == 201
        usage = api.get("/v1/customers/org/usage").json()
        assert (usage["customer"], usage["billed_to"], usage["plan"]) == ("org", "org", "pro")
        assert [
            (f["feature"], f["unit"], f["used"], f["included"], f["billable"], f["amount"])
            for f in usage["features"]
        ] == [
            ("ocr_scan", "scan", "75", "50", "25", "1.25"),
            ("storage", "GB", "7.5", "5", "2.5", "0.05"),
        ]
        assert (usage["base_fee"], usage["total"]) == ("49.00", "50.30")
        assert usage["credits"] == {"balance": "12"}
        # A member sees its organization's bill.
        member = api.get("/v1/customers/dev/usage").json()
        assert (member["customer"], member["billed_to"], member["total"]) == ("dev", "org", "50.30")


def test_history_is_newest_first_with_each_periods_invoice(api: Api) -> None:
    with frozen("2026-08-10T00:00:00") as clock:
        setup(api)
        scans(api, 60, "2026-08-09T00:00:00Z", prefix="aug")
        clock.set(at("2026-09-10T00:00:00"))
        scans(api, 70, "2026-09-09T00:00:00Z", prefix="sep")
        clock.set(at("2026-10-05T00:00:00"))
        run_jobs(api)
        history = api.get("/v1/customers/org/usage/history").json()["data"]
        assert [(h["period"]["start"], h["features"][0]["used"], h["total"]) for h in history] == [
            ("2026-09-01T00:00:00Z", "70", "50.00"),
            ("2026-08-01T00:00:00Z", "60", "49.50"),
        ]
        assert [h["invoice"]["number"] for h in history] == ["INV-000002", "INV-000001"]
        assert [h["invoice"]["total"] for h in history] == ["50.00", "49.50"]
        one = api.get("/v1/customers/org/usage/history", params={"limit": 1}).json()["data"]
        assert [h["period"]["start"] for h in one] == ["2026-09-01T00:00:00Z"]


def test_forecast_projects_the_period_and_when_limits_are_reached(api: Api) -> None:
    setup(api)
    with frozen("2026-08-11T00:00:00"):
        scans(api, 100, "2026-08-05T00:00:00Z")  # 100 in the first 10 of 31 days
        forecast = api.get("/v1/customers/org/usage/forecast").json()
        assert "linear" in forecast["method"]
        assert forecast["as_of"] == "2026-08-11T00:00:00Z"
        ocr, storage = forecast["features"]
        assert (ocr["used"], ocr["projected"], ocr["billable"], ocr["amount"]) == (
            "100",
            "310",
            "260",
            "13.00",
        )
        assert (storage["projected"], storage["amount"]) == ("0", "0.00")  # max: stays
        assert forecast["total"] == "62.00"
        limits = {limit["window"]: limit for limit in ocr["limits"]}
        # 100 of 200 in 10 days of the month: the rest in 10 more days.
        month = limits["month"]
        assert (month["exceeded"], month["used"]) == (False, "100")
        assert datetime.fromisoformat(month["reached_at"]) == at("2026-08-21T00:00:00")
        # Nothing sent today: the day limit is never reached at today's rate.
        assert limits["day"]["reached_at"] is None


def test_features_filter_keeps_those_lines_and_refuses_unknown_ones(api: Api) -> None:
    setup(api)
    with frozen("2026-08-20T12:00:00Z"):
        scans(api, 75, "2026-08-20T10:00:00Z")
        whole = api.get("/v1/customers/org/usage").json()
        assert [f["feature"] for f in whole["features"]] == ["ocr_scan", "storage"]
        for params in ({"features": "ocr_scan"}, [("features", "ocr_scan")]):
            some = api.get("/v1/customers/org/usage", params=params).json()
            assert [f["feature"] for f in some["features"]] == ["ocr_scan"]
            assert some["features"][0] == whole["features"][0]
            assert (some["total"], some["base_fee"]) == (whole["total"], whole["base_fee"])
        both = api.get("/v1/customers/org/usage", params={"features": "storage,ocr_scan"}).json()
        assert [f["feature"] for f in both["features"]] == ["ocr_scan", "storage"]
        r = api.get("/v1/customers/org/usage", params={"features": "ocr_scan,sms"})
        problem = assert_problem(r, 422, "validation_error")
        assert problem["errors"][0]["code"] == "unknown_feature"
        assert "sms" in problem["detail"]
