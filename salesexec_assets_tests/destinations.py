"""The destinations a test can write to, behind one object: a DuckDB file or a database
on the session's real Postgres server. The ``destination`` fixture (conftest) yields one
of each, so ONE test body proves a behaviour on both backends.

Reads for comparisons go through each backend's own driver (``fetchall``), so values come
back as plain Python values (``date``, ``datetime``, ``int``...) on both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from salesexec_assets.resources import WarehouseResource
from salesexec_assets.settings import DUCKDB_PATH_VAR
from salesexec_assets.warehouse import TableSpec, Warehouse
from salesexec_assets.warehouse.location import (
    WAREHOUSE_PASSWORD_VAR,
    WAREHOUSE_URL_VAR,
    WarehouseLocation,
    parse_warehouse_url,
)
from salesexec_assets.warehouse.types import column_type_of
from salesexec_assets_tests.postgres_server import PostgresServer

DUCKDB, POSTGRES = "duckdb", "postgres"


@dataclass
class Destination:
    """Where a test's tables go, and how to read them back."""

    kind: str
    env: dict[str, str]  # the variables that select it (set by point_env_at)
    location: WarehouseLocation
    path: Path | None = None  # the DuckDB file
    server: PostgresServer | None = None  # read back as its superuser
    password: str | None = field(default=None, repr=False)  # the writers' password
    secrets: tuple[str, ...] = field(default=())  # must never show up anywhere

    @classmethod
    def duckdb_file(cls, path: Path) -> Destination:
        return cls(DUCKDB, {DUCKDB_PATH_VAR: str(path)}, WarehouseLocation.duckdb_file(path), path)

    @classmethod
    def postgres(
        cls,
        server: PostgresServer,
        database: str,
        *,
        user: str | None = None,
        password: str | None = None,
    ) -> Destination:
        """``database`` on ``server``, written to as its superuser, or as ``user`` with
        ``password`` (a role of its own)."""
        login = replace(server, user=user or server.user, password=password or server.password)
        url = login.url(database)
        return cls(
            POSTGRES,
            {WAREHOUSE_URL_VAR: url, WAREHOUSE_PASSWORD_VAR: login.password},
            parse_warehouse_url(url),
            server=server,
            password=login.password,
            secrets=(login.password,),
        )

    def resource_config(self, **config: Any) -> dict[str, Any]:
        """The warehouse resource's config naming this destination (for run config); the
        password stays in the environment (``env``), never in run config."""
        where = {"path": str(self.path)} if self.path else {"url": self.location.display}
        return {**where, **config}

    def run_config(self, **config: Any) -> dict[str, Any]:
        """Run config whose warehouse resource writes here, with ``config`` added."""
        return {"resources": {"warehouse": {"config": self.resource_config(**config)}}}

    def resource(self, **config: Any) -> WarehouseResource:
        return WarehouseResource(**self.resource_config(password=self.password, **config))

    def warehouse(self) -> Warehouse:
        return self.location.open(password=self.password)

    def _fetch(self, sql: str, params: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self.server is not None:
            with self.server.connect(self.location.database) as con, con.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), params)
                return [c.name for c in cursor.description or []], cursor.fetchall()
        assert self.path is not None
        if not self.path.exists():
            return [], []
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            cursor = con.execute(sql, params)
            return [c[0] for c in cursor.description], cursor.fetchall()
        finally:
            con.close()

    def table_exists(self, table: str, schema: str = "salesexec") -> bool:
        sql = (
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?"
        )
        _, rows = self._fetch(sql, [schema, table])
        return bool(rows and rows[0][0])

    def untouched(self) -> bool:
        """Nothing was ever written: no DuckDB file; no ``salesexec`` schema in Postgres."""
        if self.path is not None:
            return not self.path.exists()
        _, rows = self._fetch("SELECT count(*) FROM pg_namespace WHERE nspname = ?", ["salesexec"])
        return rows[0][0] == 0

    def rows(self, table: str, schema: str = "salesexec") -> list[dict[str, Any]]:
        """Every row of ``schema.table`` as dicts of Python values, JSON parsed; [] when
        there is no such table."""
        if not self.table_exists(table, schema):
            return []
        names, rows = self._fetch(f'SELECT * FROM "{schema}"."{table}"', [])
        result = [dict(zip(names, values, strict=True)) for values in rows]
        for row in result:
            for name, value in row.items():
                if name in ("fields", "record") and isinstance(value, str):
                    row[name] = json.loads(value)
        return result

    def types(self, table: str, schema: str = "salesexec") -> dict[str, str]:
        """Column name -> lattice type name (``BIGINT``, ``VARCHAR``...), on both backends."""
        columns = self.warehouse().table_columns(TableSpec(schema, table, partition_column=None))
        return {name: column_type_of(kind).value for name, kind in columns.items()}
