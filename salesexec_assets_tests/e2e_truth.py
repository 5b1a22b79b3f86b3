"""Compare the report tables of a destination with the sandbox's ground truth.

Row for row: every contract field of every record (``Fields`` compared as parsed JSON),
per report, per partition day, per lead type. Used by the end-to-end tests, whose runs
happen in other processes: a DuckDB file is opened read-only once they are over; a
Postgres database (a :class:`~salesexec_assets_tests.destinations.Destination`) is read
through its own driver. One comparison for both: it only needs a :class:`Reader`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb

from salesexec_assets.api.contract import LEAD_TYPE_UID, REPORTS, FieldType, Pull, Report
from salesexec_assets.assets import ASSET_PREFIX
from salesexec_assets.naming import snake_case
from salesexec_assets.partitions import day_window_utc
from salesexec_assets.records import PARTITION_COLUMN, table_spec
from salesexec_assets.sandbox import SandboxConfig, SandboxData
from salesexec_assets.sandbox.data import CLOCK_STEP
from salesexec_assets_tests.destinations import Destination

Row = tuple[Any, ...]

# The reports a backfill over past days can hold, and the one that only knows "now".
WINDOWED = [report for report in REPORTS if report.pull is not Pull.NOW]
NOW_ONLY = [report for report in REPORTS if report.pull is Pull.NOW]


def asset_path(report: Report) -> tuple[str, str]:
    """The report's asset key, as GraphQL takes it."""
    return (ASSET_PREFIX, report.name)


@dataclass(frozen=True)
class Mismatch:
    """One (report, day, lead type) whose rows differ from the truth."""

    report: str
    day: date
    lead_type_uid: int
    missing: tuple[Row, ...]  # in the truth, not in the table (first few)
    unexpected: tuple[Row, ...]  # in the table, not in the truth (first few)
    truth_rows: int
    table_rows: int

    def __str__(self) -> str:
        return (
            f"{self.report} {self.day} lead type {self.lead_type_uid}: table has "
            f"{self.table_rows} rows, truth {self.truth_rows}; missing e.g. "
            f"{list(self.missing)[:2]}, unexpected e.g. {list(self.unexpected)[:2]}"
        )


class Rows(Protocol):
    def fetchall(self) -> list[Row]: ...


class Reader(Protocol):
    """What the comparison reads through: ``execute(sql, params).fetchall()``, with ``?``
    placeholders (a DuckDB connection is one; :class:`PostgresReader` makes one)."""

    def execute(self, query: str, parameters: Sequence[Any] = ..., /) -> Rows: ...


@dataclass(frozen=True)
class PostgresReader:
    """A psycopg connection as a :class:`Reader`: ``?`` placeholders become ``%s``."""

    connection: Any  # psycopg.Connection

    def execute(self, query: str, parameters: Sequence[Any] = (), /) -> Rows:
        return self.connection.execute(query.replace("?", "%s"), list(parameters))


@contextmanager
def reading(source: Path | Destination) -> Iterator[Reader]:
    """A reader of the tables of a DuckDB file (read-only) or of a destination."""
    if isinstance(source, Destination) and source.server is not None:
        with source.server.connect(source.location.database) as connection:
            yield PostgresReader(connection)
        return
    path = source.path if isinstance(source, Destination) else source
    assert path is not None
    with read_only(path) as connection:
        yield connection


@contextmanager
def read_only(path: Path, timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, waiting while a just-finished run process lets go of the lock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        yield connection
    finally:
        connection.close()


def compared_fields(report: Report) -> list[str]:
    """The contract fields compared row for row: all of them."""
    return list(report.record)


def _canonical(kind: FieldType, value: Any) -> Any:
    """One value, the same whether it came from the truth or from the table."""
    if value is None:
        return None
    if kind is FieldType.OBJECT:
        parsed = json.loads(value) if isinstance(value, str) else value
        return json.dumps(parsed, sort_keys=True)
    if kind is FieldType.INTEGER:
        return int(value)
    if kind is FieldType.TIMESTAMP:
        assert isinstance(value, datetime), value
        return value.replace(tzinfo=None)
    return str(value)


def truth_row(report: Report, record: dict[str, Any]) -> Row:
    return tuple(_canonical(report.record[name], record.get(name)) for name in report.record)


def table_rows(connection: Reader, report: Report, day: date, lead_type_uid: int) -> list[Row]:
    spec = table_spec(report)
    columns = ", ".join(snake_case(name) for name in report.record)
    records = connection.execute(
        f"SELECT {columns} FROM {spec.qualified_name} "
        f"WHERE {PARTITION_COLUMN} = ? AND {snake_case(LEAD_TYPE_UID)} = ?",
        [day, lead_type_uid],
    ).fetchall()
    kinds = list(report.record.values())
    return [
        tuple(_canonical(kind, value) for kind, value in zip(kinds, row, strict=True))
        for row in records
    ]


def partitions_in_table(connection: Reader, report: Report) -> set[date]:
    spec = table_spec(report)
    return {
        row[0]
        for row in connection.execute(
            f"SELECT DISTINCT {PARTITION_COLUMN} FROM {spec.qualified_name}"
        ).fetchall()
    }


def _difference(truth: list[Row], table: list[Row]) -> tuple[tuple[Row, ...], tuple[Row, ...]]:
    remaining = list(table)
    missing = []
    for row in truth:
        if row in remaining:
            remaining.remove(row)
        else:
            missing.append(row)
    return tuple(missing[:3]), tuple(remaining[:3])


def compare_windowed_report(
    connection: Reader,
    moments: Sequence[SandboxData],
    report: Report,
    days: Sequence[date],
    zone: str,
) -> tuple[list[Mismatch], int]:
    """Mismatches of a records or daily-aggregate report over ``days``, and rows compared.

    ``moments``: the sandbox's data as it stood at each step of its clock while the runs
    read it (recent days fill in as time goes on); a day of a lead type must equal the
    truth of one of them.
    """
    mismatches, compared = [], 0
    for day in days:
        start, end = day_window_utc(day, day, zone)
        for lead_type in moments[0].lead_types():
            uid = int(lead_type[LEAD_TYPE_UID])
            table = sorted(table_rows(connection, report, day, uid), key=repr)
            compared += len(table)
            truths = [
                sorted(
                    (truth_row(report, r) for r in data.truth(report.name, uid, start, end)),
                    key=repr,
                )
                for data in moments
            ]
            truth = next((t for t in truths if t == table), truths[-1])
            if truth != table:
                missing, unexpected = _difference(truth, table)
                mismatches.append(
                    Mismatch(report.name, day, uid, missing, unexpected, len(truth), len(table))
                )
    return mismatches, compared


def compare_now_report(
    connection: Reader, data: SandboxData, report: Report, today: date
) -> tuple[list[Mismatch], int]:
    """The "now" report: one snapshot per lead type today, equal to the truth at its AsOf.

    The sandbox's count is a function of the minute it is asked in; the snapshot's own
    as-of instant says which minute that was.
    """
    as_of_field = next(n for n, k in report.record.items() if k is FieldType.TIMESTAMP)
    mismatches, compared = [], 0
    for lead_type in data.lead_types():
        uid = int(lead_type[LEAD_TYPE_UID])
        table = table_rows(connection, report, today, uid)
        compared += len(table)
        as_of_index = list(report.record).index(as_of_field)
        truth = [
            truth_row(report, data.awaiting_import_count(uid, now=row[as_of_index]))
            for row in table
        ]
        if len(table) != 1 or truth != table:
            missing, unexpected = _difference(truth, table)
            mismatches.append(
                Mismatch(report.name, today, uid, missing, unexpected, len(truth), len(table))
            )
    return mismatches, compared


def compare_with_truth(
    source: Path | Destination,
    moments: Sequence[SandboxData],
    days: Sequence[date],
    today: date,
    zone: str,
) -> tuple[list[str], dict[str, int]]:
    """Every report table of ``source`` (a DuckDB file or a destination) against the
    truth: problems (empty when equal), rows per table.

    Windowed reports must hold exactly ``days``; the "now" report exactly ``today``.
    ``moments``: see :func:`compare_windowed_report`.
    """
    problems: list[str] = []
    rows: dict[str, int] = {}
    with reading(source) as connection:
        for report in REPORTS:
            expected_days = {today} if report.pull is Pull.NOW else set(days)
            found_days = partitions_in_table(connection, report)
            if found_days != expected_days:
                problems.append(
                    f"{report.name}: partitions {sorted(map(str, found_days))}, expected "
                    f"{sorted(map(str, expected_days))}"
                )
            if report.pull is Pull.NOW:
                mismatches, compared = compare_now_report(connection, moments[0], report, today)
            else:
                mismatches, compared = compare_windowed_report(
                    connection, moments, report, days, zone
                )
            problems.extend(str(m) for m in mismatches)
            rows[report.name] = compared
    return problems, rows


def moments_between(config: SandboxConfig, first: datetime, last: datetime) -> list[SandboxData]:
    """The sandbox's data as it stood at each step of its clock from ``first`` to ``last``
    (naive UTC)."""
    moments = []
    at = first - (first - datetime.min) % CLOCK_STEP
    while at <= last:
        moments.append(SandboxData(config, clock=lambda at=at: at))
        at += CLOCK_STEP
    return moments


def last_days(count: int, today: date) -> list[date]:
    """The ``count`` days ending with ``today``, oldest first."""
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]
