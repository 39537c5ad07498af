"""Library mode: a Python function as a feature's credit-cost strategy, applied to
checks, consumes and recorded events alike, on both databases."""

from __future__ import annotations

from decimal import Decimal

import pytest

import meterline
from meterline.credits.costs import Usage
from meterline.errors import MeterlineError


@pytest.fixture
def ml(database_url: str) -> meterline.Meterline:
    engine = meterline.Meterline(database_url)
    engine.create_meter(key="llm", event_type="llm", aggregation="sum", value_property="tokens")
    engine.create_meter(key="paper", event_type="paper", aggregation="count")
    engine.create_plan(
        key="pro",
        name="Pro",
        currency="USD",
        features={"llm": {}, "paper": {"credit_cost": {"per_unit": "5"}}},
    )
    engine.create_customer(external_id="acme")
    engine.subscribe(customer="acme", plan="pro", start_at="2026-01-01T00:00:00Z")
    engine.grant_credits(customer="acme", amount="100")
    return engine


def test_a_python_strategy_prices_usage(ml: meterline.Meterline) -> None:
    seen: list[Usage] = []

    @ml.credit_cost("llm")
    def per_thousand_tokens(usage: Usage) -> Decimal:
        seen.append(usage)
        rate = Decimal("2") if usage.properties.get("model") == "large" else Decimal("1")
        return (usage.units / 1000) * rate

    small = ml.check(customer="acme", feature="llm", quantity=0, properties={"tokens": 3000})
    assert small.allowed
    assert small.credits is not None
    assert (small.credits.balance, small.credits.required) == (Decimal(100), Decimal(3))
    # Recorded events are charged by the strategy as they land.
    assert ml.record(customer="acme", type="llm", properties={"tokens": 5000, "model": "large"})
    assert ml.credits("acme").balance == Decimal(90)
    consumed = ml.check(
        customer="acme", feature="llm", quantity=0, consume=True, properties={"tokens": 20000}
    )
    assert consumed.allowed
    assert ml.credits("acme").balance == Decimal(70)
    # Too expensive: denied, nothing recorded or charged.
    denied = ml.check(
        customer="acme",
        feature="llm",
        quantity=0,
        consume=True,
        properties={"tokens": 40000, "model": "large"},
    )
    assert (denied.allowed, denied.reason) == (False, "insufficient_credits")
    assert ml.credits("acme").balance == Decimal(70)
    assert {u.feature for u in seen} == {"llm"}
    assert seen[1].units == Decimal(5000)
    # Features without a strategy keep their plan's credit cost.
    paper = ml.check(customer="acme", feature="paper", consume=True).credits
    assert paper is not None
    assert (paper.required, paper.balance) == (Decimal(5), Decimal(65))
    ml.close()


def test_a_failing_strategy_fails_the_call_and_records_nothing(ml: meterline.Meterline) -> None:
    ml.register_credit_cost("llm", lambda usage: Decimal(-1))
    with pytest.raises(MeterlineError) as failed:
        ml.record(customer="acme", type="llm", id="e1", properties={"tokens": 10})
    assert failed.value.code == "credit_cost_failed"
    ml.register_credit_cost("llm", lambda usage: Decimal(0))
    assert ml.record(customer="acme", type="llm", id="e1", properties={"tokens": 10})
    assert ml.credits("acme").balance == Decimal(100)
    ml.close()


def test_a_strategy_knows_the_plan_in_force_so_one_plan_can_be_free(
    ml: meterline.Meterline,
) -> None:
    ml.create_plan(key="school", name="School", currency="USD", features={"llm": {}})
    ml.create_customer(external_id="lincoln")
    ml.subscribe(customer="lincoln", plan="school", start_at="2026-01-01T00:00:00Z")
    ml.create_customer(external_id="pupil", parent="lincoln")
    plans: list[str | None] = []

    @ml.credit_cost("llm")
    def schools_are_free(usage: Usage) -> Decimal:
        plans.append(usage.plan)
        return Decimal(0) if usage.plan == "school" else usage.units / 1000

    pupil = ml.consume(customer="pupil", feature="llm", quantity=0, properties={"tokens": 4000})
    assert pupil.allowed  # the school has no credits at all, and needs none
    assert pupil.credits is not None
    assert pupil.credits.required == Decimal(0)
    paid = ml.consume(customer="acme", feature="llm", quantity=0, properties={"tokens": 4000})
    assert paid.credits is not None
    assert (paid.credits.required, paid.credits.balance) == (Decimal(4), Decimal(96))
    assert plans == ["school", "pro"]
    ml.close()
