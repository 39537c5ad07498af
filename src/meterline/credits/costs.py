"""What usage costs in credits (SPEC §3 ``credit_cost``), and custom strategies.

A plan feature's ``credit_cost`` prices each unit the meter counts: ``per_unit``,
or the price named by one property's value (``{"property": "depth", "values":
{"advanced": "25"}}``). In library mode a Python function may price a feature instead
(``Strategy``): it is asked with the usage and answers the credits it costs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from meterline.errors import MeterlineError
from meterline.kit.decimals import CONTEXT, ZERO
from meterline.meters.aggregation import MeterSpec, lookup, unit_divisor
from meterline.plans.schemas import CreditCost


@dataclass(frozen=True)
class Usage:
    """Usage to price: ``units`` in the meter's unit (1 per event for a count meter);
    ``plan``, the key of the billing customer's plan in force (a strategy may charge
    one plan's customers and not another's: a school's pupils, say)."""

    feature: str
    customer: str
    units: Decimal
    quantity: Decimal
    properties: dict[str, Any]
    plan: str | None = None


Strategy = Callable[[Usage], Decimal | int | str]
Strategies = Mapping[str, Strategy]  # feature (meter key) → strategy


class StrategyFailed(MeterlineError):
    """A registered strategy raised or answered something that is not credits (a bug in
    the strategy: the call fails and changes nothing)."""

    code = "credit_cost_failed"
    title = "Credit cost failed"


def _key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def unit_price(cost: CreditCost, properties: dict[str, Any]) -> Decimal:
    """Credits per unit for usage with these properties."""
    if cost.property is not None and cost.values:
        key = _key(lookup(properties, cost.property))
        if key is not None and key in cost.values:
            return cost.values[key]
    return cost.per_unit


def priced(
    cost: CreditCost | None,
    strategy: Strategy | None,
    spec: MeterSpec,
    customer: str,
    raw: Decimal,
    quantity: Decimal,
    properties: dict[str, Any],
    plan: str | None = None,
) -> Decimal:
    """The credits of usage that adds ``raw`` to the meter (0: no credit cost) under
    the plan keyed ``plan``."""
    if strategy is None and cost is None:
        return ZERO
    units = CONTEXT.divide(raw, unit_divisor(spec))
    if strategy is not None:
        try:
            usage = Usage(spec.key, customer, units, quantity, properties, plan)
            found = Decimal(str(strategy(usage)))
        except Exception as exc:
            raise StrategyFailed(f"credit cost of {spec.key!r}: {exc}") from exc
        if not found.is_finite() or found < 0:
            raise StrategyFailed(f"credit cost of {spec.key!r} is {found}, not credits")
        return found
    assert cost is not None
    return CONTEXT.multiply(units, unit_price(cost, properties))
