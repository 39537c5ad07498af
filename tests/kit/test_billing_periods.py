"""Billing periods: anniversary and calendar, month ends, leap years, DST, half-open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.kit.periods import Anchor, Interval, billing_period

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        ("2026-01-31T05:00:00Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"),
        ("2026-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"),
        ("2026-03-30T23:59:59Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"),
        ("2026-03-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"),
        ("2028-02-29T03:00:00Z", "2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"),
    ],
)
def test_jan_31_anniversary_clamps_to_month_ends(moment: str, start: str, end: str) -> None:
    assert billing_period(
        t("2026-01-31T00:00:00Z"), "month", "anniversary", UTC_ZONE, t(moment)
    ) == (
        t(start),
        t(end),
    )


def test_leap_day_yearly_anniversary() -> None:
    anchor = t("2024-02-29T12:00:00Z")
    assert billing_period(anchor, "year", "anniversary", UTC_ZONE, t("2025-06-01T00:00:00Z")) == (
        t("2025-02-28T12:00:00Z"),
        t("2026-02-28T12:00:00Z"),
    )
    assert billing_period(anchor, "year", "anniversary", UTC_ZONE, t("2028-03-01T00:00:00Z"))[
        0
    ] == t("2028-02-29T12:00:00Z")


def test_calendar_periods_follow_the_customers_zone_and_cut_the_first_short() -> None:
    start = t("2026-03-10T09:30:00Z")
    # The first period starts at the subscription, ends at midnight April 1st in Berlin.
    assert billing_period(start, "month", "calendar", BERLIN, t("2026-03-20T00:00:00Z")) == (
        start,
        t("2026-03-31T22:00:00Z"),
    )
    # March in Berlin: 23:00Z Feb 28 (CET) to 22:00Z Mar 31 (CEST), an hour short.
    period = billing_period(
        t("2026-01-01T00:00:00Z"), "month", "calendar", BERLIN, t("2026-03-20T00:00:00Z")
    )
    assert period == (t("2026-02-28T23:00:00Z"), t("2026-03-31T22:00:00Z"))
    assert period[1] - period[0] == timedelta(days=31, hours=-1)


def test_daily_anniversary_period_across_dst_is_23_hours() -> None:
    start, end = billing_period(
        t("2026-01-10T00:00:00Z"), "day", "anniversary", BERLIN, t("2026-03-29T05:00:00Z")
    )
    assert (start, end) == (t("2026-03-29T00:00:00Z"), t("2026-03-29T23:00:00Z"))


def test_weekly_calendar_periods_start_on_monday() -> None:
    start, end = billing_period(
        t("2026-01-01T00:00:00Z"), "week", "calendar", UTC_ZONE, t("2026-11-21T10:00:00Z")
    )
    assert (start.weekday(), start, end - start) == (
        0,
        t("2026-11-16T00:00:00Z"),
        timedelta(days=7),
    )


@given(
    anchor=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(2040, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)),
    interval=st.sampled_from(["day", "week", "month", "year"]),
    kind=st.sampled_from(["calendar", "anniversary"]),
    zone=st.sampled_from(
        [UTC_ZONE, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kathmandu")]
    ),
)
def test_the_period_holds_the_moment_and_the_next_one_follows(
    anchor: datetime, offset: timedelta, interval: Interval, kind: Anchor, zone: ZoneInfo
) -> None:
    moment = anchor + offset
    start, end = billing_period(anchor, interval, kind, zone, moment)
    assert start <= moment < end
    assert start >= anchor
    following = billing_period(anchor, interval, kind, zone, end)
    assert following[0] == end  # periods tile time: no gap, no overlap
