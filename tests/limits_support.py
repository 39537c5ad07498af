from __future__ import annotations

from typing import Any

from support import Api


def plan_with(api: Api, features: dict[str, Any], key: str = "plan") -> None:
    r = api.post(
        "/v1/plans", json={"key": key, "name": key, "currency": "USD", "features": features}
    )
    assert r.status_code == 201, r.text


def meter(api: Api, key: str, aggregation: str = "count", **fields: Any) -> None:
    body = {"key": key, "event_type": key, "aggregation": aggregation, **fields}
    r = api.post("/v1/meters", json=body)
    assert r.status_code == 201, r.text


def customer_on(api: Api, external_id: str, plan: str = "plan", **fields: Any) -> None:
    assert api.post("/v1/customers", json={"external_id": external_id, **fields}).status_code == 201
    r = api.post(
        "/v1/subscriptions",
        json={"customer": external_id, "plan": plan, "start_at": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 201, r.text


def check(api: Api, customer: str, feature: str, **fields: Any) -> dict[str, Any]:
    r = api.post("/v1/check", json={"customer": customer, "feature": feature, **fields})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def limits(body: dict[str, Any]) -> dict[str, tuple[str | None, str, str | None]]:
    """window → (max, used, remaining)."""
    return {x["window"]: (x["max"], x["used"], x["remaining"]) for x in body["limits"]}
