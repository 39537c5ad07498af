"""Never overspend: 50 parallel consumes (and direct debits) against two real
`meterline serve` processes sharing one database spend no more than the balance, every
allowed consume is charged exactly once, and the ledger verifies."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from cli_support import run, serving_twice

pytestmark = pytest.mark.e2e
BALANCE = 100
COST = 3  # 50 consumes would need 150
CONSUMES = 50
DEBITS = 10  # of 5 each, at the same time


def test_parallel_consumes_never_overspend(database_url: str) -> None:
    with serving_twice(database_url) as (admin, clients):
        meter = {"key": "report", "event_type": "report", "aggregation": "count"}
        assert admin.post("/v1/meters", json=meter).status_code == 201
        plan = {
            "key": "p",
            "name": "P",
            "currency": "USD",
            "features": {"report": {"credit_cost": {"per_unit": str(COST)}}},
        }
        assert admin.post("/v1/plans", json=plan).status_code == 201
        assert admin.post("/v1/customers", json={"external_id": "acme"}).status_code == 201
        assert admin.post("/v1/customers", json={"external_id": "dev", "parent": "acme"})
        sub = {"customer": "acme", "plan": "p"}
        assert admin.post("/v1/subscriptions", json=sub).status_code == 201
        grant = {"amount": str(BALANCE)}
        assert admin.post("/v1/customers/acme/credits/grants", json=grant).status_code == 201

        def act(i: int) -> tuple[str, Any]:
            client = clients[i % 2]
            if i < DEBITS:
                r = client.post("/v1/customers/acme/credits/debits", json={"amount": "5"})
                assert r.status_code in (201, 402), r.text
                return "debit", r.status_code
            who = "dev" if i % 3 == 0 else "acme"  # a member spends the same credits
            body = {"customer": who, "feature": "report", "consume": True, "id": f"c{i}"}
            r = client.post("/v1/check", json=body)
            assert r.status_code == 200, r.text
            return "consume", r.json()

        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(act, range(DEBITS + CONSUMES)))
        consumes = [a for kind, a in results if kind == "consume"]
        allowed = [a["event_id"] for a in consumes if a["allowed"]]
        debited = sum(1 for kind, status in results if kind == "debit" and status == 201)
        assert {a["reason"] for a in consumes if not a["allowed"]} == {"insufficient_credits"}
        spent = COST * len(allowed) + 5 * debited
        left = Decimal(admin.get("/v1/customers/acme/credits").json()["balance"])
        assert spent <= BALANCE
        assert left == BALANCE - spent
        assert left < COST  # nothing that fitted was refused (the balance only fell)
        stored = admin.get("/v1/events", params={"customer": "acme", "limit": 1000}).json()
        assert sorted(e["id"] for e in stored["data"]) == sorted(allowed)
        ledger = admin.get(
            "/v1/customers/acme/credits/transactions", params={"limit": 1000}
        ).json()["data"]
        charged = sorted(t["reference"] for t in ledger if t["reference_type"] == "event")
        assert charged == sorted(allowed)  # each allowed consume charged exactly once
        assert all(t["uncovered"] is None for t in ledger)
    verified = run("credits", "verify", "--database-url", database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
