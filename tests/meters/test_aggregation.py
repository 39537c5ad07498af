"""The pure aggregation core: contributions and mergeable states."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.meters.aggregation import (
    MeterSpec,
    State,
    ValueProblem,
    contribute,
    group_key,
    latest_key,
    matches,
)


def spec(aggregation: str, **kw: object) -> MeterSpec:
    return MeterSpec(id=1, key="m", event_type="t", aggregation=aggregation, **kw)  # type: ignore[arg-type]


def test_filter_equals_or_one_of() -> None:
    meter = spec("count", filter={"document": ["receipt", "invoice"], "region": "eu"})
    assert matches(meter, {"document": "receipt", "region": "eu"})
    assert not matches(meter, {"document": "letter", "region": "eu"})
    assert not matches(meter, {"document": "receipt"})
    assert not matches(spec("count", filter={"flag": 1}), {"flag": True})  # no bool/int mixing


def test_dotted_paths_and_numeric_strings() -> None:
    meter = spec("sum", value_property="usage.tokens")
    assert contribute(meter, Decimal(1), {"usage": {"tokens": "12.5"}}) is not None
    got = contribute(meter, Decimal(1), {"usage": {"tokens": "12.5"}})
    assert got is not None
    assert got.value == Decimal("12.5")
    with pytest.raises(ValueProblem) as missing:
        contribute(meter, Decimal(1), {"usage": {}})
    assert missing.value.code == "missing_value"
    with pytest.raises(ValueProblem) as bad:
        contribute(meter, Decimal(1), {"usage": {"tokens": "lots"}})
    assert bad.value.code == "invalid_value"


def test_group_keys_are_canonical() -> None:
    assert group_key(("b", "a"), {"a": 1, "b": "x"}) == group_key(("a", "b"), {"b": "x", "a": 1})
    assert group_key(("a",), {}) == '{"a":null}'
    assert group_key((), {"a": 1}) == ""


def test_long_or_nested_group_values_are_shortened_but_distinct() -> None:
    a = group_key(("doc",), {"doc": "x" * 5000})
    b = group_key(("doc",), {"doc": "x" * 4999 + "y"})
    nested = group_key(("doc",), {"doc": {"pages": list(range(500))}})
    assert a != b
    assert max(len(a), len(b), len(nested)) < 200
    assert group_key(("n",), {"n": 5}) == '{"n":5}'


def states_of(values: list[int]) -> State:
    state = State()
    for i, value in enumerate(values):
        state.add(Decimal(value), latest_key(f"2026-01-01T00:00:{i:02d}", i), str(value))
    return state


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=40), st.integers(0, 40))
def test_merging_parts_equals_the_whole(values: list[int], cut: int) -> None:
    whole = states_of(values)
    left, right = State(), State()
    for i, value in enumerate(values):
        target = left if i < cut else right
        target.add(Decimal(value), latest_key(f"2026-01-01T00:00:{i:02d}", i), str(value))
    left.merge(right)
    for aggregation in ("count", "sum", "min", "max", "avg", "unique_count", "latest"):
        assert left.result(spec(aggregation, value_property="v")) == whole.result(
            spec(aggregation, value_property="v")
        )


def test_avg_is_exact_not_an_average_of_averages() -> None:
    a, b = states_of([1, 2]), states_of([9])
    a.merge(b)
    assert a.result(spec("avg")) == Decimal(4)  # (1+2+9)/3, not (1.5+9)/2


def test_duration_is_reported_in_the_meter_unit() -> None:
    state = State()
    state.add(Decimal(5400), latest_key("t", 1), None)
    assert state.result(spec("duration", unit="hour")) == Decimal("1.5")
    assert state.result(spec("duration", unit="minute")) == Decimal(90)
