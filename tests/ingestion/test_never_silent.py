"""Usage is never negative and never silently zero, on every path that records it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import meterline
from cli_support import run
from limits_support import check, customer_on, limits, meter, plan_with
from meterline.errors import MeterlineError
from support import Api, assert_problem


def test_a_negative_event_cannot_open_room_under_a_hard_limit(api: Api) -> None:
    """The issue's case: day max 100 on a sum meter; -40 is refused, so 130 stays denied."""
    meter(api, "tok", "sum")
    plan_with(api, {"tok": {"limits": [{"window": "day", "max": "100", "enforcement": "hard"}]}})
    customer_on(api, "cc")
    r = api.post(
        "/v1/events", json={"id": "n1", "type": "tok", "customer": "cc", "quantity": "-40"}
    )
    body = r.json()
    assert (body["accepted"], body["rejected"], body["errors"][0]["code"]) == (
        0,
        1,
        "invalid_quantity",
    )
    answer = check(api, "cc", "tok", quantity="130", consume=True)
    assert (answer["allowed"], limits(answer)["day"]) == (False, ("100", "0", "100"))


def test_a_negative_meter_value_is_refused_with_the_meter_named(api: Api) -> None:
    meter(api, "llm_tokens", "sum", event_type="llm_call", value_property="usage.tokens")
    plan_with(api, {"llm_tokens": {"limits": [{"window": "day", "max": "1000"}]}})
    customer_on(api, "org")
    event = {
        "id": "t1",
        "type": "llm_call",
        "customer": "org",
        "properties": {"usage": {"tokens": -500000}},
    }
    body = api.post("/v1/events", json=event).json()
    assert body["rejected"] == 1
    assert body["errors"][0]["code"] == "negative_value"
    assert "'llm_tokens'" in body["errors"][0]["message"]
    assert api.get("/v1/events").json()["data"] == []  # nothing stored
    negative = {
        "customer": "org",
        "feature": "llm_tokens",
        "consume": True,
        "properties": {"usage": {"tokens": -5}},
    }
    problem = assert_problem(api.post("/v1/check", json=negative), 422, "not_counted")
    assert problem["errors"][0]["code"] == "negative_value"
    hold = {"customer": "org", "feature": "llm_tokens", "quantity": "10"}
    held = api.post("/v1/reservations", json=hold).json()
    settle = api.post(f"/v1/reservations/{held['id']}/settle", json={"quantity": "-1"})
    assert_problem(settle, 422, "validation_error")
    settle = api.post(
        f"/v1/reservations/{held['id']}/settle",
        json={"quantity": "3", "properties": {"usage": {"tokens": -3}}},
    )
    assert_problem(settle, 422, "not_counted")
    entitlements = api.get("/v1/customers/org/entitlements").json()
    assert entitlements["features"][0]["limits"][0]["used"] == "0"


def test_unmetered_and_uncounted_events_are_said(api: Api) -> None:
    meter(api, "scan", filter={"document": ["receipt", "invoice"]})
    meter(api, "pages", "sum", event_type="scan", value_property="pages")
    events = [
        {
            "id": "a",
            "type": "scan",
            "customer": "c",
            "properties": {"document": "receipt", "pages": 2},
        },
        {
            "id": "b",
            "type": "scan",
            "customer": "c",
            "properties": {"document": "letter", "pages": 1},
        },
        {"id": "c", "type": "scan", "customer": "c", "properties": {"document": "letter"}},
        {"id": "d", "type": "fax", "customer": "c"},
    ]
    body = api.post("/v1/events", json={"events": events}).json()
    assert (body["accepted"], body["rejected"], body["unmetered"]) == (4, 0, 2)
    said = {(w["index"], w["code"]) for w in body["warnings"]}
    assert said == {
        (1, "filtered_out"),
        (2, "filtered_out"),
        (2, "missing_value"),
        (3, "unmetered"),
    }
    listed = {e["id"]: e["problems"] for e in api.get("/v1/events").json()["data"]}
    assert listed["a"] == []
    assert [p["code"] for p in listed["b"]] == ["filtered_out"]
    assert listed["d"] == [
        {"meter": None, "code": "unmetered", "message": "no meter counts events of type 'fax'"}
    ]


def test_library_mode_and_import_refuse_negative_usage(database_url: str, tmp_path: Path) -> None:
    ml = meterline.Meterline(database_url)
    ml.create_meter(key="tok", event_type="tok", aggregation="sum")
    with pytest.raises(MeterlineError) as refused:
        ml.record(customer="c", type="tok", quantity=-1)
    assert refused.value.errors[0].code == "invalid_quantity"
    recorded = ml.record(customer="c", type="fax")
    assert recorded  # stored …
    assert [w.code for w in recorded.warnings] == ["unmetered"]  # … and said
    assert ml.record(customer="c", type="tok", quantity="2.5")
    ml.close()
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"id": "i1", "type": "tok", "customer": "c", "quantity": -3}\n')
    done = run("events", "import", str(lines), "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert "1 lines: 0 accepted, 0 duplicates, 1 rejected" in done.stdout
    assert "invalid_quantity" in (tmp_path / "events.jsonl.rejected.jsonl").read_text()


def test_quantities_are_answered_with_at_most_twelve_places(api: Api) -> None:
    meter(api, "compute", "duration", event_type="job", value_property="seconds", unit="hour")
    api.post(
        "/v1/events",
        json={"id": "j", "type": "job", "customer": "c", "properties": {"seconds": 1801}},
    )
    [row] = api.get("/v1/meters/compute/usage", params={"customer": "c"}).json()["data"]
    assert row["value"] == "0.500277777778"
    assert Decimal(row["value"]) * 3600 != 1801  # rounded for the answer …
    body = api.post(
        "/v1/events",
        json={"id": "k", "type": "job", "customer": "c", "quantity": "0.0000000000001"},
    ).json()
    assert body["errors"][0]["code"] == "invalid_quantity"  # … and 13 places are refused
