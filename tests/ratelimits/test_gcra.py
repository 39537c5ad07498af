"""The rate rule by itself: a burst at once, then one request per interval."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterline.ratelimits.gcra import MICROS, Rate, admit

S = MICROS  # one second in microseconds


@pytest.mark.parametrize(
    ("per_second", "burst", "interval_us", "burst_used"),
    [
        (10, None, 100_000, 10),
        (0.5, None, 2 * S, 1),
        (2.5, None, 400_000, 3),
        (100, 7, 10_000, 7),
        # A key's own rate arrives as a Decimal (the API's bounds: 0.0001 to 1,000,000).
        (Decimal("2.5"), None, 400_000, 3),
        (Decimal("0.0001"), None, 10_000 * S, 1),
        (Decimal("1000000"), 3, 1, 3),
    ],
)
def test_a_rate_and_its_default_burst(
    per_second: float | Decimal, burst: int | None, interval_us: int, burst_used: int
) -> None:
    rate = Rate.of(per_second, burst)
    assert (rate.interval_us, rate.burst) == (interval_us, burst_used)


def test_a_burst_then_one_per_interval() -> None:
    rate = Rate.of(1, 3)  # one a second, three at once
    now, tat = 50 * S, None
    verdicts = []
    for _ in range(5):  # five at the same instant: three pass
        found = admit(tat, now, rate)
        verdicts.append(found.allowed)
        tat = found.tat_us
    assert verdicts == [True, True, True, False, False]
    refused = admit(tat, now, rate)
    assert refused.retry_after(rate, now) == 1
    assert admit(tat, now + S - 1, rate).allowed is False  # not quite a second later
    assert admit(tat, now + S, rate).allowed is True  # one interval on: one more
    # Long idle: the full burst again, never more.
    later = now + 3600 * S
    tat2 = tat
    passed = 0
    for _ in range(10):
        found = admit(tat2, later, rate)
        passed += found.allowed
        tat2 = found.tat_us
    assert passed == 3


def test_retry_after_is_whole_seconds_until_the_next_pass() -> None:
    rate = Rate.of(0.1, 2)  # one every 10 s, two at once
    now = 10 * S
    tat = admit(admit(None, now, rate).tat_us, now, rate).tat_us
    refused = admit(tat, now, rate)
    assert refused.allowed is False
    assert refused.retry_after(rate, now) == 10
    assert refused.retry_after(rate, now + 2_500_000) == 8  # 7.5 s rounds up
    assert admit(tat, now + 10 * S, rate).allowed is True
    fast = Rate.of(1000, 1)
    assert admit(fast.interval_us + now, now, fast).retry_after(fast, now) == 1  # never 0


def test_a_refusal_does_not_push_the_next_pass_further() -> None:
    rate = Rate.of(1, 1)
    tat = admit(None, 0, rate).tat_us
    for _ in range(100):
        refused = admit(tat, 10, rate)
        assert (refused.allowed, refused.tat_us) == (False, tat)
    assert admit(tat, S, rate).allowed is True
