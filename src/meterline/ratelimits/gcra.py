"""Request rates by the generic cell rate algorithm (pure arithmetic, no I/O).

A key is allowed ``burst`` requests at once and then one every ``interval_us``: its
state is a single number, the theoretical arrival time (TAT) of its next request. A
request at ``now`` is let through when ``max(tat, now) + interval - now`` stays within
``burst`` intervals, and then moves the TAT one interval on; a refused request changes
nothing. The same rule runs in SQL for the shared (database) limiter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

MICROS = 1_000_000


@dataclass(frozen=True)
class Rate:
    """``per_second`` requests a second on average, ``burst`` at once."""

    interval_us: int
    burst: int

    @classmethod
    def of(cls, per_second: float | Decimal, burst: int | None) -> Rate:
        """The rate of ``per_second`` requests a second, ``burst`` at once (None: the rate
        rounded up, at least 1)."""
        if per_second <= 0:
            raise ValueError("a rate is more than 0 requests a second")
        return cls(max(1, round(MICROS / per_second)), burst or max(1, math.ceil(per_second)))

    @property
    def per_second(self) -> float:
        return MICROS / self.interval_us

    @property
    def tolerance_us(self) -> int:
        """How far ahead of now the TAT may run after a request that is let through."""
        return self.interval_us * self.burst


@dataclass(frozen=True)
class Admission:
    allowed: bool
    tat_us: int  # the key's TAT after this request

    def retry_after(self, rate: Rate, now_us: int) -> int:
        """Whole seconds (at least 1) until a refused request would be let through."""
        wait_us = self.tat_us + rate.interval_us - rate.tolerance_us - now_us
        return max(1, math.ceil(wait_us / MICROS))


def admit(tat_us: int | None, now_us: int, rate: Rate) -> Admission:
    """Whether a request at ``now_us`` is within the rate, given the key's TAT (None:
    the key's first request)."""
    start = now_us if tat_us is None else max(tat_us, now_us)
    after = start + rate.interval_us
    if after - now_us <= rate.tolerance_us:
        return Admission(True, after)
    return Admission(False, start)  # refused: the TAT stays (start is the TAT here)
