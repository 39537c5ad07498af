"""Windows in a time zone: half-open, DST-safe, tiling the range exactly."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from meterline.kit.periods import (
    BUCKET_SECONDS,
    WINDOWS,
    bucket_ceil,
    bucket_floor,
    is_bucket_aligned,
    windows,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_days_across_dst_are_23_and_25_hours() -> None:
    spring = list(windows(utc(2026, 3, 28, 23), utc(2026, 3, 30, 22), "day", BERLIN))
    assert spring[0] == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert spring[0][1] - spring[0][0] == timedelta(hours=23)
    autumn = list(windows(utc(2026, 10, 24, 22), utc(2026, 10, 26, 23), "day", BERLIN))
    assert autumn[0] == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert autumn[0][1] - autumn[0][0] == timedelta(hours=25)


def test_the_repeated_hour_is_two_windows() -> None:
    hours = list(windows(utc(2026, 10, 24, 23), utc(2026, 10, 25, 3), "hour", BERLIN))
    assert len(hours) == 4  # 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET
    assert all(end - start == timedelta(hours=1) for start, end in hours)


def test_months_have_their_real_length_in_the_zone() -> None:
    months = list(windows(utc(2026, 1, 15), utc(2026, 4, 1), "month", BERLIN))
    assert months[1] == (utc(2026, 1, 31, 23), utc(2026, 2, 28, 23))
    assert months[0][0] == utc(2026, 1, 15)  # clipped to the range


def test_quarter_hour_zones_align_to_buckets() -> None:
    kathmandu = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
    for start, _ in windows(utc(2026, 11, 1), utc(2026, 11, 5), "day", kathmandu):
        if start != utc(2026, 11, 1):
            assert start.minute == 15
            assert is_bucket_aligned(start)


def test_bucket_floor_and_ceil() -> None:
    moment = utc(2026, 11, 21, 10, 7, 30)
    assert bucket_floor(moment) == utc(2026, 11, 21, 10, 0)
    assert bucket_ceil(moment) == utc(2026, 11, 21, 10, 15)
    assert bucket_ceil(utc(2026, 11, 21, 10, 15)) == utc(2026, 11, 21, 10, 15)
    assert BUCKET_SECONDS == 900


@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
        max_value=datetime(2030, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    hours=st.integers(min_value=1, max_value=24 * 70),
    window=st.sampled_from([None, *WINDOWS[1:]]),
    zone=st.sampled_from(
        [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "America/St_Johns",
        ]
    ),
)
def test_windows_tile_the_range(start: datetime, hours: int, window: str | None, zone: str) -> None:
    end = start + timedelta(hours=hours)
    spans = list(windows(start, end, window, ZoneInfo(zone)))  # type: ignore[arg-type]
    assert spans[0][0] == start
    assert spans[-1][1] == end
    for (_, a_end), (b_start, _) in itertools.pairwise(spans):
        assert a_end == b_start
    assert all(s < e for s, e in spans)


def test_lord_howe_half_hour_fall_back_makes_a_90_minute_hour() -> None:
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # 2026-04-05 02:00 +11:00 → 01:30 +10:30
    hours = list(windows(utc(2026, 4, 4, 14), utc(2026, 4, 4, 17), "hour", lord_howe))
    assert hours[0] == (utc(2026, 4, 4, 14), utc(2026, 4, 4, 15, 30))
    assert hours[1] == (utc(2026, 4, 4, 15, 30), utc(2026, 4, 4, 16, 30))
