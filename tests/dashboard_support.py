"""Driving the dashboard through the real app: a browser-like client with its own
cookies, signed in with a key, and a workspace with something on every page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx2
from fastapi.testclient import TestClient

from support import Api

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Browser:
    """One browser: its own cookie jar on the app the ``api`` fixture serves."""

    client: TestClient

    @classmethod
    def of(cls, api: Api) -> Browser:
        # No lifespan: the app's state was made by the ``client`` fixture.
        return cls(TestClient(api.client.app, follow_redirects=False))

    def sign_in(self, key: str) -> httpx2.Response:
        form = self.client.get("/dashboard/login")
        token = CSRF.search(form.text)
        assert token is not None, form.text
        return self.client.post(
            "/dashboard/login", data={"api_key": key, "csrf_token": token.group(1), "next": ""}
        )

    def get(self, path: str, **kw: Any) -> httpx2.Response:
        return self.client.get(path, **kw)

    def csrf(self) -> str:
        page = self.client.get("/dashboard/api-keys")
        found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
        assert found is not None, page.text
        return found.group(1)

    def post(
        self, path: str, data: dict[str, Any] | None = None, csrf: bool = True
    ) -> httpx2.Response:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.csrf())
        return self.client.post(path, data=body)


def signed_in(api: Api, *scopes: str) -> Browser:
    """A browser signed in with a new key of these scopes (the workspace's admin key
    when none are named)."""
    key = api.new_key(*scopes).key if scopes else api.key
    browser = Browser.of(api)
    answer = browser.sign_in(key)
    assert answer.status_code == 303, answer.text
    return browser


PLAN = {
    "key": "pro",
    "name": "Pro",
    "currency": "USD",
    "base_fee": "49.00",
    "features": {
        "scans": {
            "included": "5",
            "price": {"model": "per_unit", "unit_price": "0.25"},
            "limits": [
                {"window": "day", "max": "100", "enforcement": "hard"},
                {"window": "month", "max": "10", "enforcement": "soft", "alert_at": ["0.5", "1"]},
            ],
        },
        "tokens": {
            "price": {
                "model": "graduated",
                "tiers": [
                    {"up_to": "1000", "unit_price": "0"},
                    {"up_to": None, "unit_price": "0.001"},
                ],
            }
        },
    },
}


def populate(api: Api) -> None:
    """Meters, two plans, customers (an organization with a member), a subscription,
    credits, events (one with a problem), an alert and a webhook endpoint."""
    for meter in (
        {
            "key": "scans",
            "event_type": "scan",
            "aggregation": "count",
            "unit": "scan",
            "group_by": ["document"],
        },
        {
            "key": "tokens",
            "event_type": "llm",
            "aggregation": "sum",
            "value_property": "tokens",
            "unit": "token",
        },
    ):
        assert api.post("/v1/meters", json=meter).status_code == 201
    assert api.post("/v1/plans", json=PLAN).status_code == 201
    basic = {
        "key": "basic",
        "name": "Basic",
        "currency": "USD",
        "base_fee": "9.00",
        "features": {"scans": {"included": "2"}},
    }
    assert api.post("/v1/plans", json=basic).status_code == 201
    api.post(
        "/v1/customers", json={"external_id": "org_a", "name": "Org A", "timezone": "Europe/Berlin"}
    )
    api.post("/v1/customers", json={"external_id": "user_a1", "name": "Member", "parent": "org_a"})
    api.post("/v1/customers", json={"external_id": "solo", "name": "Solo"})
    sub = {"customer": "org_a", "plan": "pro", "start_at": "2026-01-01T00:00:00Z"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201
    assert api.post("/v1/customers/org_a/credits/grants", json={"amount": "100"}).status_code == 201
    events = [
        {
            "id": f"s{i}",
            "type": "scan",
            "customer": "org_a" if i % 3 else "user_a1",
            "properties": {"document": "receipt"},
        }
        for i in range(8)
    ]
    events += [
        {"id": "t1", "type": "llm", "customer": "org_a", "properties": {"tokens": 1500}},
        {"id": "t2", "type": "llm", "customer": "org_a", "properties": {}},  # missing_value
        {"id": "x1", "type": "nothing_meters_this", "customer": "solo"},
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 11
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["credits.granted"]}
    assert api.post("/v1/webhook-endpoints", json=hook).status_code == 201
