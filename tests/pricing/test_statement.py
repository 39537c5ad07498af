"""Statements by table and property: base fees prorated by days (the issue's numbers),
usage rated by the plan at the period's end, totals that are sums of rounded lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.kit.periods import billing_period, full_period
from meterline.plans.schemas import PlanFields
from meterline.pricing.statement import Part, statement

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def plan(fee: str, name: str = "Pro", currency: str = "USD", **features: object) -> PlanFields:
    return PlanFields.model_validate(
        {"name": name, "currency": currency, "base_fee": fee, "features": features}
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


AUG = (at("2026-08-01T00:00:00"), at("2026-09-01T00:00:00"))
JAN = (at("2027-01-01T00:00:00"), at("2027-02-01T00:00:00"))


@pytest.mark.parametrize(
    ("parts", "full", "expected"),
    [
        # A 50 plan from the 10th of a 31-day month.
        ([("pro", "50", "2026-08-10T00:00:00", "2026-09-01T00:00:00")], AUG, ["35.48"]),
        # ... whatever the hour it started.
        ([("pro", "50", "2026-08-10T17:45:00", "2026-09-01T00:00:00")], AUG, ["35.48"]),
        # 100 → 200 on Jan 15: the old plan to the change day, the new one from it.
        (
            [
                ("basic", "100", "2027-01-01T00:00:00", "2027-01-15T00:00:00"),
                ("pro", "200", "2027-01-15T00:00:00", "2027-02-01T00:00:00"),
            ],
            JAN,
            ["45.16", "109.68"],
        ),
        # Canceled on Jan 20: charged to the cancellation day.
        ([("basic", "100", "2027-01-01T00:00:00", "2027-01-20T09:00:00")], JAN, ["61.29"]),
        # A whole period is the whole fee.
        ([("basic", "100", "2027-01-01T00:00:00", "2027-02-01T00:00:00")], JAN, ["100.00"]),
        # A free plan has no fee line.
        ([("free", "0", "2027-01-01T00:00:00", "2027-02-01T00:00:00")], JAN, []),
    ],
)
def test_base_fees_prorated_by_days(
    parts: list[tuple[str, str, str, str]], full: tuple[datetime, datetime], expected: list[str]
) -> None:
    found = statement(
        [Part(key, plan(fee, key.title()), at(s), at(e)) for key, fee, s, e in parts],
        full,
        UTC_ZONE,
        {},
        {},
    )
    assert [str(line.amount) for line in found.fees] == expected
    assert found.base_fee == sum((Decimal(x) for x in expected), Decimal(0))


def test_fee_line_describes_its_days_in_the_customers_zone() -> None:
    start = datetime(2026, 8, 10, tzinfo=BERLIN).astimezone(UTC)
    full = full_period(start, "month", "calendar", BERLIN, start)
    end = full[1]
    found = statement([Part("pro", plan("50"), start, end)], full, BERLIN, {}, {})
    (line,) = found.fees
    assert line.description == "Pro (Aug 10 \N{EN DASH} Sep 1)"
    assert (line.days, line.period_days, str(line.amount)) == (22, 31, "35.48")


def test_usage_is_rated_by_the_plan_at_the_end_of_the_period() -> None:
    cheap = plan("0", ocr={"included": "50", "price": {"model": "per_unit", "unit_price": "0.05"}})
    dear = plan(
        "0",
        ocr={"included": "10", "price": {"model": "per_unit", "unit_price": "0.10"}},
        sso={"enabled": False},
    )
    found = statement(
        [
            Part("cheap", cheap, JAN[0], at("2027-01-15T00:00:00")),
            Part("dear", dear, at("2027-01-15T00:00:00"), JAN[1]),
        ],
        JAN,
        UTC_ZONE,
        {"ocr": Decimal(75)},
        {"ocr": "scan"},
    )
    assert found.plan == "dear"
    rows = [(u.feature, u.unit, u.used, u.billable, u.amount, u.priced) for u in found.usage]
    assert rows == [
        ("ocr", "scan", Decimal(75), Decimal(65), Decimal("6.50"), True),
        ("sso", None, Decimal(0), Decimal(0), Decimal(0), False),
    ]
    assert found.total == Decimal("6.50")


def test_spec_example_total() -> None:
    pro = plan(
        "49.00", ocr={"included": "50", "price": {"model": "per_unit", "unit_price": "0.05"}}
    )
    found = statement([Part("pro", pro, *JAN)], JAN, UTC_ZONE, {"ocr": Decimal(75)}, {})
    assert (str(found.base_fee), str(found.total)) == ("49.00", "50.25")


prices = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False)


@given(
    fee=prices,
    unit=prices,
    used=st.decimals(min_value=0, max_value=1_000_000, places=3, allow_nan=False),
    change_day=st.integers(min_value=1, max_value=30),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_total_is_the_sum_of_rounded_lines(
    fee: Decimal, unit: Decimal, used: Decimal, change_day: int, currency: str
) -> None:
    feature = {"price": {"model": "per_unit", "unit_price": str(unit)}}
    old = plan(str(fee), currency=currency, a=feature)
    new = plan(str(fee * 2), currency=currency, a=feature, b=feature)
    change = JAN[0] + timedelta(days=change_day)
    found = statement(
        [Part("old", old, JAN[0], change), Part("new", new, change, JAN[1])],
        JAN,
        UTC_ZONE,
        {"a": used, "b": used},
        {},
    )
    lines = [line.amount for line in found.fees] + [line.amount for line in found.usage]
    assert found.total == sum(lines, Decimal(0))
    for amount in lines:
        assert amount >= 0
        assert amount == amount.quantize(
            Decimal(1).scaleb(-{"USD": 2, "JPY": 0, "KWD": 3}[currency])
        )
    if fee > 0:  # the days split at the change add up to the period
        assert [line.days for line in found.fees] == [change_day, 31 - change_day]


@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2030, 12, 31),  # noqa: DTZ001
        timezones=st.just(BERLIN),
    ),
    interval=st.sampled_from(["day", "week", "month", "year"]),
)
def test_whole_periods_cost_the_whole_fee(start: datetime, interval: str) -> None:
    period = billing_period(start, interval, "anniversary", BERLIN, start)  # type: ignore[arg-type]
    found = statement([Part("p", plan("99.99"), *period)], period, BERLIN, {}, {})
    assert found.base_fee == Decimal("99.99")
