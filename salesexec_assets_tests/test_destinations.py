"""Choosing the destination (``SALESEXEC_WAREHOUSE_URL``): every URL form, validation when
the definitions load (bad URL, unreachable server, wrong password, missing database, each
one sentence naming host and database and never the password, nothing written), the
redaction of a password written inside the URL, MotherDuck up to the connection, and
what the UI shows (asset kinds, table names). Postgres is the real test server."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance, serialize_value

from salesexec_assets.api.contract import REPORTS_BY_NAME
from salesexec_assets.assets import report_asset_key
from salesexec_assets.definitions import build_definitions
from salesexec_assets.records import table_spec
from salesexec_assets.resources import WarehouseResource
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.settings import SettingsError, load_settings
from salesexec_assets.warehouse import DuckDBWarehouse
from salesexec_assets.warehouse.location import parse_warehouse_url, redact_url
from salesexec_assets_tests.conftest import PointEnv, RunAssets
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.postgres_server import PostgresServer
from salesexec_assets_tests.truth import stored_rows

BRANCH_LEAD_COUNT = REPORTS_BY_NAME["branch_lead_count"]
PAST_DAY = date(2025, 6, 10)
URL_VAR = "SALESEXEC_WAREHOUSE_URL"
PASSWORD_VAR = "SALESEXEC_WAREHOUSE_PASSWORD"


@pytest.mark.parametrize(
    ("url", "kind", "database", "display"),
    [
        (
            "postgresql://etl@db.example.com:6543/analytics?sslmode=require",
            "postgres",
            "analytics",
            "postgresql://etl@db.example.com:6543/analytics?sslmode=require",
        ),
        ("postgres://etl@db/analytics", "postgres", "analytics", "postgresql://etl@db/analytics"),
        (
            "postgresql://etl:s3cret@db:5432/analytics",
            "postgres",
            "analytics",
            "postgresql://etl:***@db:5432/analytics",
        ),
        ("duckdb:///srv/data/w.duckdb", "duckdb", "/srv/data/w.duckdb", "/srv/data/w.duckdb"),
        ("data/w.duckdb", "duckdb", "data/w.duckdb", "data/w.duckdb"),
        ("md:analytics", "duckdb", "md:analytics", "md:analytics"),
        ("md:analytics?motherduck_token=tok-123", "duckdb", None, "md:analytics"),
    ],
)
def test_each_url_form_names_its_destination_and_shows_no_secret(
    url: str, kind: str, database: str | None, display: str
) -> None:
    location = parse_warehouse_url(url)
    assert location.kind == kind
    if database is not None:
        assert location.database == database
    assert location.display == display
    assert "s3cret" not in repr(location) and "tok-123" not in location.display


def test_a_postgres_url_carries_host_port_user_and_libpq_parameters() -> None:
    location = parse_warehouse_url(
        "postgresql://etl%40corp@db.example.com:6543/an%20db?sslmode=require"
    )
    assert location.connect_kwargs("pw") == {
        "host": "db.example.com",
        "port": 6543,
        "user": "etl@corp",
        "dbname": "an db",
        "sslmode": "require",
        "password": "pw",
    }
    assert "password" not in parse_warehouse_url("postgresql://etl@db/x").connect_kwargs(None)
    assert redact_url("postgresql://etl:s3cret@db/x") == "postgresql://etl:***@db/x"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://etl:s3cret@db.example.com:notaport/analytics", "the port is not a number"),
        ("postgresql://etl@db.example.com:5432/", "the database name is missing"),
        ("postgresql://etl@:5432/analytics", "the host is missing"),
        ("postgresql://etl@db/analytics?sslmod=require", "unknown connection parameter(s) sslmod"),
        ("mysql://etl@db/analytics", "unknown scheme 'mysql'"),
        ("duckdb://relative.duckdb", "a DuckDB URL names an absolute path"),
        ("md:", "a MotherDuck URL is md:DBNAME"),
    ],
)
def test_a_bad_url_fails_when_the_definitions_load_with_one_sentence(url: str, reason: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({URL_VAR: url})
    message = str(raised.value)
    assert message.startswith(f"{URL_VAR}=") and reason in message
    assert "\n" not in message and "s3cret" not in message


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _no_schema(server: PostgresServer, database: str) -> bool:
    with server.connect(database) as con:
        row = con.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'salesexec'"
        ).fetchone()
    return row is not None and row[0] == 0


def test_an_unreachable_server_fails_at_load_naming_host_and_database() -> None:
    port = _free_port()
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {URL_VAR: f"postgresql://etl@127.0.0.1:{port}/analytics", PASSWORD_VAR: "pw-x1"}
        )
    assert str(raised.value) == (
        f"{URL_VAR}: cannot reach the Postgres server at 127.0.0.1:{port} (database "
        "'analytics'): connection refused (is the server running on that port?)"
    )


def test_a_wrong_password_fails_at_load_without_showing_it_and_writes_nothing(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    wrong = "wrong-pw-Q81"
    with pytest.raises(SettingsError) as raised:
        load_settings({URL_VAR: postgres_server.url(postgres_database), PASSWORD_VAR: wrong})
    message = str(raised.value)
    assert message == (
        f"{URL_VAR}: the Postgres server at {postgres_server.host}:{postgres_server.port} "
        f"refused the password of user 'postgres' for database '{postgres_database}': set "
        "SALESEXEC_WAREHOUSE_PASSWORD (or PGPASSWORD, ~/.pgpass) to the right password"
    )
    assert wrong not in message and postgres_server.password not in message
    assert _no_schema(postgres_server, postgres_database)


def test_a_missing_database_fails_at_load_naming_it_and_the_server(
    postgres_server: PostgresServer,
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {URL_VAR: postgres_server.url("no_such_db"), PASSWORD_VAR: postgres_server.password}
        )
    message = str(raised.value)
    assert message.startswith(
        f"{URL_VAR}: database 'no_such_db' does not exist on the Postgres server at "
        f"{postgres_server.host}:{postgres_server.port}"
    )
    assert postgres_server.password not in message
    with postgres_server.connect() as con:  # nothing was created either
        assert not con.execute("SELECT 1 FROM pg_database WHERE datname = 'no_such_db'").fetchone()


def test_a_password_written_in_the_url_works_and_is_shown_nowhere(
    sandbox: SandboxServer,
    point_env_at: PointEnv,
    postgres_server: PostgresServer,
    postgres_database: str,
    run_assets: RunAssets,
    dagster_instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    point_env_at(sandbox)
    url = postgres_server.url(postgres_database, with_password=True)
    monkeypatch.setenv(URL_VAR, url)
    monkeypatch.delenv(PASSWORD_VAR, raising=False)
    defs = build_definitions(load_settings())

    result = run_assets(defs, [report_asset_key(BRANCH_LEAD_COUNT)], partition=str(PAST_DAY))

    assert result.success
    destination = Destination.postgres(postgres_server, postgres_database)
    assert stored_rows(destination, BRANCH_LEAD_COUNT.name)  # it wrote into that database
    [event] = result.get_asset_materialization_events()
    shown = event.materialization.metadata["warehouse"].value
    assert (
        shown == f"postgresql://postgres:***@127.0.0.1:{postgres_server.port}/{postgres_database}"
    )
    resource = defs.resources["warehouse"]
    texts = [
        repr(resource),
        serialize_value(dagster_instance.get_run_by_id(result.run_id)),
        *(serialize_value(entry) for entry in dagster_instance.all_logs(result.run_id)),
        capfd.readouterr().out,
        caplog.text,
    ]
    for text in texts:
        assert postgres_server.password not in text


def test_motherduck_takes_the_duckdb_path_and_needs_a_token(tmp_path: Path) -> None:
    """MotherDuck cannot be reached from here (its extension calls home when it loads):
    everything up to the connection is checked."""
    with pytest.raises(SettingsError, match="MOTHERDUCK_TOKEN"):
        load_settings({URL_VAR: "md:analytics"})
    settings = load_settings({URL_VAR: "md:analytics", "MOTHERDUCK_TOKEN": "tok-123"})
    location = settings.warehouse_location
    assert (location.kind, location.is_motherduck, location.display) == (
        "duckdb",
        True,
        "md:analytics",
    )
    defs = build_definitions(settings)
    key = report_asset_key(BRANCH_LEAD_COUNT)
    assert defs.resolve_assets_def(key).specs_by_key[key].kinds == {"duckdb"}
    warehouse = WarehouseResource(url="md:analytics").get_warehouse()
    assert isinstance(warehouse, DuckDBWarehouse)
    assert (warehouse.database, warehouse.path, warehouse.destination) == (
        "md:analytics",
        None,
        "md:analytics",
    )
    assert not list(tmp_path.iterdir())  # nothing local was created for it


def test_asset_kinds_and_table_names_name_the_destination(
    destination: Destination, sandbox: SandboxServer, point_env_at: PointEnv
) -> None:
    point_env_at(sandbox)
    defs = build_definitions(load_settings())
    for report in REPORTS_BY_NAME.values():
        key = report_asset_key(report)
        spec = defs.resolve_assets_def(key).specs_by_key[key]
        assert spec.kinds == {destination.kind}
        table = spec.metadata["dagster/table_name"]
        assert table == destination.location.table_name(table_spec(report))
        if destination.kind == "postgres":
            assert table == f"{destination.location.database}.salesexec.{report.name}"


def test_libpqs_own_pgpassword_is_used_when_no_password_is_configured(
    postgres_server: PostgresServer, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    settings = load_settings({URL_VAR: postgres_server.url(postgres_database)})
    assert settings.warehouse_location.kind == "postgres"
    assert not settings.has_warehouse_password
    warehouse = WarehouseResource(url=postgres_server.url(postgres_database)).get_warehouse()
    assert warehouse.query("SELECT 1 AS one")["one"].tolist() == [1]


def test_the_warehouse_resource_never_shows_a_password() -> None:
    resource = WarehouseResource(url="postgresql://etl:in-url-pw@db/x", password="field-pw")
    shown = repr(resource)
    assert "in-url-pw" not in shown and "field-pw" not in shown
    assert "postgresql://etl:***@db/x" in shown
