"""GET /v1/meters/{key}/usage: every aggregation, windows in time zones, late events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support import Api, assert_problem

NOW = datetime.now(UTC).replace(microsecond=0)
# A fixed hour 3 days ago, aligned, so windows are predictable.
BASE = (NOW - timedelta(days=3)).replace(minute=0, second=0)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def send(api: Api, events: list[dict[str, Any]]) -> None:
    r = api.post("/v1/events", json={"events": events})
    assert r.json()["rejected"] == 0, r.text


def usage(api: Api, key: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"/v1/meters/{key}/usage", params=params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


EXPECTED = {
    "count": "5",
    "sum": "27.6",
    "min": "0.1",
    "max": "12",
    "avg": "5.52",
    "unique_count": "3",
    "latest": "3.5",
    "duration": "0.46",  # 27.6 seconds in minutes
}


@pytest.fixture
def eight_meters(api: Api) -> Api:
    for aggregation in EXPECTED:
        body: dict[str, Any] = {"key": aggregation, "event_type": "job", "aggregation": aggregation}
        if aggregation == "unique_count":
            body["value_property"] = "user"
        elif aggregation != "count":
            body["value_property"] = "seconds"
        if aggregation == "duration":
            body["unit"] = "minute"
        assert api.post("/v1/meters", json=body).status_code == 201
    values = [("12", "u1"), ("0.1", "u2"), ("10", "u1"), ("2", "u3"), ("3.5", "u2")]
    send(
        api,
        [
            {
                "id": f"j{i}",
                "type": "job",
                "customer": "c1",
                "timestamp": iso(BASE + timedelta(minutes=20 * i)),
                "properties": {"seconds": v, "user": u},
            }
            for i, (v, u) in enumerate(values)
        ],
    )
    return api


@pytest.mark.parametrize("aggregation", list(EXPECTED))
def test_all_eight_aggregations_on_the_same_events(eight_meters: Api, aggregation: str) -> None:
    params = {
        "customer": "c1",
        "from": iso(BASE - timedelta(hours=1)),
        "to": iso(BASE + timedelta(hours=3)),
    }
    data = usage(eight_meters, aggregation, **params)
    assert [d["value"] for d in data] == [EXPECTED[aggregation]]
    # the same numbers with unaligned edges (read from raw events) and per hour
    edges = usage(
        eight_meters,
        aggregation,
        customer="c1",
        **{"from": iso(BASE - timedelta(minutes=7)), "to": iso(BASE + timedelta(minutes=83))},
    )
    assert [d["value"] for d in edges] == [EXPECTED[aggregation]]
    hourly = usage(eight_meters, aggregation, window="hour", **params)
    assert [d["window_start"] for d in hourly] == [iso(BASE), iso(BASE + timedelta(hours=1))]


def test_hourly_values(eight_meters: Api) -> None:
    params = {"from": iso(BASE), "to": iso(BASE + timedelta(hours=2)), "window": "hour"}
    assert [d["value"] for d in usage(eight_meters, "sum", **params)] == ["22.1", "5.5"]
    assert [d["value"] for d in usage(eight_meters, "unique_count", **params)] == ["2", "2"]
    assert [d["value"] for d in usage(eight_meters, "latest", **params)] == ["10", "3.5"]
    minutes = usage(
        eight_meters,
        "count",
        window="minute",
        **{"from": iso(BASE), "to": iso(BASE + timedelta(minutes=45))},
    )
    assert [(d["window_start"], d["value"]) for d in minutes] == [
        (iso(BASE), "1"),
        (iso(BASE + timedelta(minutes=20)), "1"),
        (iso(BASE + timedelta(minutes=40)), "1"),
    ]


def test_decimal_sums_are_exact(api: Api) -> None:
    api.post("/v1/meters", json={"key": "spend", "event_type": "pay", "aggregation": "sum"})
    send(
        api,
        [
            {
                "id": f"p{i}",
                "type": "pay",
                "customer": "c1",
                "quantity": "0.1",
                "timestamp": iso(BASE + timedelta(minutes=i)),
            }
            for i in range(10)
        ],
    )
    send(
        api,
        [
            {
                "id": "big",
                "type": "pay",
                "customer": "c1",
                "quantity": "123456789012.000000000001",
                "timestamp": iso(BASE),
            }
        ],
    )
    assert usage(api, "spend", customer="c1")[0]["value"] == "123456789013.000000000001"


def test_late_events_update_old_windows(api: Api) -> None:
    api.post("/v1/meters", json={"key": "calls", "event_type": "call", "aggregation": "count"})
    day = {"from": iso(BASE - timedelta(days=20)), "to": iso(NOW), "window": "day"}
    send(
        api,
        [
            {
                "id": "now",
                "type": "call",
                "customer": "c1",
                "timestamp": iso(NOW - timedelta(minutes=5)),
            }
        ],
    )
    before = usage(api, "calls", **day)
    send(
        api,
        [
            {
                "id": "late",
                "type": "call",
                "customer": "c1",
                "timestamp": iso(NOW - timedelta(days=10)),
            }
        ],
    )
    after = usage(api, "calls", **day)
    assert len(after) == len(before) + 1
    assert after[0]["window_start"] < before[0]["window_start"]
    assert after[0]["value"] == "1"


def test_days_follow_the_customers_time_zone_across_dst(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "berlin", "timezone": "Europe/Berlin"})
    api.post("/v1/meters", json={"key": "calls", "event_type": "call", "aggregation": "count"})
    # Berlin leaves summer time on 2026-10-25: that day runs 22:00Z (24th) to 23:00Z (25th).
    stamps = [
        "2026-10-24T21:59:00Z",
        "2026-10-24T22:00:00Z",
        "2026-10-25T22:30:00Z",
        "2026-10-25T23:00:00Z",
    ]
    api.patch("/v1/workspace", json={"event_lateness_days": 3650})
    send(
        api,
        [
            {"id": f"d{i}", "type": "call", "customer": "berlin", "timestamp": s}
            for i, s in enumerate(stamps)
        ],
    )
    data = usage(
        api,
        "calls",
        customer="berlin",
        window="day",
        **{"from": "2026-10-24T00:00:00+02:00", "to": "2026-10-27T00:00:00+01:00"},
    )
    assert [(d["window_start"], d["window_end"], d["value"]) for d in data] == [
        ("2026-10-23T22:00:00Z", "2026-10-24T22:00:00Z", "1"),
        ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2"),
        ("2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z", "1"),
    ]
    in_utc = usage(
        api,
        "calls",
        customer="berlin",
        window="day",
        timezone="UTC",
        **{"from": "2026-10-24T00:00:00Z", "to": "2026-10-27T00:00:00Z"},
    )
    assert [d["value"] for d in in_utc] == ["2", "2"]


def test_filters_and_groups(api: Api) -> None:
    api.post(
        "/v1/meters",
        json={
            "key": "scans",
            "event_type": "ocr",
            "aggregation": "count",
            "filter": {"document": ["receipt", "invoice"]},
            "group_by": ["document", "lang"],
        },
    )
    docs = ["receipt", "invoice", "letter", "receipt"]
    send(
        api,
        [
            {
                "id": f"o{i}",
                "type": "ocr",
                "customer": "c1",
                "timestamp": iso(BASE),
                "properties": {"document": d, "lang": "de" if i % 2 else "en"},
            }
            for i, d in enumerate(docs)
        ],
    )
    assert usage(api, "scans")[0]["value"] == "3"
    by_doc = usage(api, "scans", group_by="document")
    assert {(d["group"]["document"], d["value"]) for d in by_doc} == {
        ("receipt", "2"),
        ("invoice", "1"),
    }
    both = usage(api, "scans", group_by=["document", "lang"])
    assert len(both) == 3  # (receipt, en), (invoice, de), (receipt, de)
    assert {tuple(sorted(d["group"])) for d in both} == {("document", "lang")}
    by_comma = usage(api, "scans", group_by="document,lang")
    assert [(d["group"], d["value"]) for d in by_comma] == [(d["group"], d["value"]) for d in both]


def test_organizations_see_their_members_members_see_themselves(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "org"})
    api.post("/v1/customers", json={"external_id": "m1", "parent": "org"})
    api.post("/v1/customers", json={"external_id": "m2", "parent": "org"})
    api.post("/v1/meters", json={"key": "calls", "event_type": "call", "aggregation": "count"})
    send(
        api,
        [
            {"id": f"c{i}", "type": "call", "customer": c, "timestamp": iso(BASE)}
            for i, c in enumerate(["m1", "m1", "m2", "org"])
        ],
    )
    assert usage(api, "calls", customer="org")[0]["value"] == "4"
    assert usage(api, "calls", customer="m1")[0]["value"] == "2"
    everyone = usage(api, "calls")
    assert [(d["customer"], d["value"]) for d in everyone] == [("org", "4")]


def test_empty_windows_are_left_out_and_bad_queries_are_422(api: Api) -> None:
    api.post("/v1/meters", json={"key": "calls", "event_type": "call", "aggregation": "count"})
    assert usage(api, "calls", window="day") == []
    for params in (
        {"window": "week"},
        {"timezone": "Mars/Base"},
        {"from": "2026-11-01T00:00:00"},
        {"from": iso(NOW), "to": iso(NOW - timedelta(days=1))},
    ):
        assert_problem(api.get("/v1/meters/calls/usage", params=params), 422, "validation_error")
    assert_problem(api.get("/v1/meters/nope/usage"), 404, "not_found")
    assert_problem(
        api.get("/v1/meters/calls/usage", params={"customer": "ghost"}), 404, "not_found"
    )
