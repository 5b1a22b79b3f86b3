"""DuckDB SQL shared by the stage file and the DuckDB warehouse: transactions, schema
evolution rendered as DDL, and the select that converts staged values to a table's types."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb

from salesexec_assets.warehouse.base import LOADED_AT_COLUMN, RUN_ID_COLUMN, quote
from salesexec_assets.warehouse.types import (
    EXACT_INTEGERS,
    ColumnType,
    evolution_report,
    plan_evolution,
)

_LOGGER = logging.getLogger(__name__)

STAGE_TABLE = '"main"."rows"'  # inside the stage file
# the two metadata columns every insert adds; parameters: loaded_at, run_id
METADATA_SELECT = (
    f'CAST(? AS TIMESTAMP) AS "{LOADED_AT_COLUMN}", CAST(? AS VARCHAR) AS "{RUN_ID_COLUMN}"'
)


@contextmanager
def atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
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


def count(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> int:
    """The row count DuckDB returns for INSERT and DELETE."""
    row = con.execute(sql, list(params)).fetchone()
    return int(row[0]) if row else 0


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def widened_value(column: str, have: ColumnType, target: ColumnType, target_sql: str) -> str:
    """``column`` (SQL) of type ``have`` as ``target`` (named ``target_sql`` in the dialect):
    the database's cast, except that a double holding an exact integer becomes that
    integer's text, as :func:`~salesexec_assets.warehouse.types.coerce_value` writes it.
    Valid in DuckDB and in Postgres."""
    if (have, target) != (ColumnType.DOUBLE, ColumnType.VARCHAR):
        return f"CAST({column} AS {target_sql})"
    return (
        f"CASE WHEN {column} = trunc({column}) AND abs({column}) <= {EXACT_INTEGERS} "
        f"THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) ELSE CAST({column} AS VARCHAR) END"
    )


def evolve_columns(
    con: duckdb.DuckDBPyConnection,
    table_sql: str,
    current: Mapping[str, ColumnType],
    incoming: Mapping[str, ColumnType],
) -> tuple[dict[str, ColumnType], list[str], list[tuple[str, str, str]]]:
    """Add missing columns and widen narrower ones (DuckDB DDL) so rows of ``incoming``
    types fit; used for the stage and for warehouse tables. Returns the new types and
    what changed: added names and (column, from, to) widenings."""
    types, added, widened = plan_evolution(current, incoming)
    for name, kind in added:
        con.execute(f"ALTER TABLE {table_sql} ADD COLUMN {quote(name)} {kind.value}")
    for name, have, target in widened:
        using = ""
        if (have, target) == (ColumnType.DOUBLE, ColumnType.VARCHAR):
            using = f" USING {widened_value(quote(name), have, target, target.value)}"
        con.execute(
            f"ALTER TABLE {table_sql} ALTER COLUMN {quote(name)} "
            f"SET DATA TYPE {target.value}{using}"
        )
    return (types, *evolution_report(added, widened))


def in_dates(column: str) -> str:
    """``column IN`` the list of dates given as the statement's next parameter."""
    return f"{quote(column)} IN (SELECT UNNEST(CAST(? AS DATE[])))"


def column_definitions(types: Mapping[str, ColumnType]) -> str:
    return ", ".join(f"{quote(name)} {kind.value}" for name, kind in types.items())


def staged_values(
    staged: Mapping[str, ColumnType], table: Mapping[str, ColumnType]
) -> dict[str, str]:
    """Table column name -> the DuckDB expression reading it from the stage, converted to
    the table's (possibly wider) type the way widening converts stored values."""
    by_key = {name.lower(): (name, kind) for name, kind in table.items()}
    selects = {}
    for name, have in staged.items():
        table_name, target = by_key.get(name.lower(), (name, have))
        column = quote(name)
        selects[table_name] = (
            column if target == have else widened_value(column, have, target, target.value)
        )
    return selects
