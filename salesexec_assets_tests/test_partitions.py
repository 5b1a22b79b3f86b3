"""A partition is a calendar day in the configured zone, sent to the API as UTC."""

from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesexec_assets.loading import row_bounded_groups
from salesexec_assets.partitions import consecutive_chunks, day_window_utc, local_day
from salesexec_assets.records import DayLocator


def test_utc_day_is_midnight_to_midnight() -> None:
    assert day_window_utc(date(2026, 11, 20), date(2026, 11, 20), "UTC") == (
        datetime(2026, 11, 20),
        datetime(2026, 11, 21),
    )


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 11, 2), 24)],
)
def test_daylight_saving_days_are_23_or_25_hours(day: date, hours: int) -> None:
    start, end = day_window_utc(day, day, "America/Chicago")
    assert end - start == timedelta(hours=hours)


zones = st.sampled_from(
    [
        "UTC",
        "America/Chicago",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Pacific/Chatham",
        "America/Sao_Paulo",
    ]
)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))


@given(days, zones)
def test_consecutive_days_tile_time_without_gaps_or_overlaps(day: date, zone: str) -> None:
    _, end = day_window_utc(day, day, zone)
    next_start, _ = day_window_utc(day + timedelta(days=1), day + timedelta(days=1), zone)
    assert end == next_start


@given(days, zones, st.floats(min_value=0, max_value=0.999999))
def test_every_instant_of_a_window_belongs_to_its_day(day: date, zone: str, share: float) -> None:
    start, end = day_window_utc(day, day, zone)
    instant = start + (end - start) * share
    assert local_day(instant, zone) == day
    assert local_day(end - timedelta(microseconds=1), zone) == day
    assert local_day(end, zone) == day + timedelta(days=1)


def midnight_exists(day: date, zone: str) -> bool:
    """False on the days a zone skips 00:00 (clocks jump from 00:00 to 01:00)."""
    wall = datetime.combine(day, time.min)
    there = wall.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
    return there.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == wall


@given(days, zones)
def test_window_starts_at_local_midnight(day: date, zone: str) -> None:
    """At 00:00; on a day without a 00:00 (a transition at midnight), at its first
    instant, right where the previous day ends. Only those days are exempt."""
    start, _ = day_window_utc(day, day, zone)
    local = start.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone))
    assert local.date() == day
    if midnight_exists(day, zone):
        assert (local.hour, local.minute) == (0, 0)
    else:
        assert local_day(start - timedelta(microseconds=1), zone) == day - timedelta(days=1)
        assert (local.hour, local.minute) == (1, 0)


def test_a_day_without_midnight_starts_when_its_clocks_jump() -> None:
    """Sao Paulo's clocks jumped from 00:00 to 01:00 on 2018-11-04 (a transition day)."""
    day = date(2018, 11, 4)
    assert not midnight_exists(day, "America/Sao_Paulo")
    assert midnight_exists(day + timedelta(days=1), "America/Sao_Paulo")
    start, end = day_window_utc(day, day, "America/Sao_Paulo")
    assert start == datetime(2018, 11, 4, 3, 0)  # 00:00 -03:00 = 01:00 -02:00
    assert end - start == timedelta(hours=23)


def test_ranges_are_cut_into_consecutive_chunks() -> None:
    run = [date(2026, 1, d) for d in (1, 2, 3, 4, 6)]
    assert [len(chunk) for chunk in consecutive_chunks(run, 3)] == [3, 1, 1]


@given(st.sets(days, max_size=20), st.integers(min_value=1, max_value=8))
def test_chunks_cover_the_days_once_in_order_each_consecutive_and_small_enough(
    chosen: set[date], size: int
) -> None:
    chunks = list(consecutive_chunks(list(chosen), size))
    assert [day for chunk in chunks for day in chunk] == sorted(chosen)
    for chunk in chunks:
        assert 1 <= len(chunk) <= size
        assert all(b - a == timedelta(days=1) for a, b in pairwise(chunk))


@given(days, st.integers(1, 10), zones, st.floats(min_value=-0.2, max_value=1.2))
def test_a_range_window_puts_every_instant_in_the_local_day_it_falls_in(
    first: date, count: int, zone: str, share: float
) -> None:
    """One API window serves a chunk of days; each record's instant is bucketed back into
    its local day (23- and 25-hour days included), and one outside the window into none."""
    chunk = [first + timedelta(days=n) for n in range(count)]
    start, end = day_window_utc(chunk[0], chunk[-1], zone)
    instant = start + (end - start) * share
    located = DayLocator(chunk, zone)(instant)
    if start <= instant < end:
        assert located == local_day(instant, zone)
    else:
        assert located is None


def test_a_chunk_is_written_in_groups_of_whole_days_of_bounded_rows() -> None:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(6)]
    rows = {days[0]: 30, days[1]: 30, days[2]: 90, days[4]: 10, days[5]: 10}  # day 3: none
    groups = row_bounded_groups(days, rows, max_rows=60)
    assert groups == [days[0:2], days[2:3], days[3:6]]  # a day above the bound: alone
    assert row_bounded_groups(days, {}, max_rows=1) == [days]
    assert row_bounded_groups([], rows, max_rows=60) == []


@given(
    st.lists(st.integers(min_value=0, max_value=100), max_size=15),
    st.integers(min_value=1, max_value=150),
)
def test_groups_cover_every_day_once_in_order_within_the_bound(
    counts: list[int], max_rows: int
) -> None:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(len(counts))]
    rows = dict(zip(days, counts, strict=True))
    groups = row_bounded_groups(days, rows, max_rows)
    assert [day for group in groups for day in group] == days
    for group in groups:
        total = sum(rows[day] for day in group)
        assert total <= max_rows or len(group) == 1
