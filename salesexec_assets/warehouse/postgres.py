"""The Postgres destination, with psycopg 3: binary COPY, one transaction per group of days.

Rows are staged locally (the DuckDB stage file) as for every destination; a write then
opens ONE Postgres transaction per call: take the tables' advisory locks, evolve the
schema (``ADD COLUMN``; widening ``ALTER COLUMN ... TYPE ... USING`` along the lattice of
:mod:`~salesexec_assets.warehouse.types`), delete the partitions, ``COPY ... FROM STDIN``
in binary the staged rows (converted to the table's types by DuckDB while they are read
from the stage), write the quarantine rows the same way, commit. Postgres DDL is
transactional: any failure rolls back columns, deletes and rows alike.

Parallel writers. Writes of one table are serialised by a transaction-level advisory
lock per table (``pg_advisory_xact_lock(hashtext('salesexec-assets:schema.table'))``,
released by the commit or rollback); different tables are written in parallel. The wait
is bounded by ``lock_timeout`` (``lock_timeout_seconds``, which also bounds waits for
locks that readers hold) and logged, as DuckDB's file-lock waits are; when it runs out,
:class:`WarehouseLockTimeout` names the table and the wait.

Types: ``timestamp without time zone`` holding UTC, ``partition_date date``, JSON as
``jsonb``; the names are in :data:`~salesexec_assets.warehouse.types.POSTGRES_TYPES`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import Format
from psycopg.types.string import TextLoader

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
from salesexec_assets.warehouse.duckdb_sql import staged_values, widened_value
from salesexec_assets.warehouse.location import WarehouseLocation
from salesexec_assets.warehouse.stage import RowStage
from salesexec_assets.warehouse.types import (
    POSTGRES_TYPES,
    ColumnType,
    column_type_of,
    evolution_report,
    naive_utc,
    plan_evolution,
)

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
LOCK_NAMESPACE = "salesexec-assets:"
COPY_BATCH_ROWS = 10_000


class JsonText(str):
    """JSON text as the stage holds it (the type the dumper below is registered for)."""


class JsonbTextBinaryDumper(Dumper):
    """jsonb in COPY's binary format straight from JSON text (version 1 + the text):
    the staged text is already valid JSON, so nothing is parsed and dumped again.
    Registered on the COPY's cursor only, where it serves every jsonb column."""

    format = Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + obj.encode()


def qmark_to_pyformat(sql: str) -> str:
    """``?`` placeholders (DuckDB's, used by every caller) as psycopg's ``%s``, leaving
    quoted strings and identifiers alone; a literal ``%`` becomes ``%%``."""
    out: list[str] = []
    quote_char: str | None = None
    for char in sql:
        if quote_char:
            if char == quote_char:
                quote_char = None
        elif char in "'\"":
            quote_char = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


class QmarkConnection:
    """A psycopg connection whose ``execute`` takes ``?`` placeholders (the
    ``before_insert`` seam gets one, so a test's SQL runs on either backend)."""

    def __init__(self, con: psycopg.Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.con.execute(qmark_to_pyformat(sql), list(params))


def describe_connection_error(location: WarehouseLocation, error: Exception) -> str:
    """One sentence naming host and database (never the password) for a refused connect."""
    text = str(error)
    lowered = text.lower()
    where = f"the Postgres server at {location.server}"
    database = location.database
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f"{where} refused the password of user {location.user or '(default)'!r} for "
            f"database {database!r}: set SALESEXEC_WAREHOUSE_PASSWORD (or PGPASSWORD, "
            "~/.pgpass) to the right password"
        )
    if "does not exist" in lowered and "database" in lowered:
        return (
            f"database {database!r} does not exist on {where}: create it "
            f"(CREATE DATABASE {quote(database)}) or fix SALESEXEC_WAREHOUSE_URL"
        )
    reasons = {
        "connection refused": "connection refused (is the server running on that port?)",
        "timeout": "timed out",
        "timed out": "timed out",
        "could not translate host name": "unknown host name",
        "name or service not known": "unknown host name",
        "no route to host": "no route to host",
        "network is unreachable": "network unreachable",
    }
    for marker, reason in reasons.items():
        if marker in lowered:
            return f"cannot reach {where} (database {database!r}): {reason}"
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if location.url_password:
        first_line = first_line.replace(location.url_password, "***")
    return f"cannot connect to database {database!r} on {where}: {first_line}"


class PostgresWarehouse(Warehouse):
    """A Postgres database, through one connection per warehouse object (opened on first
    use, reused by every write and read, reopened if it broke; ``close()`` ends it)."""

    kind = "postgres"

    def __init__(
        self,
        location: WarehouseLocation,
        *,
        password: str | None = None,
        lock_timeout_seconds: float = 300.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.location = location
        self._password = password
        self.lock_timeout_seconds = lock_timeout_seconds
        self.logger = logger or _LOGGER
        self._con: psycopg.Connection | None = None  # one per warehouse, reused

    def __repr__(self) -> str:
        return f"PostgresWarehouse({self.destination!r})"

    @property
    def destination(self) -> str:
        return self.location.display

    def table_name(self, spec: TableSpec) -> str:
        return self.location.table_name(spec)

    # ----------------------------------------------------------------- connections

    def _connect(self) -> psycopg.Connection:
        kwargs = self.location.connect_kwargs(self._password)
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        kwargs.setdefault("application_name", "salesexec-assets")
        try:
            con = psycopg.connect(**kwargs, autocommit=True)  # transactions are explicit
        except psycopg.Error as error:
            raise WarehouseConnectionError(
                describe_connection_error(self.location, error)
            ) from None  # the cause may quote the connection string
        # JSON reads as the text it was written as (DuckDB's query() does the same)
        con.adapters.register_loader("jsonb", TextLoader)
        con.adapters.register_loader("json", TextLoader)
        return con

    def _connection(self) -> psycopg.Connection:
        """This warehouse's connection, opened on first use and reused (a connect costs
        a round trip and a password exchange), reopened when it broke."""
        if self._con is None or self._con.closed or self._con.broken:
            self._con = self._connect()
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def check_connection(self) -> None:
        with self._connect() as con:
            con.execute("SELECT 1")

    @contextmanager
    def _transaction(
        self, tables: Sequence[TableSpec], *, create_schemas: bool = True
    ) -> Iterator[tuple[psycopg.Connection, float, int]]:
        """One transaction holding the tables' advisory locks; yields (connection, seconds
        waited for the locks, lock attempts). Any exception rolls everything back."""
        con = self._connection()
        try:
            if create_schemas:
                self._create_schemas({spec.schema for spec in tables}, con)
            with con.transaction():
                con.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout_seconds * 1000)}ms'")
                yield con, *self._lock_tables(con, tables)
        except pg_errors.LockNotAvailable as error:
            raise WarehouseLockTimeout(
                f"a table in {self.destination} stayed locked by another writer or reader "
                f"beyond the lock timeout ({self.lock_timeout_seconds:g} s): {error}"
            ) from error

    def _create_schemas(self, schemas: Collection[str], con: psycopg.Connection) -> None:
        """Create missing schemas, each in its own short transaction under a lock (two
        writers creating one schema at once would otherwise collide)."""
        for schema in sorted(schemas):
            exists = con.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]
            ).fetchone()
            if exists:
                continue
            with con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [LOCK_NAMESPACE + schema])
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")

    def _lock_tables(
        self, con: psycopg.Connection, tables: Sequence[TableSpec]
    ) -> tuple[float, int]:
        """Take each table's advisory lock (in name order, so writers never deadlock);
        a wait is logged and bounded by ``lock_timeout``. Returns the seconds waited and
        the attempts made (1, plus one per lock that had to be waited for)."""
        started = time.monotonic()
        attempts = 1
        for name in sorted({f"{spec.schema}.{spec.name}" for spec in tables}):
            key = LOCK_NAMESPACE + name
            row = con.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [key]).fetchone()
            if row and row[0]:
                continue
            attempts += 1
            self.logger.info(
                "table %s in %s is being written by another run; waiting up to %g s",
                name,
                self.destination,
                self.lock_timeout_seconds,
            )
            try:
                con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])
            except pg_errors.LockNotAvailable as error:
                raise WarehouseLockTimeout(
                    f"table {name} in {self.destination} is still locked by another writer "
                    f"after waiting {time.monotonic() - started:.1f} s (limit "
                    f"{self.lock_timeout_seconds:g} s)"
                ) from error
        return time.monotonic() - started, attempts

    # ----------------------------------------------------------------- schema

    @staticmethod
    def _read_columns(con: psycopg.Connection, spec: TableSpec) -> dict[str, str]:
        rows = con.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            [spec.qualified_name],
        ).fetchall()
        return dict(rows)

    def _prepare_table(
        self, con: psycopg.Connection, spec: TableSpec, incoming: Mapping[str, ColumnType]
    ) -> tuple[dict[str, ColumnType], list[str], list[tuple[str, str, str]]]:
        """Create the table if needed, then add and widen columns so ``incoming`` fits."""
        initial = {
            **spec.declared_types(),
            LOADED_AT_COLUMN: ColumnType.TIMESTAMP,
            RUN_ID_COLUMN: ColumnType.VARCHAR,
        }
        definitions = ", ".join(f"{quote(n)} {POSTGRES_TYPES[k]}" for n, k in initial.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {spec.qualified_name} ({definitions})")
        current = {
            name: column_type_of(kind) for name, kind in self._read_columns(con, spec).items()
        }
        types, added, widened = plan_evolution(current, incoming)
        for name, kind in added:
            con.execute(
                f"ALTER TABLE {spec.qualified_name} ADD COLUMN {quote(name)} {POSTGRES_TYPES[kind]}"
            )
        for name, have, target in widened:
            target_sql = POSTGRES_TYPES[target]
            con.execute(
                f"ALTER TABLE {spec.qualified_name} ALTER COLUMN {quote(name)} TYPE {target_sql} "
                f"USING {widened_value(quote(name), have, target, target_sql)}"
            )
        return (types, *evolution_report(added, widened))

    # ----------------------------------------------------------------- rows

    def _copy_stage(
        self,
        con: psycopg.Connection,
        table_sql: str,
        stage: RowStage,
        types: Mapping[str, ColumnType],
        partitions: Collection[date] | None,
        extra: Mapping[str, tuple[ColumnType, Any]] = {},
        *,
        with_order: bool = False,
    ) -> int:
        """Binary COPY of the staged rows (of ``partitions``) into ``table_sql``, converted
        to the table's ``types`` while DuckDB reads them; ``extra`` columns get one value
        each (the load stamps); ``with_order`` adds the staging order as ``_ord``."""
        values = dict(staged_values(stage.column_types, types))
        by_key = {name.lower(): kind for name, kind in types.items()}
        column_types = [by_key[name.lower()] for name in values]
        if with_order:
            values = {**values, "_ord": "rowid"}
            column_types.append(ColumnType.BIGINT)
        # the load stamps are constants of the stage's SELECT: no per-row work here
        values.update({name: f"CAST(? AS {kind.value})" for name, (kind, _) in extra.items()})
        column_types += [kind for kind, _ in extra.values()]
        constants = [value for _, value in extra.values()]
        columns = ", ".join(quote(name) for name in values)
        written = 0
        with con.cursor() as cursor:
            cursor.adapters.register_dumper(JsonText, JsonbTextBinaryDumper)
            statement = f"COPY {table_sql} ({columns}) FROM STDIN (FORMAT BINARY)"
            # the network sends run in psycopg's writer thread, while this one reads the
            # stage and formats rows (measured: benchmarks/RESULTS.md)
            with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
                copy.set_types([copy_type_name(kind) for kind in column_types])
                batches = stage.batches(
                    values, partitions, params=constants, batch_rows=COPY_BATCH_ROWS
                )
                for batch in batches:
                    for row in batch:
                        copy.write_row(row)
                    written += len(batch)
        return written

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
        """See :meth:`Warehouse.write`; ``before_insert`` gets a :class:`QmarkConnection`."""
        stages = (stage, *companions)
        only = None if partitions is None else tuple(sorted(set(partitions)))
        replaces = [self.replace_set(each, replace_partitions, only) for each in stages]
        stamps = {
            LOADED_AT_COLUMN: (ColumnType.TIMESTAMP, naive_utc(loaded_at)),
            RUN_ID_COLUMN: (ColumnType.VARCHAR, run_id),
        }
        with self._transaction([each.spec for each in stages]) as (con, waited, attempts):
            results = []
            for index, each in enumerate(stages):
                spec = each.spec
                table = spec.qualified_name
                types, added, widened = self._prepare_table(con, spec, each.column_types)
                deleted = 0
                if replaces[index] and spec.partition_column is not None:
                    deleted = con.execute(
                        f"DELETE FROM {table} WHERE {quote(spec.partition_column)} = ANY(%s)",
                        [list(replaces[index])],
                    ).rowcount
                if before_insert is not None and index == 0:
                    before_insert(QmarkConnection(con))
                written = self._copy_stage(con, table, each, types, only, stamps)
                results.append(
                    WriteResult(
                        table=table,
                        rows_written=written,
                        partitions_replaced=replaces[index],
                        rows_deleted=deleted,
                        columns_added=tuple(added),
                        columns_widened=tuple(widened),
                        lock_wait_seconds=waited,
                        lock_attempts=attempts,
                    )
                )
        self.log_writes(results)
        return results[0]

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
        """See :meth:`Warehouse.upsert`: staged rows are copied into a temporary table,
        the newest per key kept, then deleted-and-inserted in one transaction."""
        self.check_upsert_columns(stage, key, newest_by)
        table = target.qualified_name
        with self._transaction([target]) as (con, waited, attempts):
            types, added, widened = self._prepare_table(con, target, stage.column_types)
            table_columns = {name.lower(): name for name in types}
            names = [table_columns[name.lower()] for name in stage.column_types]
            definitions = ", ".join(
                f"{quote(name)} {POSTGRES_TYPES[types[name]]}" for name in names
            )
            con.execute(f"CREATE TEMP TABLE _incoming ({definitions}, _ord bigint) ON COMMIT DROP")
            self._copy_stage(con, "_incoming", stage, types, None, with_order=True)
            columns = ", ".join(quote(name) for name in names)
            newest = quote(newest_by)
            con.execute(
                f"CREATE TEMP TABLE _newest ON COMMIT DROP AS SELECT {columns} FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY {', '.join(quote(k) for k in key)} "
                f"ORDER BY {newest} DESC NULLS LAST, _ord DESC) AS _rank FROM _incoming) r "
                "WHERE _rank = 1"
            )
            same_key = " AND ".join(
                f"t.{quote(name)} IS NOT DISTINCT FROM i.{quote(name)}" for name in key
            )
            deleted = con.execute(
                f"DELETE FROM {table} AS t USING _newest AS i WHERE {same_key} "
                f"AND NOT (t.{newest} IS NOT NULL AND "
                f"(i.{newest} IS NULL OR t.{newest} > i.{newest}))"
            ).rowcount
            stamps = f"{quote(LOADED_AT_COLUMN)}, {quote(RUN_ID_COLUMN)}"
            written = con.execute(
                f"INSERT INTO {table} ({columns}, {stamps}) "
                f"SELECT {columns}, %s, %s FROM _newest AS i "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {same_key})",
                [naive_utc(loaded_at), run_id],
            ).rowcount
        result = WriteResult(
            table=table,
            rows_written=written,
            partitions_replaced=(),
            rows_deleted=deleted,
            columns_added=tuple(added),
            columns_widened=tuple(widened),
            lock_wait_seconds=waited,
            lock_attempts=attempts,
        )
        self.logger.info(
            "upserted %d rows into %s (replaced %d)", written, self.table_name(target), deleted
        )
        return result

    def drop_partitions_before(self, spec: TableSpec, cutoff: date) -> tuple[date, ...]:
        partition = spec.partition_column
        if partition is None:
            raise ValueError(f"{spec.qualified_name} has no partition column")
        column = quote(partition)
        with self._transaction([spec], create_schemas=False) as (con, _, _):
            if not self._read_columns(con, spec):
                return ()
            dropped = tuple(
                row[0]
                for row in con.execute(
                    f"WITH gone AS (DELETE FROM {spec.qualified_name} WHERE {column} < %s "
                    f"RETURNING {column}) SELECT DISTINCT {column} FROM gone ORDER BY 1",
                    [cutoff],
                ).fetchall()
            )
        self.logger.info(
            "dropped %d partitions of %s before %s", len(dropped), self.table_name(spec), cutoff
        )
        return dropped

    # ----------------------------------------------------------------- reads

    @contextmanager
    def _read_connection(self) -> Iterator[psycopg.Connection]:
        """Reads share the warehouse's one connection (``reading()`` needs no more)."""
        yield self._connection()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._read_connection() as con, con.cursor() as cursor:
            cursor.execute(qmark_to_pyformat(sql), list(params))
            return _frame(cursor)

    def table_columns(self, spec: TableSpec) -> dict[str, str]:
        with self._read_connection() as con:
            return self._read_columns(con, spec)


# pandas dtypes of query results by Postgres type, as DuckDB's ``.df()`` gives them for the
# same columns, so that ``query()`` returns the same frame on both backends
_FRAME_DTYPES = {
    "int2": "Int64",
    "int4": "Int64",
    "int8": "Int64",
    "float4": "float64",
    "float8": "float64",
    "numeric": "float64",
    "date": "datetime64[us]",
    "timestamp": "datetime64[us]",
}


def _frame(cursor: psycopg.Cursor) -> pd.DataFrame:
    """A query's rows as a DataFrame typed like DuckDB's (nullable integers, NaT...)."""
    if cursor.description is None:
        return pd.DataFrame()
    rows = cursor.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(cursor.description)
    data = {}
    for column, values in zip(cursor.description, columns, strict=True):
        info = psycopg.postgres.types.get(column.type_code)
        dtype = _FRAME_DTYPES.get(info.name if info else "")
        if dtype == "float64":
            values = tuple(float("nan") if value is None else float(value) for value in values)
        data[column.name] = pd.Series(list(values), dtype=dtype or object)
    return pd.DataFrame(data)


def copy_type_name(kind: ColumnType) -> str:
    """The type name COPY's binary format is told for a column of ``kind``."""
    return "jsonb" if kind == ColumnType.JSON else POSTGRES_TYPES[kind]
