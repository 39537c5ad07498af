"""Plans over HTTP: the SPEC §8 shape, field-level validation, replacement by PUT."""

from __future__ import annotations

from typing import Any

import pytest

from support import Api, assert_problem

PRO: dict[str, Any] = {
    "key": "pro",
    "name": "Pro",
    "currency": "USD",
    "interval": "month",
    "base_fee": "49.00",
    "credits": {"amount": "7000", "expires_at_period_end": True},
    "features": {
        "ocr_scan": {
            "included": "50",
            "price": {"model": "per_unit", "unit_price": "0.05"},
            "limits": [
                {"window": "day", "max": "20", "enforcement": "hard"},
                {
                    "window": "month",
                    "max": "1000",
                    "enforcement": "soft",
                    "alert_at": ["0.8", "1.0"],
                },
            ],
        },
        "api_call": {
            "price": {
                "model": "graduated",
                "tiers": [
                    {"up_to": "10000", "unit_price": "0", "flat_price": "0"},
                    {"up_to": None, "unit_price": "0.001", "flat_price": "0"},
                ],
            }
        },
        "ai_insight": {
            "credit_cost": {"per_unit": "9", "property": "depth", "values": {"advanced": "25"}}
        },
        "sso": {"enabled": False},
    },
}


def meters(api: Api, *keys: str, aggregation: str = "count") -> None:
    for key in keys:
        r = api.post("/v1/meters", json={"key": key, "event_type": key, "aggregation": aggregation})
        assert r.status_code == 201, r.text


def test_the_spec_example_round_trips(api: Api) -> None:
    meters(api, "ocr_scan", "api_call", "ai_insight", "sso")
    r = api.post("/v1/plans", json=PRO)
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["version"] == 1
    assert plan["base_fee"] == "49"
    assert plan["features"]["ocr_scan"]["limits"][1]["alert_at"] == ["0.8", "1"]
    assert plan["features"]["api_call"]["price"]["tiers"][1]["up_to"] is None
    assert plan["features"]["sso"]["enabled"] is False
    assert plan["features"]["sso"]["included"] == "0"
    assert api.get("/v1/plans/pro").json() == plan
    assert [p["key"] for p in api.get("/v1/plans").json()["data"]] == ["pro"]
    assert_problem(api.post("/v1/plans", json=PRO), 409, "already_exists")


def _errors(response: Any) -> dict[str, str]:
    body = assert_problem(response, 422, "validation_error")
    return {e["field"]: e["code"] for e in body["errors"]}


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"currency": "usd"}, "currency", "invalid_currency"),
        ({"currency": "ABC"}, "currency", "invalid_currency"),
        ({"base_fee": "-1"}, "base_fee", "negative_number"),
        ({"interval": "fortnight"}, "interval", "literal_error"),
        (
            {"features": {"ocr_scan": {"limits": [{"window": "week", "max": "1"}]}}},
            "features.ocr_scan.limits.0.window",
            "literal_error",
        ),
        (
            {"features": {"ocr_scan": {"limits": [{"window": "day", "max": "-5"}]}}},
            "features.ocr_scan.limits.0.max",
            "negative_number",
        ),
        (
            {"features": {"ocr_scan": {"included": "-1"}}},
            "features.ocr_scan.included",
            "negative_number",
        ),
        (
            {
                "features": {
                    "ocr_scan": {
                        "price": {
                            "model": "graduated",
                            "tiers": [
                                {"up_to": "100", "unit_price": "1"},
                                {"up_to": "50", "unit_price": "1"},
                                {"up_to": None, "unit_price": "1"},
                            ],
                        }
                    }
                }
            },
            "features.ocr_scan.price.graduated.tiers",
            "tiers_not_ascending",
        ),
        (
            {
                "features": {
                    "ocr_scan": {
                        "price": {"model": "volume", "tiers": [{"up_to": "10", "unit_price": "1"}]}
                    }
                }
            },
            "features.ocr_scan.price.volume.tiers",
            "last_tier_bounded",
        ),
        (
            {
                "features": {
                    "ocr_scan": {
                        "price": {"model": "package", "package_size": "0", "package_price": "5"}
                    }
                }
            },
            "features.ocr_scan.price.package.package_size",
            "not_positive",
        ),
        (
            {"features": {"ocr_scan": {"price": {"model": "per_unit", "unit_price": "NaN"}}}},
            "features.ocr_scan.price.per_unit.unit_price",
            "invalid_decimal",
        ),
    ],
)
def test_invalid_plans_name_the_field(
    api: Api, change: dict[str, Any], field: str, code: str
) -> None:
    meters(api, "ocr_scan")
    body = {"key": "p", "name": "P", "currency": "USD", **change}
    errors = _errors(api.post("/v1/plans", json=body))
    assert errors.get(field) == code, errors
    assert api.get("/v1/plans").json()["data"] == []  # nothing stored


def test_unknown_meters_and_unlimitable_meters_are_refused(api: Api) -> None:
    r = api.post(
        "/v1/meters",
        json={
            "key": "seats",
            "event_type": "seat",
            "aggregation": "unique_count",
            "value_property": "user",
        },
    )
    assert r.status_code == 201
    body = {
        "key": "p",
        "name": "P",
        "currency": "EUR",
        "features": {
            "nope": {},
            "seats": {"limits": [{"window": "month", "max": "5"}]},
        },
    }
    assert _errors(api.post("/v1/plans", json=body)) == {
        "features.nope": "unknown_meter",
        "features.seats.limits": "limit_not_supported",
    }


def test_put_replaces_the_plan_and_counts_versions(api: Api) -> None:
    meters(api, "ocr_scan", "api_call", "ai_insight", "sso")
    api.post("/v1/plans", json=PRO)
    replacement = {
        "name": "Pro 2",
        "currency": "JPY",
        "base_fee": "4900",
        "features": {"ocr_scan": {}},
    }
    r = api.request("PUT", "/v1/plans/pro", json=replacement)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["name"], r.json()["currency"]) == (2, "Pro 2", "JPY")
    assert r.json()["credits"] is None
    assert list(r.json()["features"]) == ["ocr_scan"]
    assert_problem(api.request("PUT", "/v1/plans/none", json=replacement), 404, "not_found")
    bad = api.request("PUT", "/v1/plans/pro", json={**replacement, "currency": "XYZ"})
    assert _errors(bad) == {"currency": "invalid_currency"}
    assert api.get("/v1/plans/pro").json()["version"] == 2  # the refused PUT changed nothing
