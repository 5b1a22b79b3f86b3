"""The test Postgres server is real: it stores data, and refuses a wrong password."""

from __future__ import annotations

import psycopg
import pytest

from salesexec_assets_tests.postgres_server import PostgresServer


def test_a_fresh_database_stores_and_returns_rows(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    with postgres_server.connect(postgres_database) as con:
        con.execute("CREATE TABLE t (x int)")
        con.execute("INSERT INTO t VALUES (1), (2)")
        assert con.execute("SELECT sum(x) FROM t").fetchone() == (3,)


def test_a_wrong_password_is_refused_over_tcp(postgres_server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password="not-the-password",
            dbname="postgres",
        )
