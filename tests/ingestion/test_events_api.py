"""POST/GET /v1/events through the real app, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from support import Api, assert_problem


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


NOW = datetime.now(UTC).replace(microsecond=0)


def ev(i: int | str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "type": "api_call",
        "customer": "c1",
        "timestamp": iso(NOW - timedelta(minutes=1)),
        **fields,
    }


def send(api: Api, events: list[dict[str, Any]]) -> dict[str, Any]:
    r = api.post("/v1/events", json={"events": events})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def count(api: Api, customer: str = "c1") -> int:
    r = api.get("/v1/events", params={"customer": customer, "limit": 1000})
    return len(r.json()["data"])


def test_single_event_then_listed(api: Api) -> None:
    r = api.post("/v1/events", json=ev(1, quantity="2.5", properties={"path": "/x"}))
    unmetered = "no meter counts events of type 'api_call'"
    assert r.json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
        "unmetered": 1,  # stored, but no meter counts it yet: said, never silent
        "warnings": [{"index": 0, "code": "unmetered", "message": unmetered}],
    }
    listed = api.get("/v1/events").json()["data"]
    assert len(listed) == 1
    event = listed[0]
    assert (event["id"], event["type"], event["customer"], event["quantity"]) == (
        "e1",
        "api_call",
        "c1",
        "2.5",
    )
    assert event["properties"] == {"path": "/x"}
    assert event["problems"] == [{"meter": None, "code": "unmetered", "message": unmetered}]


def test_bad_events_are_reported_one_by_one_and_good_ones_stored(api: Api) -> None:
    events = [
        ev(1),
        {"id": "e2", "customer": "c1"},
        ev(3, timestamp="2026-11-03T10:00:00"),
        # From the clock now, not NOW (taken at import: a long suite would reach it).
        ev(4, timestamp=iso(datetime.now(UTC) + timedelta(minutes=10))),
        ev(5, timestamp=iso(NOW - timedelta(days=40))),
        ev(6, quantity="lots"),
        ev(7, properties=["not", "an", "object"]),
        ev(8),
        ev(1, quantity=9),
    ]
    result = send(api, events)
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 0, 7)
    assert [(e["index"], e["code"]) for e in result["errors"]] == [
        (1, "missing_field"),
        (2, "invalid_timestamp"),
        (3, "in_future"),
        (4, "too_late"),
        (5, "invalid_quantity"),
        (6, "invalid_properties"),
        (8, "conflict"),
    ]
    assert count(api) == 2


def test_resending_a_batch_counts_nothing_twice(api: Api) -> None:
    batch = [ev(i) for i in range(20)]
    assert send(api, batch)["accepted"] == 20
    for _ in range(3):
        again = send(api, batch)
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 20, 0)
    assert count(api) == 20


def test_a_partly_delivered_retry_counts_each_event_once(api: Api) -> None:
    send(api, [ev(i) for i in range(10)])
    result = send(api, [ev(i) for i in range(5, 15)])  # half old, half new
    assert (result["accepted"], result["duplicates"]) == (5, 5)
    assert count(api) == 15


def test_duplicates_and_conflicts_inside_one_batch(api: Api) -> None:
    result = send(api, [ev(1), ev(1), ev(1, quantity=2), ev(2)])
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 1, 1)
    assert result["errors"] == [
        {"index": 2, "code": "conflict", "message": result["errors"][0]["message"]}
    ]


def test_conflict_across_batches_changes_nothing(api: Api) -> None:
    send(api, [ev(1, quantity=1)])
    result = send(api, [ev(1, quantity=5)])
    assert result["errors"][0]["code"] == "conflict"
    assert api.get("/v1/events").json()["data"][0]["quantity"] == "1"


def test_events_without_id_or_timestamp_get_them(api: Api) -> None:
    result = send(api, [{"type": "api_call", "customer": "c1"}] * 3)
    assert result["accepted"] == 3
    listed = api.get("/v1/events").json()["data"]
    assert len({e["id"] for e in listed}) == 3
    assert all(e["id"].startswith("evt_") for e in listed)
    stamp = datetime.fromisoformat(listed[0]["timestamp"])
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=1)


def test_unknown_customers_are_created_on_first_sight(api: Api) -> None:
    send(api, [ev(1, customer="brand_new")])
    assert api.get("/v1/customers/brand_new").json()["timezone"] == "UTC"


def test_auto_creation_can_be_turned_off(api: Api) -> None:
    settings = api.patch("/v1/workspace", json={"auto_create_customers": False}).json()
    assert settings["auto_create_customers"] is False
    api.post("/v1/customers", json={"external_id": "known"})
    result = send(api, [ev(1, customer="stranger"), ev(2, customer="known")])
    assert result["accepted"] == 1
    assert result["errors"][0]["code"] == "unknown_customer"
    assert result["errors"][0]["index"] == 0
    assert_problem(api.get("/v1/customers/stranger"), 404, "not_found")


def test_lateness_window_is_a_workspace_setting(api: Api) -> None:
    api.patch("/v1/workspace", json={"event_lateness_days": 2})
    result = send(api, [ev(1, timestamp=iso(NOW - timedelta(days=3))), ev(2)])
    assert [e["code"] for e in result["errors"]] == ["too_late"]
    assert "2 days" in result["errors"][0]["message"]


def test_members_events_are_attributed_to_their_organization(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "org"})
    api.post("/v1/customers", json={"external_id": "member", "parent": "org"})
    send(api, [ev(1, customer="member", subject="user_9"), ev(2, customer="org")])
    org_events = api.get("/v1/events", params={"customer": "org"}).json()["data"]
    assert {(e["customer"], e["billed_to"]) for e in org_events} == {
        ("member", "org"),
        ("org", "org"),
    }
    member_events = api.get("/v1/events", params={"customer": "member"}).json()["data"]
    assert [(e["id"], e["subject"]) for e in member_events] == [("e1", "user_9")]


def test_ten_thousand_events_in_one_request(api: Api) -> None:
    batch = [ev(i, customer=f"c{i % 50}") for i in range(10_000)]
    result = send(api, batch)
    assert (result["accepted"], result["rejected"]) == (10_000, 0)
    assert send(api, batch)["duplicates"] == 10_000


def test_more_than_ten_thousand_is_413(api: Api) -> None:
    r = api.post("/v1/events", json={"events": [ev(i) for i in range(10_001)]})
    assert_problem(r, 413, "too_many_events")
    assert api.get("/v1/events").json()["data"] == []


def test_cloudevents_single_and_batch(api: Api) -> None:
    def ce(i: int) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": f"ce{i}",
            "source": "/ocr",
            "type": "ocr_scan",
            "subject": "org_1",
            "time": iso(NOW),
            "data": {"document": "receipt"},
        }

    one = api.post(
        "/v1/events",
        content=orjson.dumps(ce(1)),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert one.json()["accepted"] == 1
    many = api.post(
        "/v1/events",
        content=orjson.dumps([ce(1), ce(2), {"id": "x"}]),
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    body = many.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert body["errors"][0]["code"] == "missing_field"
    stored = api.get("/v1/events", params={"customer": "org_1"}).json()["data"]
    assert {e["id"] for e in stored} == {"ce1", "ce2"}
    assert stored[0]["properties"] == {"document": "receipt"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{", "application/json", 400, "malformed_json"),
        (b'{"events": 5}', "application/json", 422, "validation_error"),
        (b"[]", "text/csv", 415, "unsupported_media_type"),
        (b"{}", "application/cloudevents-batch+json", 422, "validation_error"),
    ],
)
def test_malformed_requests(
    api: Api, content: bytes, content_type: str, status: int, code: str
) -> None:
    r = api.post("/v1/events", content=content, headers={"content-type": content_type})
    assert_problem(r, status, code)


def test_read_and_ingest_scopes(api: Api) -> None:
    ingest, reader = api.new_key("ingest"), api.new_key("read")
    assert ingest.post("/v1/events", json=ev(1)).status_code == 200
    assert_problem(reader.post("/v1/events", json=ev(2)), 403, "insufficient_scope")
    assert reader.get("/v1/events").status_code == 200
    assert_problem(ingest.get("/v1/events"), 403, "insufficient_scope")


def test_listing_filters_and_pages(api: Api) -> None:
    send(
        api,
        [
            ev(
                i,
                type="a" if i % 2 else "b",
                customer=f"c{i % 3}",
                timestamp=iso(NOW - timedelta(hours=i)),
            )
            for i in range(12)
        ],
    )
    assert len(api.get("/v1/events", params={"type": "a"}).json()["data"]) == 6
    assert len(api.get("/v1/events", params={"customer": "c0"}).json()["data"]) == 4
    window = {
        "from": iso(NOW - timedelta(hours=4, minutes=30)),
        "to": iso(NOW - timedelta(minutes=30)),
    }
    assert len(api.get("/v1/events", params=window).json()["data"]) == 4
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 5, **({"after": after} if after else {})}
        page = api.get("/v1/events", params=params).json()
        seen += [e["id"] for e in page["data"]]
        after = page["next_cursor"]
        if not after:
            break
    assert sorted(seen) == sorted(f"e{i}" for i in range(12))
    assert seen[0] == "e11"  # newest first
    naive = api.get("/v1/events", params={"from": "2026-11-01T00:00:00"})
    assert_problem(naive, 422, "validation_error")


def test_events_show_what_went_wrong_for_their_meters(api: Api) -> None:
    api.post(
        "/v1/meters",
        json={
            "key": "tokens",
            "event_type": "llm",
            "aggregation": "sum",
            "value_property": "usage.tokens",
        },
    )
    send(
        api,
        [
            ev(1, type="llm", properties={"usage": {"tokens": 5}}),
            ev(2, type="llm", properties={}),
            ev(3, type="llm", properties={"usage": {"tokens": "many"}}),
        ],
    )
    problems = {e["id"]: e["problems"] for e in api.get("/v1/events").json()["data"]}
    assert problems["e1"] == []
    assert [(p["meter"], p["code"]) for p in problems["e2"]] == [("tokens", "missing_value")]
    assert [(p["meter"], p["code"]) for p in problems["e3"]] == [("tokens", "invalid_value")]
