"""Ground truth helpers: what the sandbox holds, in the same shape as what was read,
the warehouse rows it must become, and what a warehouse table holds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import parse_api_timestamp, to_naive_utc
from salesexec_assets.naming import field_column, snake_case
from salesexec_assets_tests.destinations import Destination


def canonical_record(report: contract.Report, record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API sent it, with its timestamps parsed to naive UTC."""
    return {
        name: parse_api_timestamp(value)
        if value is not None and report.record.get(name) is contract.FieldType.TIMESTAMP
        else value
        for name, value in record.items()
    }


def truth_rows(
    server: Any,
    report: contract.Report,
    lead_type: int,
    start: datetime,
    end: datetime,
    as_of: int | None = None,
) -> list[dict[str, Any]]:
    """The records the sandbox holds for the report in ``[start, end)`` (at data version
    ``as_of``, when given: before the leads that offset drift inserted later)."""
    return server.truth(report.name, lead_type, start, end, as_of)


# --- expected warehouse rows -------------------------------------------------------------
# Written from the connector spec, not from records.py: a record becomes one row whose
# columns are its API fields in snake_case, plus ``partition_date``; a lead's ``Fields``
# object is kept whole in ``fields`` (compared as parsed JSON) and flattened into one
# ``field_<snake>`` column per field.

METADATA_COLUMNS = ("_loaded_at", "_run_id")


def expected_rows(
    report: contract.Report, records: Iterable[dict[str, Any]], day: date
) -> list[dict[str, Any]]:
    """The table rows that canonical ``records`` of partition ``day`` must become."""
    rows = []
    for record in records:
        row: dict[str, Any] = {}
        for name, value in record.items():
            if name == contract.LEAD_FIELDS_OBJECT:
                row[snake_case(name)] = value
                row.update({field_column(field): item for field, item in value.items()})
            else:
                row[snake_case(name)] = value
        row["partition_date"] = day
        rows.append(row)
    return rows


def local_day_window_utc(day: date, zone: str) -> tuple[datetime, datetime]:
    """``[day 00:00, next day 00:00)`` in ``zone`` as naive UTC instants."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return to_naive_utc(start), to_naive_utc(end)


def expected_day(
    server: Any,
    report: contract.Report,
    lead_types: Iterable[int],
    day: date,
    zone: str = "UTC",
    as_of: int | None = None,
) -> list[dict[str, Any]]:
    """Every row the report's table must hold for ``day`` (local to ``zone``)."""
    start, end = local_day_window_utc(day, zone)
    return [
        row
        for lead_type in lead_types
        for row in expected_rows(
            report, truth_rows(server, report, lead_type, start, end, as_of), day
        )
    ]


def retyped_columns(expected: Iterable[dict[str, Any]]) -> set[str]:
    """The field columns the source sent as numbers in some rows and as text in others
    (schema drift): the table keeps them as text, so compare them in text form."""
    kinds: dict[str, set[type]] = {}
    for row in expected:
        for name, value in row.items():
            if name.startswith("field_"):
                kinds.setdefault(name, set()).add(type(value))
    return {name for name, types in kinds.items() if str in types and types & {int, float}}


def as_text(value: Any) -> str:
    """A JSON scalar as a text column holds it once the column was widened to text (the
    warehouse's rule: a number without a fraction reads as an integer, ``1115.0`` as
    ``1115``, however it got there)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


# --- what a table holds ---------------------------------------------------------------


def stored_rows(
    path: str | Path | Destination,
    table: str,
    *,
    schema: str = "salesexec",
    with_metadata: bool = False,
) -> list[dict[str, Any]]:
    """Every row of ``schema.table`` as dicts, ``fields`` parsed; [] if there is no table.

    ``path`` is a DuckDB file or a :class:`Destination` (either backend). Unless
    ``with_metadata``, the load stamps (``_loaded_at``, ``_run_id``) are left out.
    """
    if isinstance(path, Destination):
        rows = path.rows(table, schema)
        if not with_metadata:
            for row in rows:
                for name in METADATA_COLUMNS:
                    row.pop(name, None)
        return rows
    if not Path(path).exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchone()
        if not exists or not exists[0]:
            return []
        cursor = con.execute(f'SELECT * FROM "{schema}"."{table}"')
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()
    for row in rows:
        if not with_metadata:
            for name in METADATA_COLUMNS:
                row.pop(name, None)
        if isinstance(row.get("fields"), str):
            row["fields"] = json.loads(row["fields"])
    return rows


def stored_types(
    path: str | Path | Destination, table: str, *, schema: str = "salesexec"
) -> dict[str, str]:
    """Column name -> type of ``schema.table``: DuckDB's name, or for a
    :class:`Destination` the lattice's (the same names on both backends)."""
    if isinstance(path, Destination):
        return path.types(table, schema)
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
                [schema, table],
            ).fetchall()
        )
    finally:
        con.close()


def sorted_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in a stable order, for comparing whole tables."""
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def assert_rows_match(
    actual: Iterable[dict[str, Any]],
    expected: Iterable[dict[str, Any]],
    key: Sequence[str],
    *,
    text_columns: Iterable[str] = (),
) -> None:
    """Row for row (matched on ``key`` + partition) and value for value.

    A column a row lacks counts as NULL (a table holds the union of all lead types'
    field columns). Expected values of ``text_columns`` are compared in text form.
    """
    text = set(text_columns)

    def index(rows: Iterable[dict[str, Any]], side: str) -> dict[tuple[Any, ...], dict]:
        indexed: dict[tuple[Any, ...], dict] = {}
        for row in rows:
            row_key = (row["partition_date"], *(row[name] for name in key))
            assert row_key not in indexed, f"{side}: duplicate row for {row_key}"
            indexed[row_key] = row
        return indexed

    have, want = index(actual, "table"), index(expected, "truth")
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    assert not missing and not extra, f"rows missing: {missing[:5]}; rows not in truth: {extra[:5]}"
    for row_key, wanted in want.items():
        differences = row_differences(have[row_key], wanted, text)
        assert not differences, f"{row_key} {differences[0]}"


def row_differences(
    got: dict[str, Any], wanted: dict[str, Any], text_columns: Iterable[str] = ()
) -> list[str]:
    """How a table row differs from the truth's row, column by column (see
    :func:`assert_rows_match`); [] when they are equal."""
    text = set(text_columns)
    differences = []
    for column in sorted(set(got) | set(wanted)):
        value = wanted.get(column)
        if column in text and value is not None:
            value = as_text(value)
        if got.get(column) != value:
            differences.append(f"column {column}: table has {got.get(column)!r}, truth {value!r}")
    return differences
