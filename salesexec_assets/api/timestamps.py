"""The API's timestamp forms, parsed into naive UTC datetimes.

The contract allows 0 to 7 fractional digits, a ``Z``, a ``+hh:mm``/``-hh:mm`` offset, or
no zone at all (old records, which mean UTC). Python and DuckDB keep microseconds, so a
7th digit (100 ns) is truncated, never rounded: rounding could move an instant written at
23:59:59.9999999 into the next day and so into the next partition.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d{1,7}))?"
    r"(?P<zone>Z|z|[+-]\d{2}:?\d{2})?$"
)


# From Python 3.11, datetime.fromisoformat reads every form the regex admits: 7 digits
# (truncated to 6), "Z", "+hh:mm" and "+hhmm"; 3.10 needs the slower path below.
_FROMISOFORMAT_TAKES_EVERY_FORM = sys.version_info >= (3, 11)


class TimestampError(ValueError):
    """A value is not one of the timestamp forms the contract allows."""


def parse_api_timestamp(value: str) -> datetime:
    """Parse an API timestamp into a naive datetime in UTC (microsecond precision)."""
    if not isinstance(value, str):
        raise TimestampError(f"expected a timestamp string, got {type(value).__name__}")
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise TimestampError(f"not a timestamp the API contract allows: {value!r}")
    if _FROMISOFORMAT_TAKES_EVERY_FORM:  # one C call (this runs for every timestamp)
        try:
            parsed = datetime.fromisoformat(match[0])
        except ValueError as error:
            raise TimestampError(f"not a valid date, time or offset: {value!r}") from error
        return _in_utc(parsed, value)
    try:
        parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}")
    except ValueError as error:
        raise TimestampError(f"not a valid date or time: {value!r}") from error
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    parsed = parsed.replace(microsecond=int(fraction))
    zone = match["zone"]
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise TimestampError(f"not a valid UTC offset: {value!r}")
        offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return _in_utc(parsed.replace(tzinfo=offset), value)
    return parsed


def parse_api_timestamp_column(values: list[Any]) -> list[datetime | None] | None:
    """A column of API timestamps (None stays None) parsed as :func:`parse_api_timestamp`
    would, or None when one value needs that function's checks and messages.

    The plain forms of a whole column in one tight loop: this runs for every timestamp
    of every record, so it avoids a function call and a time-zone conversion per value.
    """
    if not _FROMISOFORMAT_TAKES_EVERY_FORM:
        return None
    match, fromisoformat = _TIMESTAMP.match, datetime.fromisoformat
    parsed: list[datetime | None] = []
    append = parsed.append
    try:
        for value in values:
            if value is None:
                append(None)
                continue
            if type(value) is not str or match(value) is None:
                return None
            if value[-1] == "Z":  # the usual form: read as naive, which means UTC
                append(fromisoformat(value[:-1]))
                continue
            instant = fromisoformat(value)
            offset = instant.utcoffset()
            append(instant if offset is None else (instant - offset).replace(tzinfo=None))
    except (ValueError, OverflowError):
        return None
    return parsed


def _in_utc(parsed: datetime, value: str) -> datetime:
    """``parsed`` as naive UTC; an offset that moves it past year 1 or 9999 (such as .NET's
    ``DateTime.MinValue`` written with a positive offset) is a TimestampError too, so that
    the record is quarantined rather than the run crashed."""
    try:
        return to_naive_utc(parsed)
    except OverflowError:
        raise TimestampError(f"an instant outside the representable range: {value!r}") from None


def format_api_instant(instant: datetime) -> str:
    """Format an instant as the API's query form: ISO-8601 UTC with ``Z``.

    A naive datetime is taken to be UTC already.
    """
    if instant.tzinfo is not None:
        instant = instant.astimezone(timezone.utc).replace(tzinfo=None)
    text = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond:06d}"
    return text + "Z"


def to_naive_utc(instant: datetime) -> datetime:
    """An aware datetime as naive UTC; a naive one is returned as is (already UTC)."""
    if instant.tzinfo is None:
        return instant
    return instant.astimezone(timezone.utc).replace(tzinfo=None)
