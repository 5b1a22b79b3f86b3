"""Shared fixtures: a real sandbox on loopback, the environment that points at it, a
warehouse file in tmp, and in-process Dagster runs on an ephemeral instance."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, ExecuteInProcessResult

from salesexec_assets.sandbox import SandboxServer, run_sandbox
from salesexec_assets_tests.destinations import DUCKDB, POSTGRES, Destination
from salesexec_assets_tests.figures import Figures
from salesexec_assets_tests.postgres_server import PostgresServer, run_postgres

SANDBOX_USERNAME = "sandbox"
# Distinctive, so that a leak into logs, events or output is found by a plain search.
SANDBOX_PASSWORD = "pw-Xq7-leak-canary-91f3"
SANDBOX_LEADS_PER_DAY = 5

StartSandbox = Callable[..., SandboxServer]
RunAssets = Callable[..., ExecuteInProcessResult]


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    """Start sandboxes (``start_sandbox(schema_drift_from=...)``); all stop after the test.

    Defaults: the distinctive password and a tiny volume.
    """
    with ExitStack() as stack:

        def start(**overrides: Any) -> SandboxServer:
            overrides.setdefault("password", SANDBOX_PASSWORD)
            overrides.setdefault("leads_per_day", SANDBOX_LEADS_PER_DAY)
            return stack.enter_context(run_sandbox(**overrides))

        yield start


@pytest.fixture
def sandbox(start_sandbox: StartSandbox) -> SandboxServer:
    """A running sandbox with the default test settings."""
    return start_sandbox()


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    """The DuckDB file a test writes to (not created yet)."""
    return tmp_path / "warehouse.duckdb"


def salesexec_environment(server: Any, duckdb_path: Path) -> dict[str, str]:
    """The ``SALESEXEC_*`` variables that point the project at ``server`` (a sandbox, or
    anything with a ``base_url``) and ``duckdb_path``."""
    return {
        "SALESEXEC_BASE_URL": server.base_url,
        "SALESEXEC_USERNAME": SANDBOX_USERNAME,
        "SALESEXEC_PASSWORD": SANDBOX_PASSWORD,
        "SALESEXEC_DUCKDB_PATH": str(duckdb_path),
    }


PointEnv = Callable[..., dict[str, str]]


def point_environment(
    monkeypatch: pytest.MonkeyPatch, server: Any, duckdb_path: Path
) -> dict[str, str]:
    """Point this process's environment at ``server`` (anything with a ``base_url``) and
    the file; every other ``SALESEXEC_*`` variable is cleared. Returns the variables set."""
    for name in list(os.environ):
        if name.startswith("SALESEXEC_"):
            monkeypatch.delenv(name)
    variables = salesexec_environment(server, duckdb_path)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture
def point_env_at(
    warehouse_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> PointEnv:
    """``point_env_at(server, duckdb_path=warehouse_path)``: :func:`point_environment`
    for the rest of the test. A test that takes ``destination`` writes there."""

    def point(server: SandboxServer, duckdb_path: Path = warehouse_path) -> dict[str, str]:
        variables = point_environment(monkeypatch, server, duckdb_path)
        if "destination" in request.fixturenames:
            chosen: Destination = request.getfixturevalue("destination")
            for name, value in chosen.env.items():
                monkeypatch.setenv(name, value)
            variables.update(chosen.env)
        return variables

    return point


@pytest.fixture(params=[DUCKDB, POSTGRES])
def destination(request: pytest.FixtureRequest, warehouse_path: Path) -> Destination:
    """Each destination in turn: the DuckDB file ``warehouse_path``, then a fresh database
    on the session's real Postgres server. The environment ``point_env_at`` (and
    ``salesexec_env``) sets up selects it."""
    if request.param == DUCKDB:
        return Destination.duckdb_file(warehouse_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Destination.postgres(server, request.getfixturevalue("postgres_database"))


@pytest.fixture
def salesexec_env(sandbox: SandboxServer, point_env_at: PointEnv) -> dict[str, str]:
    """The environment points at ``sandbox`` and ``warehouse_path``."""
    return point_env_at(sandbox)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (a throwaway cluster on a free loopback
    port, removed at the end). Tests take a database of their own: ``postgres_database``."""
    with run_postgres() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = postgres_server.create_database()
    yield name
    postgres_server.drop_database(name)


@pytest.fixture
def dagster_instance() -> Iterator[DagsterInstance]:
    """An ephemeral Dagster instance (its event log holds every run's logs and events)."""
    with DagsterInstance.ephemeral() as instance:
        yield instance


def execute_assets(
    instance: DagsterInstance,
    defs: Definitions,
    keys: Sequence[AssetKey],
    *,
    partition: str | None = None,
    partition_range: tuple[str, str] | None = None,
    run_config: dict[str, Any] | None = None,
) -> ExecuteInProcessResult:
    """Run assets of a ``Definitions`` in process on ``instance``.

    ``partition="2025-06-10"``, or ``partition_range=(a, b)`` for a single-run range;
    failures are returned, not raised.
    """
    tags = (
        {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
        if partition_range
        else None
    )
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=list(keys),
        partition_key=partition,
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )


@pytest.fixture
def run_assets(dagster_instance: DagsterInstance) -> RunAssets:
    """:func:`execute_assets` on the test's ephemeral instance:
    ``run_assets(defs, keys, partition="2025-06-10")``."""
    return partial(execute_assets, dagster_instance)


FAULT_FIGURES = pytest.StashKey[Figures]()


@pytest.fixture(scope="session")
def fault_figures(request: pytest.FixtureRequest) -> Figures:
    """The fault suite's figures, summed over the session and printed at its end."""
    return request.config.stash.setdefault(FAULT_FIGURES, Figures())


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The fault suite's one line of figures, when it ran (shown with ``-q`` too)."""
    figures = config.stash.get(FAULT_FIGURES, None)
    if figures is not None and not figures.empty:
        terminalreporter.write_line(figures.summary())
