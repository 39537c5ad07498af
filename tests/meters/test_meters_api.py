from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from support import Api, assert_problem

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def meter(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"key": "scans", "event_type": "ocr_scan", "aggregation": "count", **fields}
    r = api.post("/v1/meters", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def send(api: Api, events: list[dict[str, Any]]) -> None:
    r = api.post("/v1/events", json={"events": events})
    assert r.json()["rejected"] == 0, r.text


def total(api: Api, key: str, **params: Any) -> str | None:
    data = api.get(f"/v1/meters/{key}/usage", params=params).json()["data"]
    assert len(data) <= 1, data
    return data[0]["value"] if data else None


def test_crud(api: Api) -> None:
    created = meter(
        api,
        filter={"document": ["receipt", "invoice"]},
        group_by=["document"],
        unit="scan",
        name="OCR scans",
    )
    assert created["filter"] == {"document": ["receipt", "invoice"]}
    assert api.get("/v1/meters/scans").json() == created
    assert [m["key"] for m in api.get("/v1/meters").json()["data"]] == ["scans"]
    renamed = api.patch("/v1/meters/scans", json={"name": "Scans"}).json()
    assert renamed["name"] == "Scans"
    assert_problem(
        api.post("/v1/meters", json={"key": "scans", "event_type": "x", "aggregation": "count"}),
        409,
        "already_exists",
    )
    assert api.delete("/v1/meters/scans").status_code == 204
    assert_problem(api.get("/v1/meters/scans"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"aggregation": "median"}, "literal_error"),
        ({"aggregation": "unique_count"}, "value_property_required"),
        ({"aggregation": "count", "value_property": "x"}, "value_property_not_allowed"),
        ({"aggregation": "duration", "unit": "fortnight"}, "invalid_unit"),
        ({"key": "has space"}, "string_pattern_mismatch"),
        ({"filter": {"doc": []}}, "invalid_filter"),
        ({"group_by": ["a", "a"]}, "invalid_group_by"),
    ],
)
def test_invalid_meters_are_422(api: Api, body: dict[str, Any], code: str) -> None:
    full = {"key": "m", "event_type": "t", "aggregation": "count", **body}
    errors = assert_problem(api.post("/v1/meters", json=full), 422, "validation_error")["errors"]
    assert code in {e["code"] for e in errors}


def test_a_new_meter_counts_events_already_stored(api: Api) -> None:
    send(api, [{"id": f"e{i}", "type": "ocr_scan", "customer": "c1"} for i in range(7)])
    meter(api)
    assert total(api, "scans", customer="c1") == "7"


def test_changes_that_rewrite_the_past_are_refused_once_there_are_events(api: Api) -> None:
    meter(api)
    assert api.patch("/v1/meters/scans", json={"filter": {"doc": "x"}}).status_code == 200
    api.patch("/v1/meters/scans", json={"filter": {}})
    send(api, [{"id": "e1", "type": "ocr_scan", "customer": "c1"}])
    for change in ({"aggregation": "sum"}, {"event_type": "other"}, {"filter": {"doc": "x"}}):
        body = assert_problem(api.patch("/v1/meters/scans", json=change), 409, "meter_has_events")
        assert next(iter(change)) in body["detail"]
    assert api.get("/v1/meters/scans").json()["aggregation"] == "count"
    assert total(api, "scans") == "1"


def test_group_by_can_change_and_rollups_follow(api: Api) -> None:
    meter(api)
    send(
        api,
        [
            {
                "id": f"e{i}",
                "type": "ocr_scan",
                "customer": "c1",
                "properties": {"document": "receipt" if i < 3 else "invoice"},
            }
            for i in range(5)
        ],
    )
    assert_problem(
        api.get("/v1/meters/scans/usage", params={"group_by": "document"}), 422, "validation_error"
    )
    api.patch("/v1/meters/scans", json={"group_by": ["document"]})
    data = api.get("/v1/meters/scans/usage", params={"group_by": "document"}).json()["data"]
    assert {(d["group"]["document"], d["value"]) for d in data} == {
        ("receipt", "3"),
        ("invoice", "2"),
    }


def test_deleting_a_meter_keeps_events(api: Api) -> None:
    meter(api)
    send(api, [{"id": "e1", "type": "ocr_scan", "customer": "c1"}])
    api.delete("/v1/meters/scans")
    assert len(api.get("/v1/events").json()["data"]) == 1
    meter(api)
    assert total(api, "scans") == "1"
