"""The stage: a run's rows, collected page by page in a private temporary DuckDB file.

Whatever the destination, pages are staged locally first (our own file: no contention,
and DuckDB spills to disk, so memory stays bounded however many rows), and the
destination is opened only afterwards, for one short transaction per group of days.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from salesexec_assets.warehouse.base import METADATA_COLUMNS, TableSpec, quote
from salesexec_assets.warehouse.duckdb_sql import (
    STAGE_TABLE,
    atomic,
    column_definitions,
    evolve_columns,
    in_dates,
)
from salesexec_assets.warehouse.types import ColumnType, coerced_array, page_type, widen

STAGES_DIRECTORY = Path(tempfile.gettempdir()) / "salesexec-stages"
STALE_STAGE_SECONDS = 24 * 3600.0  # a live stage is written every few seconds


def remove_stale_stages(
    directory: Path = STAGES_DIRECTORY, older_than_seconds: float = STALE_STAGE_SECONDS
) -> list[Path]:
    """Remove the stage directories that killed runs left behind; return them.

    A stage whose newest file was last written longer ago than ``older_than_seconds``
    belongs to no live run: a run closes (and removes) its stage when it ends, and adds
    to it while it pulls. Other runs create and remove their stages while this looks:
    a stage or file that vanishes meanwhile is simply not stale (never an error).
    """
    try:
        stages = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    now = time.time()
    removed = []
    for stage in stages:
        last_write = _last_write(stage)
        if last_write is not None and now - last_write > older_than_seconds:
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


def _last_write(stage: Path) -> float | None:
    """When a stage directory's newest file (else the directory) was last written; None
    when it is not a directory or vanished while we looked (its run removed it)."""
    try:
        if not stage.is_dir():
            return None
        entries = list(stage.iterdir())
        directory_written = stage.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    files = []
    for path in entries:
        try:
            if path.is_file():
                files.append(path.stat().st_mtime)
        except FileNotFoundError:  # removed between the listing and the stat
            continue
    return max(files, default=directory_written)


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
            f"CREATE TABLE {STAGE_TABLE} ({column_definitions(self.column_types)})"
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
            kind = page_type(column)
            if kind is None:
                continue
            current = self.column_types.get(name)
            wanted[name] = kind if current is None else widen(current, kind)
        frame_types = {**self.column_types, **wanted}
        frame = pd.DataFrame(
            {
                name: coerced_array(name, column, frame_types[name])
                for name, column in columns.items()
                if name in frame_types
            }
        )
        partitions = self._page_partitions(frame)
        selects = ", ".join(
            f"CAST({quote(name)} AS {frame_types[name].value}) AS {quote(name)}"
            for name in frame.columns
        )
        con = self._connection()
        con.register("_page", frame)
        try:
            with atomic(con):
                evolved, _, _ = evolve_columns(con, STAGE_TABLE, self.column_types, wanted)
                con.execute(f"INSERT INTO {STAGE_TABLE} BY NAME SELECT {selects} FROM _page")
        except duckdb.ConversionException:
            for name, column in columns.items():  # name the value at fault, if one is
                if name in frame_types:
                    coerced_array(name, column, frame_types[name], check_each=True)
            raise
        finally:
            con.unregister("_page")
        self.column_types = evolved  # only now: a rolled-back ALTER must not be remembered
        self.row_count += len(frame)
        self.partitions |= partitions

    def batches(
        self,
        values: Mapping[str, str],
        partitions: Collection[date] | None = None,
        *,
        params: Sequence[Any] = (),
        batch_rows: int = 10_000,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The staged rows as tuples of ``values`` (DuckDB expressions over the stage's
        columns, e.g. from :func:`~salesexec_assets.warehouse.duckdb_sql.staged_values`;
        ``params`` fill their ``?``), in staging order, only of ``partitions`` when given:
        how rows leave for a destination other than DuckDB."""
        if not self.row_count:
            return
        where, where_params = "", []
        if partitions is not None and self.spec.partition_column is not None:
            where = f" WHERE {in_dates(self.spec.partition_column)}"
            where_params = [sorted(partitions)]
        cursor = self._connection().execute(
            f"SELECT {', '.join(values.values())} FROM {STAGE_TABLE}{where} ORDER BY rowid",
            [*params, *where_params],
        )
        while batch := cursor.fetchmany(batch_rows):
            yield batch

    def partition_rows(self) -> dict[date, int]:
        """How many rows each staged partition holds."""
        partition = self.spec.partition_column
        if partition is None or not self.row_count:
            return {}
        rows = (
            self._connection()
            .execute(f"SELECT {quote(partition)}, count(*) FROM {STAGE_TABLE} GROUP BY 1")
            .fetchall()
        )
        return dict(rows)

    def _check_names(self, columns: Collection[str]) -> None:
        """Refuse the warehouse's own columns, and names DuckDB would find equal."""
        known = {name.lower(): name for name in self.column_types}
        for name in columns:
            if name in METADATA_COLUMNS:
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
