"""Calendar arithmetic: window boundaries in a time zone, and rollup buckets.

Everything is half-open ``[start, end)``. Boundaries are computed on the local wall
clock with ``zoneinfo`` and returned in UTC, so days are 23 or 25 hours long across DST
changes and months have their real length.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Window = Literal["minute", "hour", "day", "month"]
WINDOWS: tuple[Window, ...] = ("minute", "hour", "day", "month")

# Every time zone in use today is offset from UTC by a multiple of 15 minutes, so
# 15-minute buckets in UTC tile every local hour, day and month exactly.
BUCKET_SECONDS = 900
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_floor(moment: datetime) -> datetime:
    """The start of the 15-minute bucket holding ``moment`` (UTC)."""
    seconds = (moment - _EPOCH) // timedelta(seconds=BUCKET_SECONDS) * BUCKET_SECONDS
    return _EPOCH + timedelta(seconds=seconds)


def bucket_ceil(moment: datetime) -> datetime:
    floor = bucket_floor(moment)
    return floor if floor == moment else floor + timedelta(seconds=BUCKET_SECONDS)


def is_bucket_aligned(moment: datetime) -> bool:
    return bucket_floor(moment) == moment


def window_floor(moment: datetime, window: Window, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the ``window`` in ``zone`` that holds ``moment``."""
    local = moment.astimezone(zone)
    if window == "minute":
        start = local.replace(second=0, microsecond=0)
    elif window == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    elif window == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=zone)
    return start.astimezone(UTC)


def next_window(start: datetime, window: Window, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the window after the one starting at ``start``."""
    if window == "minute":
        return start + timedelta(minutes=1)
    if window == "hour":
        # Step in absolute time, then re-align: correct through repeated and skipped
        # hours. Where clocks go back 30 minutes (Lord Howe), one hour ends 90 minutes
        # after it began, so a second step finds it.
        for hours in (1, 2):
            following = window_floor(start + timedelta(hours=hours), "hour", zone)
            if following > start:
                return following
        raise AssertionError("unreachable: two hours always reach the next local hour")
    local = start.astimezone(zone)
    if window == "day":
        day = local.date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def windows(
    start: datetime, end: datetime, window: Window | None, zone: ZoneInfo
) -> Iterator[tuple[datetime, datetime]]:
    """The windows covering ``[start, end)``, each clipped to it; one window if None."""
    if start >= end:
        return
    if window is None:
        yield start, end
        return
    current = window_floor(start, window, zone)
    while current < end:
        following = next_window(current, window, zone)
        yield max(current, start), min(following, end)
        current = following
