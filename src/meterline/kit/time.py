"""Time: the one clock, aware UTC only, and IANA time zone validation."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_clock


def utc_now() -> datetime:
    """The one clock of Meterline: an aware datetime in UTC, microsecond precision."""
    return _clock()


@contextmanager
def clock(source: Callable[[], datetime]) -> Iterator[None]:
    """Read time from ``source`` inside the block (tests move it across period ends).
    The whole process sees it: only for tests and benchmarks, never for serving."""
    global _clock
    before = _clock
    _clock = source
    try:
        yield
    finally:
        _clock = before


class Clock:
    """A clock that stands still until moved: ``with kit.time.clock(Clock(t)) as ...``."""

    def __init__(self, now: datetime) -> None:
        self.now = as_utc(now)

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = as_utc(now)


def as_utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; a naive one is a programming error.

    SQLite hands back naive datetimes for columns that were written as UTC, so those
    are read as UTC; that is the only place naive values may come from.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_valid_timezone(name: str) -> bool:
    """True when ``name`` is an IANA zone name (``Europe/Berlin``, ``UTC``)."""
    return name in _zone_names()
