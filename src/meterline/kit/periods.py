"""Calendar arithmetic: window boundaries in a time zone, and rollup buckets.

Everything is half-open ``[start, end)``. Boundaries are computed on the local wall
clock with ``zoneinfo`` and returned in UTC, so days are 23 or 25 hours long across DST
changes and months have their real length.
"""

from __future__ import annotations

from calendar import monthrange
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
    if moment.tzinfo is UTC:  # the common case, without timedelta arithmetic
        return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
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


# -- billing periods -------------------------------------------------------------------

Interval = Literal["day", "week", "month", "year"]
Anchor = Literal["calendar", "anniversary"]


def _local_start(anchor: datetime, interval: Interval, steps: int) -> datetime:
    """The wall-clock start of period ``steps`` after ``anchor`` (a local, aware time).
    Months and years count from the anchor itself, never from the previous period, so
    a Jan 31 anchor gives Feb 28 (29), then Mar 31."""
    if interval == "day":
        day = anchor.date() + timedelta(days=steps)
    elif interval == "week":
        day = anchor.date() + timedelta(weeks=steps)
    else:
        months = steps * (12 if interval == "year" else 1)
        index = anchor.year * 12 + anchor.month - 1 + months
        year, month = divmod(index, 12)
        month += 1
        last = monthrange(year, month)[1]
        return anchor.replace(year=year, month=month, day=min(anchor.day, last))
    return anchor.replace(year=day.year, month=day.month, day=day.day)


def _steps_between(anchor: datetime, moment: datetime, interval: Interval) -> int:
    """A first guess of how many periods lie between two local times."""
    if interval == "day":
        return (moment.date() - anchor.date()).days
    if interval == "week":
        return (moment.date() - anchor.date()).days // 7
    months = (moment.year - anchor.year) * 12 + moment.month - anchor.month
    return months // 12 if interval == "year" else months


def _calendar_anchor(moment: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    """The calendar boundary at or before ``moment`` (local midnight of the day, the
    Monday, the 1st of the month or of January)."""
    local = moment.astimezone(zone)
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    elif interval == "year":
        day = day.replace(month=1, day=1)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def billing_period(
    anchor: datetime, interval: Interval, kind: Anchor, zone: ZoneInfo, moment: datetime
) -> tuple[datetime, datetime]:
    """The billing period ``[start, end)`` (UTC) holding ``moment``.

    ``anniversary`` periods start at the anchor's local wall time, stepped by whole
    intervals; ``calendar`` periods start on calendar boundaries in ``zone``, the first
    one cut short at the anchor. Local times become UTC through ``zoneinfo``, so a
    period across a DST change is an hour shorter or longer.
    """
    start, end = full_period(anchor, interval, kind, zone, moment)
    return (max(start, anchor), end) if kind == "calendar" else (start, end)


def full_period(
    anchor: datetime, interval: Interval, kind: Anchor, zone: ZoneInfo, moment: datetime
) -> tuple[datetime, datetime]:
    """The whole billing period holding ``moment``: a calendar period not cut at the
    anchor (what a partial period's fee is prorated against)."""
    if kind == "calendar":
        base = _calendar_anchor(moment, interval, zone)
        return base.astimezone(UTC), _local_start(base, interval, 1).astimezone(UTC)
    local_anchor = anchor.astimezone(zone)
    steps = _steps_between(local_anchor, moment.astimezone(zone), interval)
    while _local_start(local_anchor, interval, steps).astimezone(UTC) > moment:
        steps -= 1
    while _local_start(local_anchor, interval, steps + 1).astimezone(UTC) <= moment:
        steps += 1
    return (
        _local_start(local_anchor, interval, steps).astimezone(UTC),
        _local_start(local_anchor, interval, steps + 1).astimezone(UTC),
    )


def local_days(start: datetime, end: datetime, zone: ZoneInfo) -> int:
    """Days from ``start``'s local date to ``end``'s (the unit of proration): a span
    from the 10th to the 1st of the next 31-day month is 22 days, whatever the hours
    and DST changes in between."""
    return (end.astimezone(zone).date() - start.astimezone(zone).date()).days
