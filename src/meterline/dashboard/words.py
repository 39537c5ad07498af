"""Plans in words: "50 free, then 0.05 USD each". Pure: no I/O."""

from __future__ import annotations

from decimal import Decimal

from meterline.kit.decimals import display_decimal
from meterline.plans.schemas import (
    CreditCost,
    Feature,
    Limit,
    PackagePrice,
    PerUnitPrice,
    Price,
    TieredPrice,
)


def _n(value: Decimal) -> str:
    return display_decimal(value)


def _units(unit: str | None) -> str:
    return f" {unit}s" if unit else ""


def _money(value: Decimal, currency: str) -> str:
    return f"{_n(value)} {currency}"


def _tier_range(below: Decimal, up_to: Decimal | None) -> str:
    if up_to is None:
        return f"above {_n(below)}" if below else "any amount"
    return f"{_n(below)} to {_n(up_to)}" if below else f"up to {_n(up_to)}"


def _tiers(price: TieredPrice, currency: str) -> str:
    parts = []
    below = Decimal(0)
    for tier in price.tiers:
        each = f"{_money(tier.unit_price, currency)} each"
        if tier.flat_price:
            each += f" + {_money(tier.flat_price, currency)} flat"
        parts.append(f"{_tier_range(below, tier.up_to)}: {each}")
        below = tier.up_to if tier.up_to is not None else below
    how = (
        "each tier prices its own units"
        if price.model == "graduated"
        else "all units at the tier the total reaches"
    )
    return f"{price.model} ({how}): " + "; ".join(parts)


def price_words(price: Price, currency: str, unit: str | None) -> str:
    if isinstance(price, PerUnitPrice):
        text = f"{_money(price.unit_price, currency)} each"
    elif isinstance(price, PackagePrice):
        size = f"{_n(price.package_size)}{_units(unit)}"
        text = f"{_money(price.package_price, currency)} per started package of {size}"
    else:
        text = _tiers(price, currency)
    if price.minimum is not None:
        text += f", at least {_money(price.minimum, currency)} a period"
    if price.maximum is not None:
        text += f", at most {_money(price.maximum, currency)} a period"
    return text


def limit_words(limit: Limit) -> str:
    window = "billing period" if limit.window == "period" else limit.window
    if limit.max is None:
        return f"unlimited per {window}"
    shares = ", ".join(f"{_n(share * 100)} %" for share in limit.alert_at)
    return f"{_n(limit.max)} per {window} ({limit.enforcement}; alerts at {shares})"


def credit_words(cost: CreditCost) -> str:
    text = f"{_n(cost.per_unit)} credits each"
    if cost.property and cost.values:
        others = ", ".join(f"{_n(v)} when {cost.property} is {k}" for k, v in cost.values.items())
        text += f" ({others})"
    return text


def feature_words(feature: Feature, currency: str, unit: str | None) -> list[str]:
    """One sentence per aspect of a plan's feature, in the order a reader wants them."""
    if not feature.enabled:
        return ["not available on this plan"]
    said = []
    if feature.price is None:
        free = f"{_n(feature.included)}{_units(unit)} included" if feature.included else ""
        said.append(free or "metered, not charged")
    elif feature.included:
        said.append(
            f"{_n(feature.included)}{_units(unit)} free, then "
            f"{price_words(feature.price, currency, unit)}"
        )
    else:
        said.append(price_words(feature.price, currency, unit))
    if feature.credit_cost is not None:
        said.append(credit_words(feature.credit_cost))
    said.extend(limit_words(limit) for limit in feature.limits)
    return said
