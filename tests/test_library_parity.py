"""Library mode has the API's calls, answered with the same bodies: a scenario done once
in-process and read both ways (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import meterline
from jobs_support import at, frozen
from meterline.errors import MeterlineError
from support import Api


def same(model: Any, answer: dict[str, Any]) -> None:
    assert model.model_dump(mode="json") == answer


def test_library_calls_answer_as_the_api_does(api: Api, database_url: str) -> None:
    with frozen("2026-03-10T12:00:00Z") as clock:
        ml = meterline.Meterline(database_url, workspace="alpha")
        ml.create_meter(key="scan", event_type="scan", aggregation="count")
        ml.create_meter(key="tok", event_type="tok", aggregation="sum", value_property="n")
        ml.create_plan(
            key="pro",
            name="Pro",
            currency="USD",
            base_fee="10",
            features={
                "scan": {
                    "included": "1",
                    "price": {"model": "per_unit", "unit_price": "0.5"},
                    "limits": [{"window": "day", "max": "5"}],
                    "credit_cost": {"per_unit": "2"},
                },
                "tok": {"limits": [{"window": "day", "max": "100"}]},
            },
        )
        ml.create_customer(external_id="acme")
        ml.subscribe(customer="acme", plan="pro", start_at="2026-02-01T00:00:00Z")
        ml.grant_credits(customer="acme", amount="20")
        assert ml.consume(customer="acme", feature="scan", id="s1").allowed
        assert ml.record(customer="acme", type="scan", id="s2")
        debit = ml.debit_credits(customer="acme", amount="3", reference="manual")
        assert (debit.amount, debit.balance_after) == (Decimal(-3), Decimal(13))
        held = ml.reserve(customer="acme", feature="tok", quantity="40", ttl_seconds=600)
        assert held.allowed
        settled = ml.settle(held.id or "", "25")
        assert (settled.status, settled.settled_quantity) == ("settled", Decimal(25))
        other = ml.reserve(customer="acme", feature="tok", quantity="10")
        assert ml.release(other.id or "").status == "released"
        voided = ml.void_event("s2", reason="refund")
        assert voided.voided_at is not None
        clock.set(at("2026-03-10T12:00:01Z"))
        reset = ml.reset_limits(customer="acme", window="day", feature="scan")
        scan = next(f for f in reset.features if f.feature == "scan")
        assert scan.limits[0].used == 0

        same(ml.entitlements("acme"), api.get("/v1/customers/acme/entitlements").json())
        same(ml.usage("acme"), api.get("/v1/customers/acme/usage").json())
        same(ml.usage_forecast("acme"), api.get("/v1/customers/acme/usage/forecast").json())
        same(ml.credits("acme"), api.get("/v1/customers/acme/credits").json())
        same(
            ml.credit_transactions("acme"),
            api.get("/v1/customers/acme/credits/transactions").json(),
        )
        same(ml.upcoming_invoice("acme"), api.get("/v1/customers/acme/invoices/upcoming").json())

        clock.set(at("2026-04-01T01:00:00Z"))
        ml.run_jobs()
        same(ml.usage_history("acme"), api.get("/v1/customers/acme/usage/history").json())
        invoices = ml.invoices(customer="acme")
        same(invoices, api.get("/v1/invoices", params={"customer": "acme"}).json())
        first = invoices.data[-1]
        assert first.status == "finalized"
        same(ml.invoice(first.id or ""), api.get(f"/v1/invoices/{first.id}").json())
        assert ml.void_invoice(first.id or "").status == "void"
        with pytest.raises(MeterlineError) as refused:
            ml.debit_credits(customer="acme", amount="1000")
        assert refused.value.code == "insufficient_credits"
        ml.close()


def test_a_consume_prices_its_credits_once(database_url: str) -> None:
    """The decision's charge is what is debited: a strategy runs once per consume, and a
    second, different answer can never turn into uncovered usage."""
    ml = meterline.Meterline(database_url)
    ml.create_meter(key="paper", event_type="paper", aggregation="count")
    ml.create_plan(key="edu", name="Edu", currency="USD", features={"paper": {}})
    ml.create_customer(external_id="stu")
    ml.subscribe(customer="stu", plan="edu", start_at="2026-01-01T00:00:00Z")
    ml.grant_credits(customer="stu", amount="12")
    prices = iter([Decimal(5), Decimal(50), Decimal(5), Decimal(50)])
    calls: list[Decimal] = []

    @ml.credit_cost("paper")
    def changing(_: Any) -> Decimal:
        calls.append(next(prices))
        return calls[-1]

    first = ml.consume(customer="stu", feature="paper")
    assert first.allowed
    assert first.credits is not None
    assert first.credits.required == 5
    assert calls == [Decimal(5)]  # priced once
    [entry, *_] = ml.credit_transactions("stu").data
    assert (entry.type, entry.amount, entry.uncovered) == ("debit", Decimal(-5), None)
    second = ml.consume(customer="stu", feature="paper")
    assert (second.allowed, second.reason) == (False, "insufficient_credits")  # 50 > 7
    assert ml.credits("stu").balance == 7
    ml.close()
