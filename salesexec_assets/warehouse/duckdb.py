"""The DuckDB destination: a local file (or a MotherDuck database, ``md:NAME``).

DuckDB lets one process at a time open a database file for writing, so a run that held
the warehouse open while pulling pages for minutes would lock every other run out. Pages
are therefore collected in a per-run stage file first, and the warehouse is opened only
afterwards, for one short transaction per group of days: ``BEGIN; evolve schema; DELETE
the partitions; INSERT BY NAME; COMMIT`` with the stage ATTACHed read-only, so rows never
leave DuckDB. DuckDB DDL is transactional, so any failure rolls back columns, deletes and
inserts alike. When another process holds the file, the open is retried with exponential
backoff and jitter until ``lock_timeout_seconds``; reads are retried the same way,
because a read-only open also fails while a writer holds the lock.

Timestamps are naive UTC ``TIMESTAMP``: time-zone arithmetic happens in Python, so the
tables never depend on a DuckDB session time zone or on the ICU extension. Tables are
addressed as ``"schema"."table"``; a warehouse file named like a schema
(``salesexec.duckdb`` with schema ``salesexec``) would make such names ambiguous in
DuckDB, so it is refused.

MotherDuck (``md:NAME``, token in ``MOTHERDUCK_TOKEN``) takes the same code path; its
extension is loaded by DuckDB on connect (which needs the network).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from salesexec_assets.warehouse.base import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
    BeforeInsert,
    TableSpec,
    Warehouse,
    WarehouseConnectionError,
    WarehouseLockTimeout,
    WriteResult,
    quote,
)
from salesexec_assets.warehouse.duckdb_sql import (
    METADATA_SELECT,
    STAGE_TABLE,
    atomic,
    column_definitions,
    count,
    evolve_columns,
    in_dates,
    sql_string,
    staged_values,
)
from salesexec_assets.warehouse.stage import RowStage
from salesexec_assets.warehouse.types import ColumnType, column_type_of, naive_utc

_LOGGER = logging.getLogger(__name__)

WRITE_MEMORY_LIMIT = "64MB"  # DuckDB's buffer pool during a warehouse write
_LOCK_MESSAGES = ("Could not set lock", "Conflicting lock")
MOTHERDUCK_PREFIX = "md:"


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


_BEING_CREATED = "not a valid DuckDB database file"
_CREATION_SECONDS = 10.0  # a file this young that is "not valid" is being created by another run


def _is_lock_error(error: duckdb.Error, path: Path | None) -> bool:
    """Whether another process holds the file: its lock, or it is creating the file right
    now (two runs opening a new warehouse at once: one sees the other's half-written
    header, which is a wait, not a corrupt file)."""
    message = str(error)
    if any(text in message for text in _LOCK_MESSAGES):
        return True
    if _BEING_CREATED in message and path is not None:
        try:
            return time.time() - path.stat().st_mtime < _CREATION_SECONDS
        except FileNotFoundError:
            return True
    return False


class DuckDBWarehouse(Warehouse):
    """The shared warehouse file, opened only for short transactions and closed after each.

    ``database`` is a file path, or ``md:NAME`` for MotherDuck (``path`` is then None).
    ``lock_timeout_seconds`` bounds how long an open waits for another process's lock.
    """

    kind = "duckdb"

    _FIRST_DELAY_SECONDS = 0.1
    _MAX_DELAY_SECONDS = 5.0

    def __init__(
        self,
        database: str | Path,
        *,
        lock_timeout_seconds: float = 300.0,
        logger: logging.Logger | None = None,
    ) -> None:
        text = str(database)
        self.database = text
        self.path: Path | None = None if text.startswith(MOTHERDUCK_PREFIX) else Path(text)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.logger = logger or _LOGGER
        self._reader: duckdb.DuckDBPyConnection | None = None  # see reading()

    @property
    def destination(self) -> str:
        return self.database

    def _exists(self) -> bool:
        """Whether there may be tables to read (a MotherDuck database always may)."""
        return self.path is None or self.path.exists()

    def check_connection(self) -> None:
        """Open the database once (a file is created if missing, as the first write would)."""
        try:
            with self._session(read_only=False):
                pass
        except (duckdb.Error, OSError) as error:
            raise WarehouseConnectionError(
                f"cannot open the DuckDB warehouse {self.database}: {error}"
            ) from error

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
                if not _is_lock_error(error, self.path):
                    raise
                waited = time.monotonic() - started
                remaining = self.lock_timeout_seconds - waited
                if remaining <= 0:
                    raise WarehouseLockTimeout(
                        f"warehouse file {self.database} is still locked by another writer after "
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
                    self.database,
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
            return duckdb.connect(self.database, read_only=read_only)
        except duckdb.ConnectionException as error:
            # This process already has the file open read-write (connections share one
            # instance, whose configuration a read-only open may not change): join it.
            if read_only and "different configuration" in str(error):
                return duckdb.connect(self.database)
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
            con.execute(f"SET memory_limit = {sql_string(WRITE_MEMORY_LIMIT)}")
            # Unique aliases, detached explicitly: attachments belong to the database
            # instance, which other connections of this process may share.
            aliases: list[str] = []
            try:
                for stage in stages:
                    alias = f"_stage_{uuid.uuid4().hex[:12]}"
                    stage.release()
                    con.execute(f"ATTACH {sql_string(str(stage.path))} AS {alias} (READ_ONLY)")
                    aliases.append(alias)
                    session.stage_tables.append(f"{alias}.{STAGE_TABLE}")
                with atomic(con):
                    yield session
            finally:
                for alias in aliases:
                    con.execute(f"DETACH {alias}")

    def _check_name(self, spec: TableSpec) -> None:
        if self.path is not None and self.path.stem.lower() == spec.schema.lower():
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
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(spec.schema)}")
        initial = {
            **spec.declared_types(),
            LOADED_AT_COLUMN: ColumnType.TIMESTAMP,
            RUN_ID_COLUMN: ColumnType.VARCHAR,
        }
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {spec.qualified_name} ({column_definitions(initial)})"
        )
        current = {
            name: column_type_of(kind) for name, kind in self._read_columns(con, spec).items()
        }
        return evolve_columns(con, spec.qualified_name, current, incoming)

    # ----------------------------------------------------------------- public API

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
        """See :meth:`Warehouse.write`; the stages are ATTACHed, so rows stay in DuckDB.

        ``before_insert`` gets the DuckDB connection inside the transaction.
        """
        stages = (stage, *companions)
        only = None if partitions is None else tuple(sorted(set(partitions)))
        replaces = []
        for each in stages:
            self._check_name(each.spec)
            replaces.append(self.replace_set(each, replace_partitions, only))
        with self._transaction(*stages) as session:
            results = [
                self._replace_rows(
                    session,
                    each,
                    session.stage_tables[index],
                    replaces[index],
                    [naive_utc(loaded_at), run_id],
                    before_insert if index == 0 else None,
                    only,
                )
                for index, each in enumerate(stages)
            ]
        self.log_writes(results)
        return results[0]

    def _replace_rows(
        self,
        session: _Session,
        stage: RowStage,
        stage_table: str,
        replace: tuple[date, ...],
        stamps: list[Any],
        before_insert: BeforeInsert | None,
        only: tuple[date, ...] | None,
    ) -> WriteResult:
        """Inside a write transaction: evolve the table, delete ``replace``, insert (the
        staged rows of the ``only`` partitions, or all)."""
        con, spec = session.con, stage.spec
        table = spec.qualified_name
        types, added, widened = self._prepare_table(con, spec, stage.column_types)
        deleted = 0
        if replace and spec.partition_column is not None:
            deleted = count(
                con,
                f"DELETE FROM {table} WHERE {in_dates(spec.partition_column)}",
                [list(replace)],
            )
        if before_insert is not None:
            before_insert(con)
        where, only_params = "", []
        if only is not None and spec.partition_column is not None:
            where = f" WHERE {in_dates(spec.partition_column)}"
            only_params = [list(only)]
        values = staged_values(stage.column_types, types)
        select = ", ".join(f"{value} AS {quote(name)}" for name, value in values.items())
        written = count(
            con,
            f"INSERT INTO {table} BY NAME SELECT {select}, {METADATA_SELECT} "
            f"FROM {stage_table}{where}",
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

    def drop_partitions_before(self, spec: TableSpec, cutoff: date) -> tuple[date, ...]:
        """Delete every partition older than ``cutoff`` in one transaction (retention)."""
        self._check_name(spec)
        partition = spec.partition_column
        if partition is None:
            raise ValueError(f"{spec.qualified_name} has no partition column")
        if not self._exists():
            return ()
        column = quote(partition)
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
        """See :meth:`Warehouse.upsert`; the newest staged row per key is picked in a
        temporary table, then replaces older stored rows in the same transaction."""
        self._check_name(target)
        self.check_upsert_columns(stage, key, newest_by)
        table = target.qualified_name
        with self._transaction(stage) as session:
            con = session.con
            types, added, widened = self._prepare_table(con, target, stage.column_types)

            def incoming(name: str) -> str:
                # compare in the table's (widened) type so both sides agree
                return f"CAST(i.{quote(name)} AS {types[name].value})"

            same_key = " AND ".join(
                f"t.{quote(name)} IS NOT DISTINCT FROM {incoming(name)}" for name in key
            )
            newest = quote(newest_by)
            partition_by = ", ".join(quote(name) for name in key)
            con.execute(
                "CREATE TEMP TABLE _incoming AS SELECT * EXCLUDE (_rank) FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY {partition_by} "
                f"ORDER BY {newest} DESC NULLS LAST, rowid DESC) AS _rank "
                f"FROM {session.stage_table}) WHERE _rank = 1"
            )
            deleted = count(
                con,
                f"DELETE FROM {table} AS t USING _incoming AS i WHERE {same_key} "
                f"AND NOT (t.{newest} IS NOT NULL AND "
                f"(i.{newest} IS NULL OR t.{newest} > {incoming(newest_by)}))",
            )
            written = count(
                con,
                f"INSERT INTO {table} BY NAME SELECT i.*, {METADATA_SELECT} "
                f"FROM _incoming AS i WHERE NOT EXISTS (SELECT 1 FROM {table} AS t "
                f"WHERE {same_key})",
                [naive_utc(loaded_at), run_id],
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
        if self._reader is not None or not self._exists():
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
        if not self._exists():
            return {}
        with self._read_connection() as con:
            return self._read_columns(con, spec)
