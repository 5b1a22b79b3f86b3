"""Where the tables go: ``SALESEXEC_WAREHOUSE_URL`` parsed, redacted for display, opened.

- unset: the DuckDB file at ``SALESEXEC_DUCKDB_PATH``;
- ``duckdb:///absolute/path.duckdb`` or a plain path: a DuckDB file;
- ``postgresql://USER@HOST:PORT/DBNAME`` (or ``postgres://``), with libpq query
  parameters such as ``sslmode``: Postgres. The password comes from
  ``SALESEXEC_WAREHOUSE_PASSWORD``, else libpq's ``PGPASSWORD`` / ``~/.pgpass``; one
  written inside the URL works too, and is replaced by ``***`` wherever the URL is shown;
- ``md:DBNAME``: MotherDuck (token in ``MOTHERDUCK_TOKEN``), on the DuckDB code path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from salesexec_assets.warehouse.base import TableSpec, Warehouse

WAREHOUSE_URL_VAR = "SALESEXEC_WAREHOUSE_URL"
WAREHOUSE_PASSWORD_VAR = "SALESEXEC_WAREHOUSE_PASSWORD"
MOTHERDUCK_TOKEN_VAR = "MOTHERDUCK_TOKEN"
DUCKDB = "duckdb"
POSTGRES = "postgres"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_FORMS = (
    "postgresql://USER@HOST:PORT/DBNAME, duckdb:///absolute/path.duckdb, a file path, or md:DBNAME"
)
# libpq connection parameters a URL may carry (https://www.postgresql.org/docs/current/libpq-connect.html)
LIBPQ_PARAMETERS = frozenset(
    {
        "application_name",
        "channel_binding",
        "connect_timeout",
        "gssencmode",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "options",
        "passfile",
        "sslcert",
        "sslcrl",
        "sslkey",
        "sslmode",
        "sslrootcert",
        "target_session_attrs",
        "tcp_user_timeout",
    }
)


class WarehouseUrlError(ValueError):
    """``SALESEXEC_WAREHOUSE_URL`` is not a URL of a destination we can write to."""


@dataclass(frozen=True)
class WarehouseLocation:
    """A parsed destination. ``database`` is the DuckDB file (or ``md:NAME``) for DuckDB,
    the database name for Postgres. Never shows ``url_password``."""

    kind: str
    database: str
    host: str = ""
    port: int | None = None
    user: str = ""
    options: tuple[tuple[str, str], ...] = ()
    url_password: str | None = field(default=None, repr=False)

    @classmethod
    def duckdb_file(cls, path: str | Path) -> WarehouseLocation:
        return cls(kind=DUCKDB, database=str(path))

    @property
    def is_motherduck(self) -> bool:
        return self.kind == DUCKDB and self.database.startswith("md:")

    @property
    def display(self) -> str:
        """The destination as logs and the UI show it: no password, no token."""
        if self.kind == DUCKDB:
            return self.database.split("?", 1)[0]
        user = quote(self.user, safe="") + (":***" if self.url_password else "")
        port = f":{self.port}" if self.port else ""
        query = "&".join(f"{name}={value}" for name, value in self.options)
        return f"postgresql://{user}{'@' if user else ''}{self.host}{port}/{self.database}" + (
            f"?{query}" if query else ""
        )

    @property
    def server(self) -> str:
        """``host:port`` (Postgres), for error messages."""
        return f"{self.host}:{self.port or 5432}"

    def table_name(self, spec: TableSpec) -> str:
        """A table's name as the UI shows it: ``database.schema.table`` for Postgres."""
        name = f"{spec.schema}.{spec.name}"
        return f"{self.database}.{name}" if self.kind == POSTGRES else name

    def connect_kwargs(self, password: str | None) -> dict[str, str | int]:
        """psycopg/libpq keyword arguments; without a password libpq looks up
        ``PGPASSWORD`` and ``~/.pgpass`` itself."""
        kwargs: dict[str, str | int] = {"host": self.host, "dbname": self.database}
        if self.port:
            kwargs["port"] = self.port
        if self.user:
            kwargs["user"] = self.user
        kwargs.update(dict(self.options))
        secret = password or self.url_password
        if secret:
            kwargs["password"] = secret
        return kwargs

    def open(
        self,
        *,
        password: str | None = None,
        lock_timeout_seconds: float = 300.0,
        logger: logging.Logger | None = None,
    ) -> Warehouse:
        """The warehouse at this location (nothing is connected yet)."""
        if self.kind == POSTGRES:
            from salesexec_assets.warehouse.postgres import PostgresWarehouse

            return PostgresWarehouse(
                self, password=password, lock_timeout_seconds=lock_timeout_seconds, logger=logger
            )
        from salesexec_assets.warehouse.duckdb import DuckDBWarehouse

        if not self.is_motherduck:
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        return DuckDBWarehouse(
            self.database, lock_timeout_seconds=lock_timeout_seconds, logger=logger
        )


def redact_url(text: str) -> str:
    """``text`` with any password between ``//user:`` and ``@`` replaced by ``***``."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        return text
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return text
    credentials, _, host = authority.rpartition("@")
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}@{host}{slash}{tail}"


def parse_warehouse_url(text: str) -> WarehouseLocation:
    """Parse a destination URL (see the module docstring); an error names the URL redacted."""
    text = text.strip()
    if not text:
        raise WarehouseUrlError(f"{WAREHOUSE_URL_VAR} is empty; give one of: {_FORMS}")
    if text.startswith("md:"):
        name = text[3:].split("?", 1)[0]
        if not name or "/" in name:
            raise _bad(text, "a MotherDuck URL is md:DBNAME")
        return WarehouseLocation(kind=DUCKDB, database=text)
    scheme, separator, rest = text.partition("://")
    if not separator:
        return WarehouseLocation.duckdb_file(text)  # a plain path
    if scheme == "duckdb":
        if not rest.startswith("/"):
            raise _bad(text, "a DuckDB URL names an absolute path: duckdb:///absolute/path.duckdb")
        return WarehouseLocation.duckdb_file(rest)
    if scheme not in _POSTGRES_SCHEMES:
        raise _bad(text, f"unknown scheme {scheme!r}")
    return _parse_postgres(text)


def _parse_postgres(text: str) -> WarehouseLocation:
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise _bad(text, "the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise _bad(text, "the host is missing")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise _bad(text, "the database name is missing (…/DBNAME)")
    try:
        options = tuple(
            parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        )
    except ValueError:
        raise _bad(text, "the query is not name=value pairs joined by &") from None
    unknown = sorted({name for name, _ in options} - LIBPQ_PARAMETERS)
    if unknown:
        raise _bad(text, f"unknown connection parameter(s) {', '.join(unknown)}")
    return WarehouseLocation(
        kind=POSTGRES,
        database=database,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        options=options,
        url_password=unquote(parts.password) if parts.password else None,
    )


def _bad(text: str, reason: str) -> WarehouseUrlError:
    return WarehouseUrlError(
        f"{WAREHOUSE_URL_VAR}={redact_url(text)!r} is not a warehouse URL: {reason} "
        f"(expected {_FORMS})"
    )


def motherduck_token_missing(
    location: WarehouseLocation, environ: dict[str, str] | None = None
) -> bool:
    """Whether a MotherDuck location has no token (neither the variable nor in the URL)."""
    env = os.environ if environ is None else environ
    return (
        location.is_motherduck
        and not env.get(MOTHERDUCK_TOKEN_VAR)
        and "motherduck_token=" not in location.database
    )
