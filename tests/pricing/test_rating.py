"""Rating: the worked numbers of the field, table by table, and properties that hold
for any price and quantity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.plans.schemas import Feature
from meterline.pricing.rating import rate, round_money

GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"up_to": "10", "unit_price": "10", "flat_price": "2"},
        {"up_to": "20", "unit_price": "5", "flat_price": "3"},
        {"up_to": None, "unit_price": "5", "flat_price": "3"},
    ],
}
VOLUME = {
    "model": "volume",
    "tiers": [
        {"up_to": "100", "unit_price": "1", "flat_price": "5"},
        {"up_to": "1000", "unit_price": "0.5"},
        {"up_to": None, "unit_price": "0.25"},
    ],
}


def feature(price: dict[str, Any] | None, included: str = "0") -> Feature:
    return Feature.model_validate({"included": included, "price": price})


@pytest.mark.parametrize(
    ("used", "amount"),
    [("0", "2"), ("1", "12"), ("10", "102"), ("11", "110"), ("20", "155"), ("21", "163")],
)
def test_graduated(used: str, amount: str) -> None:
    assert rate(feature(GRADUATED), Decimal(used), "USD").amount == Decimal(amount)


@pytest.mark.parametrize(
    ("used", "amount"),
    [("0", "5"), ("100", "105"), ("101", "50.50"), ("1000", "500"), ("1001", "250.25")],
)
def test_volume_prices_everything_at_one_tier(used: str, amount: str) -> None:
    assert rate(feature(VOLUME), Decimal(used), "USD").amount == Decimal(amount)


@pytest.mark.parametrize(
    ("price", "included", "used", "billable", "amount"),
    [
        # 75 used, 50 free, 0.05 each
        ({"model": "per_unit", "unit_price": "0.05"}, "50", "75", "25", "1.25"),
        ({"model": "per_unit", "unit_price": "0.05"}, "50", "40", "0", "0"),
        # package 5 per 100 with 100 free, at 201 units
        (
            {"model": "package", "package_size": "100", "package_price": "5"},
            "100",
            "201",
            "101",
            "10",
        ),
        (
            {"model": "package", "package_size": "100", "package_price": "5"},
            "100",
            "200",
            "100",
            "5",
        ),
        ({"model": "package", "package_size": "100", "package_price": "5"}, "0", "0", "0", "0"),
        # minimum and maximum per period
        ({"model": "per_unit", "unit_price": "1", "minimum": "10"}, "0", "3", "3", "10"),
        ({"model": "per_unit", "unit_price": "1", "maximum": "10"}, "0", "30", "30", "10"),
        (None, "0", "30", "30", "0"),
    ],
)
def test_models(
    price: dict[str, Any] | None, included: str, used: str, billable: str, amount: str
) -> None:
    line = rate(feature(price, included), Decimal(used), "USD")
    assert (line.billable, line.amount) == (Decimal(billable), Decimal(amount))


@pytest.mark.parametrize(
    ("currency", "raw", "rounded"),
    [
        ("USD", "1.005", "1.01"),  # half up, not half even
        ("USD", "1.004999", "1.00"),
        ("JPY", "12.5", "13"),
        ("KWD", "0.0005", "0.001"),
        ("KWD", "1.2344", "1.234"),
    ],
)
def test_rounding_to_the_currency(currency: str, raw: str, rounded: str) -> None:
    assert str(round_money(Decimal(raw), currency)) == rounded
    line = rate(feature({"model": "per_unit", "unit_price": raw}), Decimal(1), currency)
    assert str(line.amount) == rounded


prices = st.decimals(min_value=0, max_value=1000, places=4)
quantities = st.decimals(min_value=0, max_value=100_000, places=3)
tiers = st.lists(
    st.tuples(st.decimals(min_value=1, max_value=500, places=0), prices, prices),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
)


def _tiered(model: str, raw: list[tuple[Decimal, Decimal, Decimal]]) -> dict[str, Any]:
    ordered = sorted(raw)
    bounds: list[Decimal | None] = [b for b, _, _ in ordered[:-1]]
    bounds.append(None)
    return {
        "model": model,
        "tiers": [
            {"up_to": None if b is None else str(b), "unit_price": str(u), "flat_price": str(f)}
            for b, (_, u, f) in zip(bounds, ordered, strict=True)
        ],
    }


@given(raw=tiers, q=quantities, more=quantities, model=st.sampled_from(["graduated", "volume"]))
def test_tiered_amounts_are_never_negative(
    raw: list[tuple[Decimal, Decimal, Decimal]], q: Decimal, more: Decimal, model: str
) -> None:
    line = rate(feature(_tiered(model, raw)), q, "USD")
    assert line.amount >= 0
    assert line.amount == round_money(line.amount, "USD")


@given(raw=tiers, q=quantities, more=quantities)
def test_graduated_is_monotonic_in_quantity(
    raw: list[tuple[Decimal, Decimal, Decimal]], q: Decimal, more: Decimal
) -> None:
    price = feature(_tiered("graduated", raw))
    assert rate(price, q, "USD").amount <= rate(price, q + more, "USD").amount


@given(q=quantities, unit=prices, included=quantities)
def test_per_unit_is_billable_times_price(q: Decimal, unit: Decimal, included: Decimal) -> None:
    line = rate(feature({"model": "per_unit", "unit_price": str(unit)}, str(included)), q, "EUR")
    assert line.billable == max(Decimal(0), q - included)
    assert line.amount == round_money(line.billable * unit, "EUR")
