"""What every destination offers: the warehouse interface, table specs and write results.

The loaders, the checks, the metadata, the merge asset, the retention drop and the
analytics layer see a warehouse only through :class:`Warehouse`. Rows always arrive
through a :class:`~salesexec_assets.warehouse.stage.RowStage` (a local DuckDB file),
whatever the destination; each backend moves a stage into its tables in one transaction
per call. SQL given to :meth:`Warehouse.query` uses ``?`` placeholders on every backend;
where the dialects truly differ, branch on :attr:`Warehouse.kind`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from salesexec_assets.warehouse.types import ColumnType, column_type_of

if TYPE_CHECKING:
    from salesexec_assets.warehouse.stage import RowStage

LOADED_AT_COLUMN = "_loaded_at"
RUN_ID_COLUMN = "_run_id"
METADATA_COLUMNS = (LOADED_AT_COLUMN, RUN_ID_COLUMN)

# A seam for fault-injection tests: called inside a write, between the delete and the
# insert, with a connection whose ``execute(sql, params)`` takes ``?`` placeholders.
BeforeInsert = Callable[[Any], None]


class WarehouseLockTimeout(TimeoutError):
    """Another writer kept the warehouse (or a table) locked longer than we agreed to wait."""


class WarehouseConnectionError(ConnectionError):
    """The destination cannot be reached or refused us; the message names host and
    database, never a password."""


def quote(identifier: str) -> str:
    """An identifier in double quotes, so any column name is safe in SQL (both dialects)."""
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
        for reserved in METADATA_COLUMNS:
            if reserved in columns:
                raise ValueError(f"{reserved} is written by the warehouse; do not declare it")
        partition = self.partition_column
        if partition is not None and columns.get(partition, ColumnType.DATE) != ColumnType.DATE:
            raise ValueError(f"partition column {partition!r} must be DATE")

    @property
    def qualified_name(self) -> str:
        """``"schema"."name"``, quoted, as used in every statement."""
        return f"{quote(self.schema)}.{quote(self.name)}"

    def declared_types(self) -> dict[str, ColumnType]:
        """Declared columns, then the partition column if it was not declared."""
        types = dict(self.columns)
        if self.partition_column is not None:
            types.setdefault(self.partition_column, ColumnType.DATE)
        return types


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


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (None for NULL), as a stage takes them."""
    plain = frame.astype(object).where(frame.notna(), None)
    rows = plain.to_dict("records")
    for row in rows:
        for name, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[name] = value.to_pydatetime()
    return rows


class Warehouse(ABC):
    """A destination: tables written in whole-partition transactions, read with SQL.

    ``kind`` names the dialect (``"duckdb"`` or ``"postgres"``); ``destination`` says
    where the tables are, for logs and the UI, without any secret.
    """

    kind: ClassVar[str]
    logger: logging.Logger

    @property
    def dialect(self) -> str:
        """The SQL dialect of :meth:`query` (the same as ``kind``)."""
        return self.kind

    @property
    @abstractmethod
    def destination(self) -> str:
        """Where the tables live (a file, or a redacted URL): safe to show."""

    def table_name(self, spec: TableSpec) -> str:
        """The table's name as the UI shows it (``dagster/table_name``)."""
        return f"{spec.schema}.{spec.name}"

    # ----------------------------------------------------------------- writes

    @abstractmethod
    def write(
        self,
        stage: RowStage,
        *,
        replace_partitions: Collection[date] | None,
        run_id: str,
        loaded_at: datetime,
        before_insert: BeforeInsert | None = None,
        companions: Sequence[RowStage] = (),
        partitions: Collection[date] | None = None,
    ) -> WriteResult:
        """Move the stage into its table in ONE transaction, replacing whole partitions.

        ``replace_partitions=None`` appends. Otherwise those partitions are emptied first
        (a partition with no staged rows ends up empty), and staged rows outside them are
        refused, because a re-run would duplicate them. ``companions`` (the quarantine)
        go into their own tables in the SAME transaction, replacing the same partitions.
        ``partitions`` moves only the staged rows of those partitions, so that a large
        stage can be written in several transactions of whole days. Returns what
        happened to ``stage``'s table.
        """

    def append(
        self,
        stage: RowStage,
        *,
        run_id: str,
        loaded_at: datetime,
        companions: Sequence[RowStage] = (),
    ) -> WriteResult:
        """Add the stage's rows in one transaction, keeping every earlier row."""
        return self.write(
            stage,
            replace_partitions=None,
            run_id=run_id,
            loaded_at=loaded_at,
            companions=companions,
        )

    @abstractmethod
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

    @abstractmethod
    def drop_partitions_before(self, spec: TableSpec, cutoff: date) -> tuple[date, ...]:
        """Delete every partition older than ``cutoff`` in one transaction (retention)."""

    def write_frame(
        self,
        spec: TableSpec,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        *,
        replace_partitions: Collection[date] | None,
        run_id: str,
        loaded_at: datetime,
    ) -> WriteResult:
        """Write rows (a DataFrame, e.g. a :meth:`query` result, or mappings) into any
        table, replacing ``replace_partitions`` in one transaction (None appends).

        The same path as the loaders': staged, typed and widened the same way.
        """
        from salesexec_assets.warehouse.stage import RowStage

        plain = frame_rows(rows) if isinstance(rows, pd.DataFrame) else rows
        with RowStage(spec) as stage:
            stage.add(plain)
            return self.write(
                stage, replace_partitions=replace_partitions, run_id=run_id, loaded_at=loaded_at
            )

    # ----------------------------------------------------------------- reads

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a read-only query (``?`` placeholders) and return a DataFrame."""

    @abstractmethod
    def table_columns(self, spec: TableSpec) -> dict[str, str]:
        """Column name -> the database's type name; {} when the table does not exist."""

    def column_types(self, spec: TableSpec) -> dict[str, ColumnType]:
        """Column name -> lattice type (the same names on every backend)."""
        return {name: column_type_of(kind) for name, kind in self.table_columns(spec).items()}

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Serve the reads made inside from one connection, where that saves work."""
        yield

    @abstractmethod
    def check_connection(self) -> None:
        """Connect once, write nothing; raise :class:`WarehouseConnectionError` if refused."""

    # ----------------------------------------------------------------- shared rules

    @staticmethod
    def replace_set(
        stage: RowStage,
        replace_partitions: Collection[date] | None,
        only: tuple[date, ...] | None,
    ) -> tuple[date, ...]:
        """The partitions a write empties; refuses staged rows it would duplicate."""
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

    @staticmethod
    def check_upsert_columns(stage: RowStage, key: Sequence[str], newest_by: str) -> None:
        missing = [name for name in (*key, newest_by) if name not in stage.column_types]
        if not key or missing:
            raise ValueError(
                f"upsert needs key and newest_by columns in the stage; missing {missing}"
            )

    def log_writes(self, results: Sequence[WriteResult]) -> None:
        for result in results:
            self.logger.info(
                "wrote %d rows to %s (replaced %d partitions, deleted %d rows, waited %.1f s)",
                result.rows_written,
                result.table,
                len(result.partitions_replaced),
                result.rows_deleted,
                result.lock_wait_seconds,
            )
