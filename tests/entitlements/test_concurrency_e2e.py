"""Never overshoot: many parallel consumers against two real `meterline serve` processes
sharing one database (SQLite file or PostgreSQL) take exactly the limit, and every
allowed consume is stored."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cli_support import serving_twice

pytestmark = pytest.mark.e2e
LIMIT = 25
REQUESTS = 120


def test_two_processes_never_overshoot_a_hard_limit(database_url: str) -> None:
    with serving_twice(database_url) as (admin, clients):
        assert (
            admin.post(
                "/v1/meters", json={"key": "q", "event_type": "q", "aggregation": "count"}
            ).status_code
            == 201
        )
        plan = {
            "key": "p",
            "name": "P",
            "currency": "USD",
            "features": {"q": {"limits": [{"window": "day", "max": str(LIMIT)}]}},
        }
        assert admin.post("/v1/plans", json=plan).status_code == 201
        assert admin.post("/v1/customers", json={"external_id": "acme"}).status_code == 201
        assert (
            admin.post("/v1/subscriptions", json={"customer": "acme", "plan": "p"}).status_code
            == 201
        )

        def consume(i: int) -> dict[str, Any]:
            body = {"customer": "acme", "feature": "q", "consume": True, "id": f"c{i}"}
            r = clients[i % 2].post("/v1/check", json=body)
            assert r.status_code == 200, r.text
            answer: dict[str, Any] = r.json()
            return answer

        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(pool.map(consume, range(REQUESTS)))
        allowed = [a["event_id"] for a in answers if a["allowed"]]
        assert len(allowed) == LIMIT
        assert {a["reason"] for a in answers if not a["allowed"]} == {"limit_exceeded"}
        stored = admin.get("/v1/events", params={"customer": "acme", "limit": 1000}).json()["data"]
        assert sorted(e["id"] for e in stored) == sorted(allowed)
        day = admin.get("/v1/customers/acme/entitlements").json()["features"][0]["limits"][0]
        assert (day["used"], day["remaining"]) == (str(LIMIT), "0")
