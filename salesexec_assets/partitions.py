"""Daily partitions and their windows: a calendar day in the configured zone, sent as UTC.

A day in ``America/Chicago`` is ``[00:00, next 00:00)`` local time: 23 or 25 hours on
daylight-saving days. The API filters on UTC instants, so every window is turned into
naive UTC datetimes here, and every record is put back into the day its instant falls in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dagster import DailyPartitionsDefinition

from salesexec_assets.settings import Settings

PARTITION_DATE_FORMAT = "%Y-%m-%d"


def build_daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """One partition per day from the start date up to and including today (end_offset=1)."""
    return DailyPartitionsDefinition(
        start_date=settings.start_date.strftime(PARTITION_DATE_FORMAT),
        timezone=settings.timezone,
        end_offset=1,
        fmt=PARTITION_DATE_FORMAT,
    )


def partition_date(key: str) -> date:
    return datetime.strptime(key, PARTITION_DATE_FORMAT).date()


def local_midnight_utc(day: date, zone: str) -> datetime:
    """The UTC instant (naive) at which ``day`` starts in ``zone``."""
    local = datetime.combine(day, time.min, tzinfo=ZoneInfo(zone))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def day_window_utc(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    """``[first 00:00, last+1 00:00)`` in ``zone``, as naive UTC instants."""
    return local_midnight_utc(first, zone), local_midnight_utc(last + timedelta(days=1), zone)


def local_day(instant_utc: datetime, zone: str) -> date:
    """The calendar day in ``zone`` that a naive-UTC instant falls in."""
    return instant_utc.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone)).date()


def today_in(zone: str, now: datetime | None = None) -> date:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(ZoneInfo(zone)).date()


def consecutive_chunks(days: Sequence[date], size: int) -> Iterator[list[date]]:
    """Split sorted days into runs of at most ``size`` consecutive days."""
    chunk: list[date] = []
    for day in sorted(days):
        if chunk and (len(chunk) >= size or day != chunk[-1] + timedelta(days=1)):
            yield chunk
            chunk = []
        chunk.append(day)
    if chunk:
        yield chunk
