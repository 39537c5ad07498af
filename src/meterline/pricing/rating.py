"""Rating (SPEC §3): what a period's usage of a feature costs. Pure: no I/O, no clock.

``billable = max(0, used - included)`` is priced by the feature's model:

- ``per_unit``: billable * unit_price;
- ``package``: ceil(billable / package_size) * package_price;
- ``graduated``: each tier prices the units that fall in ``(previous up_to, up_to]``,
  plus its flat price once reached;
- ``volume``: all billable units at the one tier whose range holds the quantity, plus
  that tier's flat price;
- in both tiered models the first tier is reached at zero usage (its flat price is
  charged even then);

then held between the optional ``minimum`` and ``maximum`` for the period, and rounded
half-up to the currency's ISO 4217 exponent (JPY 0, USD 2, KWD 3). Totals are sums of
rounded lines. Arithmetic is exact ``Decimal`` throughout (``kit.decimals.CONTEXT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from meterline.kit.decimals import CONTEXT, ZERO
from meterline.kit.money import exponent
from meterline.plans.schemas import Feature, PackagePrice, PerUnitPrice, Price, TieredPrice


@dataclass(frozen=True)
class Rated:
    """One feature's line for a period."""

    used: Decimal
    included: Decimal
    billable: Decimal
    amount: Decimal  # rounded to the currency


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit (a code without one: whole units)."""
    places = exponent(currency) or 0
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=CONTEXT)


def _graduated(price: TieredPrice, quantity: Decimal) -> Decimal:
    total = ZERO
    below = ZERO
    for index, tier in enumerate(price.tiers):
        if index > 0 and quantity <= below:
            break
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = max(ZERO, CONTEXT.subtract(top, below))
        total = CONTEXT.add(
            total, CONTEXT.add(CONTEXT.multiply(units, tier.unit_price), tier.flat_price)
        )
        if tier.up_to is None:
            break
        below = tier.up_to
    return total


def _volume(price: TieredPrice, quantity: Decimal) -> Decimal:
    tier = next(t for t in price.tiers if t.up_to is None or quantity <= t.up_to)
    return CONTEXT.add(CONTEXT.multiply(quantity, tier.unit_price), tier.flat_price)


def price_of(price: Price, billable: Decimal) -> Decimal:
    """The unrounded amount of ``billable`` units, held between minimum and maximum."""
    if isinstance(price, PerUnitPrice):
        amount = CONTEXT.multiply(billable, price.unit_price)
    elif isinstance(price, PackagePrice):
        packages = CONTEXT.divide(billable, price.package_size).to_integral_value(
            rounding=ROUND_CEILING
        )
        amount = CONTEXT.multiply(packages, price.package_price)
    elif price.model == "graduated":
        amount = _graduated(price, billable)
    else:
        amount = _volume(price, billable)
    if price.minimum is not None:
        amount = max(amount, price.minimum)
    if price.maximum is not None:
        amount = min(amount, price.maximum)
    return amount


def rate(feature: Feature, used: Decimal, currency: str) -> Rated:
    """The period's line for a feature that measured ``used`` (in the meter's unit)."""
    billable = max(ZERO, CONTEXT.subtract(used, feature.included))
    amount = ZERO if feature.price is None else price_of(feature.price, billable)
    return Rated(used, feature.included, billable, round_money(amount, currency))
