"""The arithmetic of what Stripe is sent: worked cases, then properties that hold for
any hourly totals and any late changes (Stripe's total is Meterline's rounded down,
nothing sent is negative, decreases are cancelled or shown as excess)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.billing_sync.deltas import (
    Cancel,
    Change,
    Event,
    Send,
    Series,
    identifier,
    minor_units,
    plan,
    retry_delay,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
H = [NOW - timedelta(hours=48 - i) for i in range(48)]


def D(text: str) -> Decimal:
    return Decimal(text)


def sends(found: list[Send | Cancel]) -> list[tuple[datetime, int]]:
    return [(a.hour, a.value) for a in found if isinstance(a, Send)]


def test_each_hour_sends_its_whole_units_and_carries_the_rest() -> None:
    series = Series(D(0), 0)
    first = plan(series, [Change(H[0], D(0), D("2.6")), Change(H[1], D(0), D("0.3"))], [], {}, NOW)
    assert sends(first.actions) == [(H[0], 2)]  # 2.6 → 2, then 2.9 → still 2
    second = plan(series, [Change(H[2], D(0), D("0.2"))], [], first.hour_sent, NOW)
    assert sends(second.actions) == [(H[2], 1)]  # 3.1 → 3: the carried 0.9 counts
    assert (series.measured, series.sent) == (D("3.1"), 3)
    assert second.hour_sent == {H[0]: 2, H[2]: 1}


def test_a_late_event_in_a_reported_hour_is_one_delta() -> None:
    series = Series(D(10), 10)
    found = plan(series, [Change(H[3], D(4), D(7))], [], {H[3]: 4}, NOW)
    assert sends(found.actions) == [(H[3], 3)]  # never the hour's whole 7 again
    assert found.hour_sent[H[3]] == 7


def test_a_duration_meter_reports_whole_hours_of_seconds() -> None:
    series = Series(D(0), 0, divisor=D(3600))
    found = plan(series, [Change(H[0], D(0), D(1200)) for _ in range(1)], [], {}, NOW)
    assert found.actions == []
    found = plan(series, [Change(H[1], D(0), D(2400))], [], {}, NOW)  # 20 + 40 minutes
    assert sends(found.actions) == [(H[1], 1)]


def test_a_decrease_cancels_the_hours_event_and_sends_the_rest_again() -> None:
    sent = Event("r1", H[5], 9, received_at=NOW - timedelta(hours=2))
    series = Series(D(9), 9)
    found = plan(series, [Change(H[5], D(9), D(6))], [sent], {H[5]: 9}, NOW)
    assert found.actions == [Cancel(sent), Send(H[5], 6)]
    assert (series.sent, found.hour_sent[H[5]]) == (6, 6)


def test_a_decrease_too_late_to_cancel_stays_as_excess_never_negative() -> None:
    old = Event("r1", H[5], 9, received_at=NOW - timedelta(days=2))
    series = Series(D(9), 9)
    found = plan(series, [Change(H[5], D(9), D(6))], [old], {H[5]: 9}, NOW)
    assert found.actions == []
    assert (series.sent, series.owed(), series.excess()) == (9, 6, 3)
    # Later usage is absorbed by the excess first: nothing is sent until it is used up.
    assert plan(series, [Change(H[6], D(0), D(2))], [old], {}, NOW).actions == []
    assert sends(plan(series, [Change(H[7], D(0), D(4))], [old], {}, NOW).actions) == [(H[7], 3)]


def test_a_rise_and_fall_in_one_run_nets_out() -> None:
    series = Series(D(0), 0)
    found = plan(series, [Change(H[0], D(0), D(5)), Change(H[1], D(3), D(0))], [], {}, NOW)
    # H[1] had 3 accounted before but nothing sent for it: the net is 2.
    assert sends(found.actions) == [(H[0], 2)]


@pytest.mark.parametrize(
    ("amount", "exponent", "minor"),
    [("35.48", 2, 3548), ("1000", 0, 1000), ("1.234", 3, 1234), ("0.00", 2, 0), ("49", 2, 4900)],
)
def test_minor_units(amount: str, exponent: int, minor: int) -> None:
    assert minor_units(D(amount), exponent) == minor


def test_minor_units_refuses_unrounded_amounts() -> None:
    with pytest.raises(ValueError, match="places"):
        minor_units(D("1.005"), 2)


def test_retry_delay_doubles_to_fifteen_minutes_and_honours_retry_after() -> None:
    waits = [retry_delay(n, None, 0).total_seconds() for n in (1, 2, 3, 10, 20)]
    assert waits == [2, 4, 8, 900, 900]
    assert retry_delay(1, 30, 0.1).total_seconds() == 30
    assert retry_delay(3, None, 0.2).total_seconds() == pytest.approx(9.6)


def test_identifiers_name_customer_meter_hour_and_revision() -> None:
    found = identifier("mlab12cd34", 7, 3, H[0], 2)
    assert found == f"mlab12cd34_7_3_{H[0]:%Y%m%d%H}_r2"
    assert len(identifier("x" * 10, 2**63, 2**63, H[0], 10**6)) <= 100


# -- properties ------------------------------------------------------------------------------

hours = st.integers(0, 11)
amounts = st.decimals(min_value=0, max_value=50, places=2, allow_nan=False, allow_infinity=False)
runs = st.lists(st.lists(st.tuples(hours, amounts), max_size=6), min_size=1, max_size=8)


def _drive(runs: list[list[tuple[int, Decimal]]], rising: bool, cancel_ok: bool) -> None:
    """Feed runs of (hour, new total) through ``plan`` as the aggregation would, keeping
    the live events as Stripe would hold them, and check the invariants after each run."""
    series = Series(D(0), 0)
    totals: dict[int, Decimal] = {}
    hour_sent: dict[datetime, int] = {}
    live: list[Event] = []
    counter = 0
    for run in runs:
        changes = {}
        for hour, amount in run:
            before = totals.get(hour, D(0))
            after = max(before, amount) if rising else amount
            changes[hour] = Change(
                H[hour], changes.get(hour, Change(H[hour], before, before)).before, after
            )
            totals[hour] = after
        sent_before = series.sent
        found = plan(series, list(changes.values()), live, hour_sent, NOW)
        for action in found.actions:
            if isinstance(action, Send):
                assert action.value > 0
                counter += 1
                received = None if cancel_ok else NOW - timedelta(days=3)
                live.append(Event(f"e{counter}", action.hour, action.value, received))
            else:
                assert cancel_ok, "nothing received days ago is cancelled"
                live.remove(action.event)
        hour_sent = found.hour_sent
        total = sum(totals.values(), D(0))
        assert series.measured == total
        assert sum(e.value for e in live) == series.sent
        assert all(v >= 0 for v in hour_sent.values())
        assert sum(hour_sent.values()) == series.sent
        if rising or cancel_ok:
            assert series.sent == int(total)  # floor: the total is never negative
            assert not rising or not any(isinstance(a, Cancel) for a in found.actions)
        else:
            assert series.sent == max(int(total), sent_before)  # excess, never negative
            assert series.excess() == series.sent - int(total)


@settings(max_examples=300, deadline=None)
@given(runs)
def test_rising_usage_sends_exactly_the_total_rounded_down(
    data: list[list[tuple[int, Decimal]]],
) -> None:
    _drive(data, rising=True, cancel_ok=False)


@settings(max_examples=300, deadline=None)
@given(runs)
def test_any_changes_with_cancellable_events_keep_stripe_at_the_floor(
    data: list[list[tuple[int, Decimal]]],
) -> None:
    _drive(data, rising=False, cancel_ok=True)


@settings(max_examples=300, deadline=None)
@given(runs)
def test_decreases_too_late_to_cancel_leave_only_excess(
    data: list[list[tuple[int, Decimal]]],
) -> None:
    _drive(data, rising=False, cancel_ok=False)


def test_the_client_side_rate_limit_spaces_requests() -> None:
    from meterline.billing_sync.stripe_client import RateLimit

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(25, clock=lambda: now[0], sleep=sleep)
    for _ in range(75):
        limit.take()
    # A second's burst of 25 at once, then one every 1/25 s: 75 requests take 2 s.
    assert now[0] == pytest.approx(2.0)
    assert len(slept) == 50
