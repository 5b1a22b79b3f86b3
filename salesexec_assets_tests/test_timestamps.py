"""The API's timestamp forms all parse to the same UTC instant."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesexec_assets.api.timestamps import (
    TimestampError,
    format_api_instant,
    parse_api_timestamp,
    parse_api_timestamp_column,
)

INSTANT = datetime(2017, 12, 29, 21, 3, 56, 206157)


@pytest.mark.parametrize(
    "text",
    [
        "2017-12-29T21:03:56.2061577Z",  # .NET round-trip: 7 digits, the 7th truncated
        "2017-12-29T21:03:56.206157Z",
        "2017-12-29T21:03:56.206157",  # no zone: UTC
        "2017-12-29T16:03:56.2061579-05:00",
        "2017-12-30T02:33:56.206157+05:30",
        "2017-12-30T02:33:56.206157+0530",
    ],
)
def test_every_contract_form_parses_to_the_same_utc_instant(text: str) -> None:
    assert parse_api_timestamp(text) == INSTANT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T00:00:00Z", datetime(2026, 11, 20)),
        ("2026-11-20T23:59:59.9999999Z", datetime(2026, 11, 20, 23, 59, 59, 999999)),
        ("2026-11-20T10:00:00.5Z", datetime(2026, 11, 20, 10, 0, 0, 500000)),
        ("2026-11-20T10:00:00.123Z", datetime(2026, 11, 20, 10, 0, 0, 123000)),
    ],
)
def test_fraction_digits_from_zero_to_seven(text: str, expected: datetime) -> None:
    assert parse_api_timestamp(text) == expected


def test_seventh_digit_is_truncated_so_the_last_tick_of_a_day_stays_in_that_day() -> None:
    assert parse_api_timestamp("2026-11-20T23:59:59.9999999Z").date().day == 20


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-20", "2026-11-20T10:00:00+25:00", 17]
)
def test_anything_else_is_a_clear_error(text: object) -> None:
    with pytest.raises(TimestampError):
        parse_api_timestamp(text)  # type: ignore[arg-type]


instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60)


@given(instants, offsets, st.integers(min_value=0, max_value=9))
def test_any_offset_form_round_trips_to_the_instant(
    instant: datetime, offset_minutes: int, extra_tick: int
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = instant.replace(tzinfo=timezone.utc).astimezone(zone)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}{extra_tick}"
    text += f"{sign}{hours:02d}:{minutes:02d}"
    assert parse_api_timestamp(text) == instant


@given(instants)
def test_query_format_round_trips(instant: datetime) -> None:
    assert parse_api_timestamp(format_api_instant(instant)) == instant


TIMESTAMP_SHAPED = st.from_regex(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:?\d{2})?", fullmatch=True
)


@given(st.one_of(st.text(max_size=40), TIMESTAMP_SHAPED))
def test_any_text_is_a_naive_utc_instant_or_a_timestamp_error_never_another_error(
    text: str,
) -> None:
    """A record's bad timestamp must be quarantined (records.py catches TimestampError),
    never crash the run: no other exception may escape, whatever the text."""
    try:
        parsed = parse_api_timestamp(text)
    except TimestampError:
        return
    assert parsed.tzinfo is None


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_outside_the_representable_range_is_a_timestamp_error(text: str) -> None:
    with pytest.raises(TimestampError, match="range"):
        parse_api_timestamp(text)


@given(st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=30), TIMESTAMP_SHAPED)))
def test_a_column_parses_to_what_each_value_parses_to_or_asks_for_the_value_path(
    values: list[object],
) -> None:
    """The column fast path may decline (None), but never disagrees with the reference."""
    parsed = parse_api_timestamp_column(values)
    if parsed is None:
        return
    assert parsed == [None if value is None else parse_api_timestamp(value) for value in values]


def test_a_column_of_every_contract_form_takes_the_fast_path() -> None:
    forms = [
        "2017-12-29T21:03:56.2061577Z",
        "2017-12-29T21:03:56.206157",
        "2017-12-29T16:03:56.2061579-05:00",
        "2017-12-30T02:33:56.206157+0530",
        None,
    ]
    assert parse_api_timestamp_column(forms) == [INSTANT] * 4 + [None]
