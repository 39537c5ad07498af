"""Time: the one clock, aware UTC only, and IANA time zone validation."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime


def utc_now() -> datetime:
    """The one clock of Meterline: an aware datetime in UTC, microsecond precision."""
    return datetime.now(UTC)


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
