"""The DuckDB writer: rows are staged in a private file, then moved into the shared warehouse.

It knows nothing of the source API or of Dagster; it stores rows of named, typed columns.

Why two files. DuckDB lets one process at a time open a database file for writing, so a
run that held the warehouse open while pulling pages for minutes would lock every other
run out. Pages are therefore collected in a per-run *stage* file (our own temp file: no
contention, and DuckDB spills to disk, so memory stays bounded however many rows), and
the warehouse is opened only afterwards, for one short transaction per chunk:
``BEGIN; evolve schema; DELETE the partitions; INSERT BY NAME; COMMIT``. DuckDB DDL is
transactional, so any failure rolls back columns, deletes and inserts alike. When another
process holds the file, the open is retried with exponential backoff and jitter until
``lock_timeout_seconds``; reads are retried the same way, because a read-only open also
fails while a writer holds the lock.

Why widening. Columns beyond the declared ones are discovered from the rows and typed by
inference. When a later value no longer fits its column, the column is widened along a
small lattice instead of failing the run or truncating the value::

    BIGINT -> DOUBLE -> VARCHAR      BOOLEAN, TIMESTAMP, DATE, JSON -> VARCHAR

``BIGINT`` and ``DOUBLE`` meet at ``DOUBLE`` so numbers stay numeric (an integer column
that meets ``1.5`` can still be summed); every other mix meets at ``VARCHAR``, which
holds any value as text. Widening never narrows, so a value once stored stays storable,
and ``widen`` is commutative, associative and idempotent: the final type of a column does
not depend on the order pages arrive in. Existing values are converted by DuckDB
(``ALTER ... SET DATA TYPE``) and new values by :func:`coerce_value`, which renders text
exactly as DuckDB's casts do (``true``, ``2.5``, ``2026-01-02 03:04:05.12``), with one
rule of ours on both sides: a double that holds an integer (up to 2**53, where every
integer is exact) becomes that integer's text, ``2`` and not ``2.0``. An integer that
went through a DOUBLE column on its way to VARCHAR thus reads as the source sent it, and
the text of a value never depends on how its pages were cut. Declared columns are never
widened: a value that does not fit its declared type is an error.

Timestamps are naive UTC ``TIMESTAMP``: time-zone arithmetic happens in Python, so the
tables never depend on a DuckDB session time zone or on the ICU extension. Tables are
addressed as ``"schema"."table"``; a warehouse file named like a schema
(``salesexec.duckdb`` with schema ``salesexec``) would make such names ambiguous in
DuckDB, so it is refused.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from datetime import time as clock_time
from enum import Enum
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

__all__ = [
    "LOADED_AT_COLUMN",
    "RUN_ID_COLUMN",
    "ColumnType",
    "DuckDBWarehouse",
    "RowStage",
    "TableSpec",
    "WarehouseLockTimeout",
    "WriteResult",
    "coerce_value",
    "fits_bigint",
    "infer_column_type",
    "remove_stale_stages",
    "widen",
]

_LOGGER = logging.getLogger(__name__)

LOADED_AT_COLUMN = "_loaded_at"
RUN_ID_COLUMN = "_run_id"
_METADATA_COLUMNS = (LOADED_AT_COLUMN, RUN_ID_COLUMN)

_BIGINT_MIN = -(2**63)
_BIGINT_MAX = 2**63 - 1
_EXACT_INTEGERS = 2**53  # every integer up to this (included) is exact as a double

_STAGE_TABLE = '"main"."rows"'  # inside the stage file
WRITE_MEMORY_LIMIT = "64MB"  # DuckDB's buffer pool during a warehouse write
_LOCK_MESSAGES = ("Could not set lock", "Conflicting lock")
# the two metadata columns every insert adds; parameters: loaded_at, run_id
_METADATA_SELECT = (
    f'CAST(? AS TIMESTAMP) AS "{LOADED_AT_COLUMN}", CAST(? AS VARCHAR) AS "{RUN_ID_COLUMN}"'
)


class ColumnType(str, Enum):
    """The column types the warehouse writes; values are DuckDB type names."""

    BOOLEAN = "BOOLEAN"
    BIGINT = "BIGINT"
    DOUBLE = "DOUBLE"
    VARCHAR = "VARCHAR"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    JSON = "JSON"


class WarehouseLockTimeout(TimeoutError):
    """Another process kept the warehouse file locked for longer than we agreed to wait."""


# --------------------------------------------------------------------------- types


def infer_column_type(value: Any) -> ColumnType | None:
    """The narrowest column type that holds ``value``; None for None (it fits any column).

    An integer outside BIGINT's range is typed VARCHAR so its digits are kept exactly;
    dicts and lists are stored as JSON text in a VARCHAR column.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, numbers.Integral):
        return ColumnType.BIGINT if _BIGINT_MIN <= value <= _BIGINT_MAX else ColumnType.VARCHAR
    if isinstance(value, numbers.Real):
        return ColumnType.DOUBLE
    if isinstance(value, str):
        return ColumnType.VARCHAR
    if isinstance(value, datetime):
        return ColumnType.TIMESTAMP
    if isinstance(value, date):
        return ColumnType.DATE
    if isinstance(value, (dict, list, tuple)):
        return ColumnType.VARCHAR
    raise TypeError(f"cannot store a value of type {type(value).__name__}: {value!r}")


def widen(current: ColumnType, incoming: ColumnType) -> ColumnType:
    """The narrowest type holding every value of both (see the module docstring for why)."""
    if current == incoming:
        return current
    if {current, incoming} == {ColumnType.BIGINT, ColumnType.DOUBLE}:
        return ColumnType.DOUBLE
    return ColumnType.VARCHAR


def _column_type_of(duckdb_type: str) -> ColumnType:
    """Map a type found in an existing table onto the lattice (tables we did not create)."""
    name = duckdb_type.upper()
    try:
        return ColumnType(name)
    except ValueError:
        pass
    if name in {"TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER"}:
        return ColumnType.BIGINT
    if name in {"FLOAT", "REAL"} or name.startswith("DECIMAL"):
        return ColumnType.DOUBLE
    if name.startswith("TIMESTAMP") and "TIME ZONE" not in name:
        return ColumnType.TIMESTAMP
    return ColumnType.VARCHAR


def _naive_utc(value: datetime) -> datetime:
    """Naive UTC, the only timestamp form stored (no session time zone involved)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _timestamp_text(value: datetime) -> str:
    """A timestamp as DuckDB's cast to VARCHAR renders it (trailing fraction zeros dropped)."""
    text = _naive_utc(value).isoformat(sep=" ")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "t", "1"}:
            return True
        if text in {"false", "f", "0"}:
            return False
    raise ValueError("not a boolean")


def _to_bigint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer()
    ):
        number = int(value)
    elif isinstance(value, str):
        number = int(value.strip())
    else:
        raise ValueError("not an integer")
    if not _BIGINT_MIN <= number <= _BIGINT_MAX:
        raise ValueError("outside the BIGINT range")
    return number


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (numbers.Real, str)):
        return float(value)
    raise ValueError("not a number")


def _to_varchar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if number.is_integer() and abs(number) <= _EXACT_INTEGERS:
            return str(int(number))  # as the integer it was: see the module docstring
        return repr(number)  # Python's shortest round-trip form, as DuckDB prints
    if isinstance(value, datetime):
        return _timestamp_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _to_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, clock_time())
    if isinstance(value, str):
        return _naive_utc(datetime.fromisoformat(value.strip()))
    raise ValueError("not a timestamp")


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == clock_time():
            return value.date()
        raise ValueError("a timestamp with a time of day is not a date")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value.strip())
    raise ValueError("not a date")


def _to_json(value: Any) -> str:
    if isinstance(value, str):
        json.loads(value)  # raises ValueError (JSONDecodeError) when it is not JSON text
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinity are not JSON")
    return json.dumps(value, default=str)


_COERCERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.BOOLEAN: _to_boolean,
    ColumnType.BIGINT: _to_bigint,
    ColumnType.DOUBLE: _to_double,
    ColumnType.VARCHAR: _to_varchar,
    ColumnType.TIMESTAMP: _to_timestamp,
    ColumnType.DATE: _to_date,
    ColumnType.JSON: _to_json,
}

# pandas dtypes DuckDB reads without guessing; None becomes NULL in each of them.
_PANDAS_DTYPES: dict[ColumnType, str] = {
    ColumnType.BOOLEAN: "boolean",
    ColumnType.BIGINT: "Int64",
    ColumnType.DOUBLE: "Float64",
    ColumnType.VARCHAR: "object",
    ColumnType.TIMESTAMP: "datetime64[us]",
    ColumnType.DATE: "object",
    ColumnType.JSON: "object",
}


def coerce_value(value: Any, column_type: ColumnType) -> Any:
    """``value`` as a Python value of ``column_type``; None stays None.

    Raises ValueError when the value cannot be represented (``'abc'`` as BIGINT).
    """
    if value is None:
        return None
    try:
        return _COERCERS[column_type](value)
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"cannot store {value!r} as {column_type.value}: {error}") from error


# --------------------------------------------------------------------------- SQL helpers


@contextmanager
def _atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK and re-raise (DuckDB DDL is undone too)."""
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # e.g. a failed COMMIT already ended it; the original error matters
            _LOGGER.warning("rollback failed", exc_info=True)
        raise


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> int:
    """The row count DuckDB returns for INSERT and DELETE."""
    row = con.execute(sql, list(params)).fetchone()
    return int(row[0]) if row else 0


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------- specs


def _quote(identifier: str) -> str:
    """A DuckDB identifier in double quotes, so any column name is safe in SQL."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableSpec:
    """A warehouse table: its schema, name, declared columns and partition column.

    Columns not declared are discovered from the rows. ``partition_column`` is a DATE
    column (declared or not); None makes an unpartitioned table (append and upsert only).
    """

    schema: str
    name: str
    columns: dict[str, ColumnType] = field(default_factory=dict, hash=False)
    partition_column: str | None = "partition_date"

    def __post_init__(self) -> None:
        columns = {name: ColumnType(kind) for name, kind in self.columns.items()}
        object.__setattr__(self, "columns", columns)
        for reserved in _METADATA_COLUMNS:
            if reserved in columns:
                raise ValueError(f"{reserved} is written by the warehouse; do not declare it")
        partition = self.partition_column
        if partition is not None and columns.get(partition, ColumnType.DATE) != ColumnType.DATE:
            raise ValueError(f"partition column {partition!r} must be DATE")

    @property
    def qualified_name(self) -> str:
        """``"schema"."name"``, quoted, as used in every statement."""
        return f"{_quote(self.schema)}.{_quote(self.name)}"

    def declared_types(self) -> dict[str, ColumnType]:
        """Declared columns, then the partition column if it was not declared."""
        types = dict(self.columns)
        if self.partition_column is not None:
            types.setdefault(self.partition_column, ColumnType.DATE)
        return types


def _widening_using(column: str, have: ColumnType, target: ColumnType) -> str:
    """The USING clause of a widening ALTER: DuckDB's cast, except that a double holding
    an exact integer becomes that integer's text, as :func:`coerce_value` writes it."""
    if (have, target) != (ColumnType.DOUBLE, ColumnType.VARCHAR):
        return ""
    return (
        f" USING CASE WHEN {column} = trunc({column}) AND abs({column}) <= {_EXACT_INTEGERS} "
        f"THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) ELSE CAST({column} AS VARCHAR) END"
    )


def _evolve_columns(
    con: duckdb.DuckDBPyConnection,
    table_sql: str,
    current: Mapping[str, ColumnType],
    incoming: Mapping[str, ColumnType],
) -> tuple[dict[str, ColumnType], list[str], list[tuple[str, str, str]]]:
    """Add missing columns and widen narrower ones so rows of ``incoming`` types fit.

    The one schema-evolution routine, used for the stage and for warehouse tables.
    Column names match case-insensitively, as DuckDB's do. Returns the new types and
    what changed: added names and (column, from, to) widenings.
    """
    types = dict(current)
    by_key = {name.lower(): name for name in types}
    added: list[str] = []
    widened: list[tuple[str, str, str]] = []
    for name, wanted in incoming.items():
        existing = by_key.get(name.lower())
        if existing is None:
            con.execute(f"ALTER TABLE {table_sql} ADD COLUMN {_quote(name)} {wanted.value}")
            types[name] = wanted
            by_key[name.lower()] = name
            added.append(name)
            continue
        have = types[existing]
        target = widen(have, wanted)
        if target != have:
            con.execute(
                f"ALTER TABLE {table_sql} ALTER COLUMN {_quote(existing)} "
                f"SET DATA TYPE {target.value}{_widening_using(_quote(existing), have, target)}"
            )
            types[existing] = target
            widened.append((existing, have.value, target.value))
    return types, added, widened


def _in_dates(column: str) -> str:
    """``column IN`` the list of dates given as the statement's next parameter."""
    return f"{_quote(column)} IN (SELECT UNNEST(CAST(? AS DATE[])))"


def _column_definitions(types: Mapping[str, ColumnType]) -> str:
    return ", ".join(f"{_quote(name)} {kind.value}" for name, kind in types.items())


# --------------------------------------------------------------------------- stage


STAGES_DIRECTORY = Path(tempfile.gettempdir()) / "salesexec-stages"
STALE_STAGE_SECONDS = 24 * 3600.0  # a live stage is written every few seconds


def remove_stale_stages(
    directory: Path = STAGES_DIRECTORY, older_than_seconds: float = STALE_STAGE_SECONDS
) -> list[Path]:
    """Remove the stage directories that killed runs left behind; return them.

    A stage whose newest file was last written longer ago than ``older_than_seconds``
    belongs to no live run: a run closes (and removes) its stage when it ends, and adds
    to it while it pulls.
    """
    if not directory.is_dir():
        return []
    now = time.time()
    removed = []
    for stage in directory.iterdir():
        if not stage.is_dir():
            continue
        files = [path.stat().st_mtime for path in stage.iterdir() if path.is_file()]
        if now - max(files, default=stage.stat().st_mtime) > older_than_seconds:
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


class RowStage:
    """Rows of one chunk, collected page by page in a private temporary DuckDB file.

    Use as a context manager; ``close()`` removes the file. ``column_types`` is the
    stage's schema (declared columns first, then discovered ones in order of discovery).
    """

    def __init__(
        self,
        spec: TableSpec,
        directory: str | Path | None = None,
        *,
        memory_limit: str = "64MB",  # the stage spills to its file beyond this: RSS stays flat
    ) -> None:
        self.spec = spec
        parent = Path(directory) if directory is not None else STAGES_DIRECTORY
        parent.mkdir(parents=True, exist_ok=True)
        self._directory = Path(tempfile.mkdtemp(prefix=f"stage-{spec.name}-", dir=parent))
        self.path = self._directory / "stage.duckdb"
        self._memory_limit = memory_limit
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closed = False
        self.row_count = 0
        self.partitions: set[date] = set()
        self.column_types: dict[str, ColumnType] = spec.declared_types()
        self._declared = frozenset(self.column_types)
        self._connection().execute(
            f"CREATE TABLE {_STAGE_TABLE} ({_column_definitions(self.column_types)})"
        )

    def __enter__(self) -> RowStage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The stage's own connection, reopened after a write released it."""
        if self._closed:
            raise RuntimeError("the stage is closed")
        if self._con is None:
            self._con = duckdb.connect(str(self.path), config={"memory_limit": self._memory_limit})
        return self._con

    def release(self) -> None:
        """Close the stage's connection so the warehouse connection can ATTACH the file.

        DuckDB refuses to attach a file this process already has open elsewhere.
        """
        if self._con is not None:
            self._con.close()
            self._con = None

    def close(self) -> None:
        """Close the connection and delete the temporary file."""
        self.release()
        self._closed = True
        shutil.rmtree(self._directory, ignore_errors=True)

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append rows given as mappings (a missing key is None): see :meth:`add_columns`."""
        if rows:
            self.add_columns(_columnar(rows))

    def add_columns(self, columns: Mapping[str, list[Any]]) -> None:
        """Append rows given as one list of values per column (all of the same length).

        New columns are added and outgrown ones widened first. Values are coerced in
        Python (declared columns to their declared type, others to the evolved type) and
        the rows are inserted BY NAME from a DataFrame in one statement. A column whose
        values are all None in every batch so far is not created yet: a NULL carries no
        type.
        """
        self._check_names(columns)
        sizes = {len(values) for values in columns.values()}
        if len(sizes) > 1:
            raise ValueError(f"columns of different lengths: {sorted(sizes)}")
        if not sizes or not sizes.pop():
            return
        wanted: dict[str, ColumnType] = {}
        for name, column in columns.items():
            if name in self._declared:
                continue
            page_type = _page_type(column)
            if page_type is None:
                continue
            current = self.column_types.get(name)
            wanted[name] = page_type if current is None else widen(current, page_type)
        frame_types = {**self.column_types, **wanted}
        frame = pd.DataFrame(
            {
                name: _coerced_array(name, column, frame_types[name])
                for name, column in columns.items()
                if name in frame_types
            }
        )
        partitions = self._page_partitions(frame)
        selects = ", ".join(
            f"CAST({_quote(name)} AS {frame_types[name].value}) AS {_quote(name)}"
            for name in frame.columns
        )
        con = self._connection()
        con.register("_page", frame)
        try:
            with _atomic(con):
                evolved, _, _ = _evolve_columns(con, _STAGE_TABLE, self.column_types, wanted)
                con.execute(f"INSERT INTO {_STAGE_TABLE} BY NAME SELECT {selects} FROM _page")
        except duckdb.ConversionException:
            for name, column in columns.items():  # name the value at fault, if one is
                if name in frame_types:
                    _coerced_array(name, column, frame_types[name], check_each=True)
            raise
        finally:
            con.unregister("_page")
        self.column_types = evolved  # only now: a rolled-back ALTER must not be remembered
        self.row_count += len(frame)
        self.partitions |= partitions

    def partition_rows(self) -> dict[date, int]:
        """How many rows each staged partition holds."""
        partition = self.spec.partition_column
        if partition is None or not self.row_count:
            return {}
        rows = self._connection().execute(
            f"SELECT {_quote(partition)}, count(*) FROM {_STAGE_TABLE} GROUP BY 1"
        ).fetchall()
        return dict(rows)

    def _check_names(self, columns: Collection[str]) -> None:
        """Refuse the warehouse's own columns, and names DuckDB would find equal."""
        known = {name.lower(): name for name in self.column_types}
        for name in columns:
            if name in _METADATA_COLUMNS:
                raise ValueError(f"column {name!r} is reserved for the warehouse")
            if known.setdefault(name.lower(), name) != name:
                raise ValueError(
                    f"column {name!r} differs from {known[name.lower()]!r} only in case; "
                    "DuckDB column names are case-insensitive"
                )

    def _page_partitions(self, frame: pd.DataFrame) -> set[date]:
        """Distinct partitions of a page; every row must have one (else re-runs duplicate)."""
        partition = self.spec.partition_column
        if partition is None:
            return set()
        if partition not in frame.columns or frame[partition].isna().any():
            raise ValueError(f"every row needs a value for the partition column {partition!r}")
        return set(frame[partition])


def _columnar(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Rows to one list per column; a key missing from a row is None there."""
    size = len(rows)
    columns: dict[str, list[Any]] = {}
    for index, row in enumerate(rows):
        for name, value in row.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * size
            column[index] = value
    return columns


def fits_bigint(integers: Collection[int]) -> bool:
    """Whether every integer fits a BIGINT column (True when there are none)."""
    return not integers or (min(integers) >= _BIGINT_MIN and max(integers) <= _BIGINT_MAX)


def _page_type(values: list[Any]) -> ColumnType | None:
    """The widened type of a page's values for one discovered column (None if all None).

    Works per distinct Python type rather than per value (pages are mostly uniform);
    only integers need every value looked at, for the BIGINT range.
    """
    result: ColumnType | None = None
    for python_type in {type(value) for value in values}:
        if python_type is type(None):
            continue
        sample = next(value for value in values if type(value) is python_type)
        if python_type is int:
            integers = [value for value in values if type(value) is int]
            kind = ColumnType.BIGINT if fits_bigint(integers) else ColumnType.VARCHAR
        else:
            kind = infer_column_type(sample)
        if kind is not None:
            result = kind if result is None else widen(result, kind)
    return result


# The Python type a column type's values already have after coercion; pages whose values
# all have it skip the per-value coercion (the common case, and the hot loop).
_NATIVE_TYPES: dict[ColumnType, type] = {
    ColumnType.BOOLEAN: bool,
    ColumnType.BIGINT: int,
    ColumnType.DOUBLE: float,
    ColumnType.VARCHAR: str,
    ColumnType.DATE: date,
    ColumnType.TIMESTAMP: datetime,
    ColumnType.JSON: str,
}


def _already_coerced(values: list[Any], column_type: ColumnType) -> bool:
    """Whether every value already has the column's Python type (and fits it).

    JSON text is not parsed here: DuckDB's cast checks it during the insert, and a
    failed insert is explained value by value (see :meth:`RowStage.add_columns`).
    """
    native = _NATIVE_TYPES.get(column_type)
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if native is None or not kinds <= {native}:
        return False
    if kinds and column_type == ColumnType.BIGINT:
        return fits_bigint([value for value in values if value is not None])
    if kinds and column_type == ColumnType.TIMESTAMP:
        return all(value.tzinfo is None for value in values if value is not None)
    return True


def _coerced_array(
    name: str, values: list[Any], column_type: ColumnType, *, check_each: bool = False
) -> Any:
    """One column's values coerced to its type, as a pandas array DuckDB reads exactly.

    ``check_each`` coerces (and so checks) every value even when the column already
    has the right Python types: it finds the value that made DuckDB refuse an insert.
    """
    if not check_each and _already_coerced(values, column_type):
        return pd.array(values, dtype=_PANDAS_DTYPES[column_type])
    coerce = _COERCERS[column_type]
    coerced: list[Any] = []
    for value in values:
        if value is None:
            coerced.append(None)
            continue
        try:
            coerced.append(coerce(value))
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(
                f"column {name!r}: cannot store {value!r} as {column_type.value} ({error})"
            ) from error
    return pd.array(coerced, dtype=_PANDAS_DTYPES[column_type])


# --------------------------------------------------------------------------- warehouse


@dataclass(frozen=True)
class WriteResult:
    """What one warehouse transaction did, for logs and asset metadata."""

    table: str
    rows_written: int
    partitions_replaced: tuple[date, ...]
    rows_deleted: int
    columns_added: tuple[str, ...]
    columns_widened: tuple[tuple[str, str, str], ...]
    lock_wait_seconds: float
    lock_attempts: int


@dataclass
class _Session:
    """An open warehouse connection and what it cost to get it."""

    con: duckdb.DuckDBPyConnection
    lock_wait_seconds: float
    lock_attempts: int
    stage_tables: list[str] = field(default_factory=list)  # attached stages' tables, in order

    @property
    def stage_table(self) -> str:
        """The (first) attached stage's table, fully qualified."""
        return self.stage_tables[0]


def _is_lock_error(error: duckdb.Error) -> bool:
    message = str(error)
    return any(text in message for text in _LOCK_MESSAGES)


class DuckDBWarehouse:
    """The shared warehouse file, opened only for short transactions and closed after each.

    ``lock_timeout_seconds`` bounds how long an open waits for another process's lock.
    """

    _FIRST_DELAY_SECONDS = 0.1
    _MAX_DELAY_SECONDS = 5.0

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout_seconds: float = 300.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = Path(path)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.logger = logger or _LOGGER
        self._reader: duckdb.DuckDBPyConnection | None = None  # see reading()

    # ----------------------------------------------------------------- connections

    @contextmanager
    def _session(self, *, read_only: bool = False) -> Iterator[_Session]:
        """Open the file, retrying while another process holds its lock; close on exit.

        The one connect-with-lock-retry routine (writes and reads). Backoff doubles from
        0.1 s up to 5 s with jitter (half fixed, half random) so waiting writers do not
        retry in lockstep; the last attempt is made at the deadline.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                con = self._open(read_only=read_only)
                break
            except duckdb.IOException as error:
                if not _is_lock_error(error):
                    raise
                waited = time.monotonic() - started
                remaining = self.lock_timeout_seconds - waited
                if remaining <= 0:
                    raise WarehouseLockTimeout(
                        f"warehouse file {self.path} is still locked by another writer after "
                        f"waiting {waited:.1f} s ({attempt} attempts, limit "
                        f"{self.lock_timeout_seconds:g} s): {error}"
                    ) from error
                backoff = min(
                    self._MAX_DELAY_SECONDS, self._FIRST_DELAY_SECONDS * 2 ** (attempt - 1)
                )
                delay = min(remaining, backoff / 2 + random.uniform(0, backoff / 2))
                self.logger.info(
                    "warehouse file %s is locked by another writer; retrying in %.1f s "
                    "(attempt %d)",
                    self.path,
                    delay,
                    attempt + 1,
                )
                time.sleep(delay)
        waited = time.monotonic() - started if attempt > 1 else 0.0
        try:
            yield _Session(con, waited, attempt)
        finally:
            con.close()

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.ConnectionException as error:
            # This process already has the file open read-write (connections share one
            # instance, whose configuration a read-only open may not change): join it.
            if read_only and "different configuration" in str(error):
                return duckdb.connect(str(self.path))
            raise

    @contextmanager
    def _transaction(self, *stages: RowStage) -> Iterator[_Session]:
        """One write transaction, with the stages attached read-only so rows stay in DuckDB.

        Any exception rolls everything back (DDL included) and is re-raised.
        """
        with self._session() as session:
            con = session.con
            # A small buffer pool: DuckDB spills beyond it, and a write's peak memory then
            # stays flat however large the table grows (measured: benchmarks/RESULTS.md).
            con.execute(f"SET memory_limit = {_sql_string(WRITE_MEMORY_LIMIT)}")
            # Unique aliases, detached explicitly: attachments belong to the database
            # instance, which other connections of this process may share.
            aliases: list[str] = []
            try:
                for stage in stages:
                    alias = f"_stage_{uuid.uuid4().hex[:12]}"
                    stage.release()
                    con.execute(f"ATTACH {_sql_string(str(stage.path))} AS {alias} (READ_ONLY)")
                    aliases.append(alias)
                    session.stage_tables.append(f"{alias}.{_STAGE_TABLE}")
                with _atomic(con):
                    yield session
            finally:
                for alias in aliases:
                    con.execute(f"DETACH {alias}")

    def _check_name(self, spec: TableSpec) -> None:
        if self.path.stem.lower() == spec.schema.lower():
            raise ValueError(
                f"warehouse file {self.path.name!r} is named like schema {spec.schema!r}; "
                "DuckDB would find names like schema.table ambiguous. Rename the file."
            )

    # ----------------------------------------------------------------- schema

    @staticmethod
    def _read_columns(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [spec.schema, spec.name],
        ).fetchall()
        return dict(rows)

    def _prepare_table(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        incoming: Mapping[str, ColumnType],
    ) -> tuple[dict[str, ColumnType], list[str], list[tuple[str, str, str]]]:
        """Create the schema and table if needed, then evolve it to fit ``incoming``."""
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(spec.schema)}")
        initial = {
            **spec.declared_types(),
            LOADED_AT_COLUMN: ColumnType.TIMESTAMP,
            RUN_ID_COLUMN: ColumnType.VARCHAR,
        }
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {spec.qualified_name} ({_column_definitions(initial)})"
        )
        current = {
            name: _column_type_of(kind) for name, kind in self._read_columns(con, spec).items()
        }
        return _evolve_columns(con, spec.qualified_name, current, incoming)

    # ----------------------------------------------------------------- public API

    def write(
        self,
        stage: RowStage,
        *,
        replace_partitions: Collection[date] | None,
        run_id: str,
        loaded_at: datetime,
        before_insert: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
        companions: Sequence[RowStage] = (),
        partitions: Collection[date] | None = None,
    ) -> WriteResult:
        """Move the stage into its table in one transaction, replacing whole partitions.

        ``replace_partitions=None`` appends. Otherwise those partitions are emptied first
        (a partition with no staged rows ends up empty), and staged rows outside them are
        refused, because a re-run would duplicate them. ``companions`` go into their own
        tables in the SAME transaction, replacing the same partitions: rows and the
        records rejected beside them are never written one without the other, even by a
        crash. ``before_insert`` runs between the delete and the insert of ``stage`` (a
        seam for fault-injection tests). ``partitions`` moves only the staged rows of those
        partitions (of every stage), so that a large stage can be written in several
        smaller transactions. Returns what happened to ``stage``'s table.
        """
        stages = (stage, *companions)
        only = None if partitions is None else tuple(sorted(set(partitions)))
        replaces = []
        for each in stages:
            self._check_name(each.spec)
            replaces.append(self._replace_set(each, replace_partitions, only))
        with self._transaction(*stages) as session:
            results = [
                self._replace_rows(
                    session,
                    each,
                    session.stage_tables[index],
                    replaces[index],
                    [_naive_utc(loaded_at), run_id],
                    before_insert if index == 0 else None,
                    only,
                )
                for index, each in enumerate(stages)
            ]
        for result in results:
            self.logger.info(
                "wrote %d rows to %s (replaced %d partitions, deleted %d rows, waited %.1f s)",
                result.rows_written,
                result.table,
                len(result.partitions_replaced),
                result.rows_deleted,
                session.lock_wait_seconds,
            )
        return results[0]

    def _replace_rows(
        self,
        session: _Session,
        stage: RowStage,
        stage_table: str,
        replace: tuple[date, ...],
        stamps: list[Any],
        before_insert: Callable[[duckdb.DuckDBPyConnection], None] | None,
        only: tuple[date, ...] | None,
    ) -> WriteResult:
        """Inside a write transaction: evolve the table, delete ``replace``, insert (the
        staged rows of the ``only`` partitions, or all)."""
        con, spec = session.con, stage.spec
        table = spec.qualified_name
        _, added, widened = self._prepare_table(con, spec, stage.column_types)
        deleted = 0
        if replace and spec.partition_column is not None:
            deleted = _count(
                con,
                f"DELETE FROM {table} WHERE {_in_dates(spec.partition_column)}",
                [list(replace)],
            )
        if before_insert is not None:
            before_insert(con)
        where, only_params = "", []
        if only is not None and spec.partition_column is not None:
            where = f" WHERE {_in_dates(spec.partition_column)}"
            only_params = [list(only)]
        written = _count(
            con,
            f"INSERT INTO {table} BY NAME SELECT *, {_METADATA_SELECT} FROM {stage_table}{where}",
            [*stamps, *only_params],
        )
        return WriteResult(
            table=table,
            rows_written=written,
            partitions_replaced=replace,
            rows_deleted=deleted,
            columns_added=tuple(added),
            columns_widened=tuple(widened),
            lock_wait_seconds=session.lock_wait_seconds,
            lock_attempts=session.lock_attempts,
        )

    @staticmethod
    def _replace_set(
        stage: RowStage,
        replace_partitions: Collection[date] | None,
        only: tuple[date, ...] | None,
    ) -> tuple[date, ...]:
        if only is not None and stage.spec.partition_column is None:
            raise ValueError(f"{stage.spec.qualified_name} has no partition column to select")
        if replace_partitions is None:
            return ()
        if stage.spec.partition_column is None:
            raise ValueError(f"{stage.spec.qualified_name} has no partition column to replace")
        replace = tuple(sorted(set(replace_partitions)))
        staged = stage.partitions if only is None else stage.partitions.intersection(only)
        outside = sorted(staged.difference(replace))
        if outside:
            raise ValueError(
                f"staged rows for partitions {[d.isoformat() for d in outside]} are outside "
                "replace_partitions; writing them would duplicate rows on a re-run"
            )
        return replace

    def drop_partitions_before(self, spec: TableSpec, cutoff: date) -> tuple[date, ...]:
        """Delete every partition older than ``cutoff`` in one transaction (retention)."""
        self._check_name(spec)
        partition = spec.partition_column
        if partition is None:
            raise ValueError(f"{spec.qualified_name} has no partition column")
        if not self.path.exists():
            return ()
        column = _quote(partition)
        with self._transaction() as session:
            con = session.con
            if not self._read_columns(con, spec):
                return ()
            dropped = tuple(
                row[0]
                for row in con.execute(
                    f"SELECT DISTINCT {column} FROM {spec.qualified_name} "
                    f"WHERE {column} < ? ORDER BY 1",
                    [cutoff],
                ).fetchall()
            )
            if dropped:
                con.execute(f"DELETE FROM {spec.qualified_name} WHERE {column} < ?", [cutoff])
        self.logger.info(
            "dropped %d partitions of %s before %s", len(dropped), spec.qualified_name, cutoff
        )
        return dropped

    def overwrite(self, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace a small table's whole contents (creating it) in one transaction.

        For bookkeeping tables such as a schema's recorded source, not for report data.
        """
        self._check_name(spec)
        types = spec.declared_types()
        names = ", ".join(_quote(name) for name in types)
        values = ", ".join("?" for _ in types)
        with self._transaction() as session:
            con = session.con
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(spec.schema)}")
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {spec.qualified_name} "
                f"({_column_definitions(types)})"
            )
            con.execute(f"DELETE FROM {spec.qualified_name}")
            for row in rows:
                con.execute(
                    f"INSERT INTO {spec.qualified_name} ({names}) VALUES ({values})",
                    [row.get(name) for name in types],
                )

    def upsert(
        self,
        stage: RowStage,
        target: TableSpec,
        *,
        key: Sequence[str],
        newest_by: str,
        run_id: str,
        loaded_at: datetime,
    ) -> WriteResult:
        """Merge the stage into a current-state table holding one row per ``key``.

        Per key the row with the greatest ``newest_by`` wins (NULL counts as oldest); on
        a tie the incoming row wins, so re-running the same rows changes nothing but
        ``_loaded_at``/``_run_id``. Among staged rows of one key the later-staged wins a tie.
        """
        self._check_name(target)
        missing = [name for name in (*key, newest_by) if name not in stage.column_types]
        if not key or missing:
            raise ValueError(
                f"upsert needs key and newest_by columns in the stage; missing {missing}"
            )
        table = target.qualified_name
        with self._transaction(stage) as session:
            con = session.con
            types, added, widened = self._prepare_table(con, target, stage.column_types)

            def incoming(name: str) -> str:
                # compare in the table's (widened) type so both sides agree
                return f"CAST(i.{_quote(name)} AS {types[name].value})"

            same_key = " AND ".join(
                f"t.{_quote(name)} IS NOT DISTINCT FROM {incoming(name)}" for name in key
            )
            newest = _quote(newest_by)
            partition_by = ", ".join(_quote(name) for name in key)
            con.execute(
                "CREATE TEMP TABLE _incoming AS SELECT * EXCLUDE (_rank) FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY {partition_by} "
                f"ORDER BY {newest} DESC NULLS LAST, rowid DESC) AS _rank "
                f"FROM {session.stage_table}) WHERE _rank = 1"
            )
            deleted = _count(
                con,
                f"DELETE FROM {table} AS t USING _incoming AS i WHERE {same_key} "
                f"AND NOT (t.{newest} IS NOT NULL AND "
                f"(i.{newest} IS NULL OR t.{newest} > {incoming(newest_by)}))",
            )
            written = _count(
                con,
                f"INSERT INTO {table} BY NAME SELECT i.*, {_METADATA_SELECT} "
                f"FROM _incoming AS i WHERE NOT EXISTS (SELECT 1 FROM {table} AS t "
                f"WHERE {same_key})",
                [_naive_utc(loaded_at), run_id],
            )
        result = WriteResult(
            table=table,
            rows_written=written,
            partitions_replaced=(),
            rows_deleted=deleted,
            columns_added=tuple(added),
            columns_widened=tuple(widened),
            lock_wait_seconds=session.lock_wait_seconds,
            lock_attempts=session.lock_attempts,
        )
        self.logger.info(
            "upserted %d rows into %s (replaced %d)",
            result.rows_written,
            table,
            result.rows_deleted,
        )
        return result

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Serve the reads made inside from ONE read-only connection.

        Opening the file costs more than a small query; a run's checks and metadata make
        a dozen. The connection is closed on exit, so writers wait no longer than that.
        """
        if self._reader is not None or not self.path.exists():
            yield
            return
        with self._session(read_only=True) as session:
            self._reader = session.con
            try:
                yield
            finally:
                self._reader = None

    @contextmanager
    def _read_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._reader is not None:
            yield self._reader
            return
        with self._session(read_only=True) as session:
            yield session.con

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a read-only query (retrying on the lock like writes) and return a DataFrame."""
        with self._read_connection() as con:
            return con.execute(sql, list(params)).df()

    def table_columns(self, spec: TableSpec) -> dict[str, str]:
        """Column name -> DuckDB type of the table; {} when the table (or file) does not exist."""
        if not self.path.exists():
            return {}
        with self._read_connection() as con:
            return self._read_columns(con, spec)
