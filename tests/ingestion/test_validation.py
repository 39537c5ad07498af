"""Each event is judged on its own, with a stable code per reason (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from meterline.ingestion.validation import Rejection, ValidEvent, validate, validate_cloudevent

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LATENESS = timedelta(days=35)


def ok(**fields: Any) -> dict[str, Any]:
    return {"id": "e1", "type": "api_call", "customer": "c1", **fields}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not an object", "invalid_event"),
        ({"id": "e1", "customer": "c1"}, "missing_field"),
        ({"id": "e1", "type": "t"}, "missing_field"),
        (ok(id=12), "invalid_field"),
        (ok(id=""), "invalid_field"),
        (ok(customer="has space"), "invalid_field"),
        (ok(type="x" * 256), "invalid_field"),
        (ok(subject=5), "invalid_field"),
        (ok(quantiy=3), "unknown_field"),
        (ok(timestamp="2026-11-21T10:00:00"), "invalid_timestamp"),
        (ok(timestamp="yesterday"), "invalid_timestamp"),
        (ok(timestamp="2026-11-21"), "invalid_timestamp"),
        (ok(timestamp=1763722800), "invalid_timestamp"),
        (ok(timestamp="2026-11-21T12:05:01Z"), "in_future"),
        (ok(timestamp="2026-10-17T11:59:59Z"), "too_late"),
        (ok(quantity="abc"), "invalid_quantity"),
        (ok(quantity="NaN"), "invalid_quantity"),
        (ok(quantity="Infinity"), "invalid_quantity"),
        (ok(quantity=True), "invalid_quantity"),
        (ok(quantity="1e30"), "invalid_quantity"),
        (ok(quantity=[1]), "invalid_quantity"),
        (ok(properties=[1, 2]), "invalid_properties"),
        (ok(properties="x"), "invalid_properties"),
        (ok(properties={"blob": "x" * 17000}), "invalid_properties"),
    ],
)
def test_each_reason_has_its_code(raw: Any, code: str) -> None:
    result = validate(raw, 7, NOW, LATENESS)
    assert isinstance(result, Rejection)
    assert (result.index, result.code) == (7, code)
    assert result.message


def test_defaults_and_normalisation() -> None:
    result = validate({"type": "t", "customer": "c"}, 0, NOW, LATENESS)
    assert isinstance(result, ValidEvent)
    assert result.event_id is None
    assert result.timestamp == NOW
    assert result.quantity == Decimal(1)
    assert result.properties == {}


def test_timestamps_keep_microseconds_and_become_utc() -> None:
    result = validate(ok(timestamp="2026-11-21T13:00:00.1234567+01:00"), 0, NOW, LATENESS)
    assert isinstance(result, ValidEvent)
    assert result.timestamp == datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    assert result.timestamp.tzinfo is UTC


def test_five_minutes_ahead_is_still_accepted() -> None:
    assert isinstance(validate(ok(timestamp="2026-11-21T12:05:00Z"), 0, NOW, LATENESS), ValidEvent)


@pytest.mark.parametrize("quantity", [1, "1", 1.0, "1.000", "1e0"])
def test_equal_quantities_are_the_same_content(quantity: object) -> None:
    base = validate(ok(quantity=1), 0, NOW, LATENESS)
    other = validate(ok(quantity=quantity), 0, NOW, LATENESS)
    assert isinstance(base, ValidEvent)
    assert isinstance(other, ValidEvent)
    assert base.content_hash == other.content_hash


def test_property_order_does_not_change_content_but_values_do() -> None:
    a = validate(ok(properties={"a": 1, "b": 2}), 0, NOW, LATENESS)
    b = validate(ok(properties={"b": 2, "a": 1}), 0, NOW, LATENESS)
    c = validate(ok(properties={"a": 1, "b": 3}), 0, NOW, LATENESS)
    assert isinstance(a, ValidEvent)
    assert isinstance(b, ValidEvent)
    assert isinstance(c, ValidEvent)
    assert a.content_hash == b.content_hash != c.content_hash


def test_a_server_assigned_timestamp_is_not_content() -> None:
    first = validate(ok(), 0, NOW, LATENESS)
    retry = validate(ok(), 0, NOW + timedelta(seconds=30), LATENESS)
    assert isinstance(first, ValidEvent)
    assert isinstance(retry, ValidEvent)
    assert first.content_hash == retry.content_hash


def test_cloudevents_map_onto_events() -> None:
    result = validate_cloudevent(
        {
            "specversion": "1.0",
            "id": "ce1",
            "source": "/api",
            "type": "ocr_scan",
            "subject": "org_1",
            "time": "2026-11-21T11:00:00Z",
            "data": {"document": "receipt"},
        },
        0,
        NOW,
        LATENESS,
    )
    assert isinstance(result, ValidEvent)
    assert (result.event_id, result.event_type, result.customer) == ("ce1", "ocr_scan", "org_1")
    assert result.properties == {"document": "receipt"}
    assert result.timestamp == datetime(2026, 11, 21, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "ce1", "source": "/api", "type": "t", "subject": "c"},  # no specversion
        {"specversion": "1.0", "id": "ce1", "source": "/api", "type": "t"},  # no subject
    ],
)
def test_incomplete_cloudevents_are_missing_field(raw: dict[str, Any]) -> None:
    result = validate_cloudevent(raw, 3, NOW, LATENESS)
    assert isinstance(result, Rejection)
    assert result.code == "missing_field"
