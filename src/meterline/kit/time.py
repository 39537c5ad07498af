"""Time: the one clock, aware UTC only, and IANA time zone validation."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


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


# Every time a client sends is held to these years: far enough for any real usage,
# subscription or expiry, near enough that no conversion (to UTC, to a time zone, one
# interval on) can leave Python's or a database's range.
MIN_YEAR = 1970
MAX_YEAR = 9000
_EARLIEST = datetime(MIN_YEAR, 1, 1, tzinfo=UTC)
_LATEST = datetime(MAX_YEAR, 1, 1, tzinfo=UTC)


class TimeOutOfRange(ValueError):
    """A client's time without an offset, or outside years 1970-9000 (``code`` says which)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def bounded(value: datetime) -> datetime:
    """A time a client sent, checked and in UTC: the one gate for every date from outside
    (event timestamps, query bounds, expiries, start dates). Refuses naive values
    (``invalid_timestamp``) and values outside ``[1970-01-01, 9000-01-01)`` UTC
    (``timestamp_out_of_range``), without ever overflowing on the way."""
    offset = value.utcoffset()
    if offset is None:
        raise TimeOutOfRange("invalid_timestamp", "the time has no UTC offset (add Z or +01:00)")
    if not MIN_YEAR <= value.year < MAX_YEAR or abs(offset) >= timedelta(days=1):
        raise TimeOutOfRange("timestamp_out_of_range", _OUT_OF_RANGE)
    utc = (value.replace(tzinfo=None) - offset).replace(tzinfo=UTC)
    if not _EARLIEST <= utc < _LATEST:
        raise TimeOutOfRange("timestamp_out_of_range", _OUT_OF_RANGE)
    return utc


_OUT_OF_RANGE = f"times must lie between {MIN_YEAR}-01-01 and {MAX_YEAR}-01-01 (UTC)"
