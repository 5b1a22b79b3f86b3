"""The deployed topology (GitHub issue 12), on one machine, as separate processes.

What ``deploy/docker-compose.yaml`` and ``deploy/Dockerfile`` start, with the commands
read from those files (only hosts, ports and the workspace path differ):

- a code server for ``salesexec_assets.definitions`` (the Dockerfile's CMD,
  ``dagster code-server start``) on a free loopback port; its environment alone holds
  the SalesExec settings and password, as the ``code_server`` service's does;
- ``dagster-webserver -w deploy/workspace.yaml`` and ``dagster-daemon run -w ...``,
  which find the code server through ``SALESEXEC_CODE_SERVER_HOST``/``_PORT``;
- each process with a ``DAGSTER_HOME`` of its own holding ``deploy/dagster.yaml``
  unchanged (as each container has its own file system), Dagster's storage in a fresh
  database of the real Postgres test server (``DAGSTER_PG_*``).

Through GraphQL, as the UI does: a backfill of the five windowed reports over
:data:`BACKFILL_DAYS` days and of the "now" report for today; the daemon's queue runs
them (the default run launcher: each run is a process of the code server, which reads a
real sandbox over HTTP with the password). The tables must equal the sandbox's truth.
Then the code server's process group is killed with SIGKILL (a container or pod lost),
and a code server comes back on the same address, started as the Helm chart starts it
(``dagster api grpc`` with ``deploy/helm-values.yaml``'s arguments), so that both
commands are exercised. The webserver and the daemon must recover and a second backfill
(the day before) succeed. Dagster's own tables must be in Postgres, no SQLite file in any
``DAGSTER_HOME``, the passwords in no log and no Postgres row.

:data:`WAREHOUSES` lists the warehouse variants, each a
:class:`~salesexec_assets_tests.destinations.Destination` the one truth comparison of
``e2e_truth`` reads: a DuckDB file (one host), and a database of the same Postgres server
owned by a role of its own, whose password (``SALESEXEC_WAREHOUSE_PASSWORD``) only the
code server's environment holds, as a deployment gives the warehouse credentials of its
own.

Process logs go to ``test-artifacts/topology/`` when a test of this module fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from salesexec_assets.assets import API_POOL
from salesexec_assets.sandbox import SandboxServer, run_sandbox
from salesexec_assets_tests.conftest import (
    SANDBOX_LEADS_PER_DAY,
    SANDBOX_PASSWORD,
    salesexec_environment,
)
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.e2e_dagster import (
    LOCATION_NAME,
    REPO_ROOT,
    Backfill,
    DagsterDevError,
    backfill_reports,
    describe,
    free_port,
    location_status,
    post_graphql,
    start_logged_process,
    stop_process_group,
    wait_until_clear_of_midnight,
    wait_until_loaded,
)
from salesexec_assets_tests.e2e_truth import (
    NOW_ONLY,
    WINDOWED,
    asset_path,
    compare_with_truth,
    last_days,
)
from salesexec_assets_tests.postgres_server import PostgresServer

pytestmark = pytest.mark.topology

DEPLOY = REPO_ROOT / "deploy"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "topology"
ZONE = "UTC"
BACKFILL_DAYS = 3
LOAD_TIMEOUT_SECONDS = 180.0
BACKFILL_TIMEOUT_SECONDS = 300.0
# After the restart, the webserver gets this long to notice the new server by itself
# before the test reloads the location through GraphQL, as a user would click "Reload".
SELF_RECOVERY_SECONDS = 60.0
STOP_GRACE_SECONDS = 15.0

SQLITE_MAGIC = b"SQLite format 3\x00"
# The Dagster tables that must be in Postgres, and hold rows after the backfills.
DAGSTER_TABLES = ("runs", "event_logs", "bulk_actions", "run_tags")


# --- the commands, read from the deploy files -----------------------------------------


def dockerfile_cmd(path: Path = DEPLOY / "Dockerfile") -> list[str]:
    """The exec-form ``CMD [...]`` of the Dockerfile."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("CMD "):
            return list(json.loads(line[len("CMD ") :]))
    raise AssertionError(f"{path} has no exec-form CMD")


def compose_services(path: Path = DEPLOY / "docker-compose.yaml") -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8"))["services"])


def helm_grpc_command(path: Path = DEPLOY / "helm-values.yaml") -> list[str]:
    """What the chart runs for our user deployment: ``dagster api grpc`` + its arguments."""
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return [
        "dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(deployment["port"]),
        *deployment["dagsterApiGrpcArgs"],
    ]  # fmt: skip


def compose_healthcheck(service: str) -> list[str]:
    """The command of a service's ``CMD`` healthcheck in docker-compose.yaml."""
    test = compose_services()[service]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return list(test[1:])


def with_options(command: Sequence[str], options: Mapping[str, str]) -> list[str]:
    """``command`` with the values of the given options replaced (each must be there)."""
    result = list(command)
    for option, value in options.items():
        assert option in result, f"{option} not in {command}"
        result[result.index(option) + 1] = value
    return result


def local_executable(command: Sequence[str]) -> list[str]:
    """The command with its console script taken from this interpreter's environment."""
    script = Path(sys.executable).parent / command[0]
    assert script.exists(), f"{command[0]} is not installed next to {sys.executable}"
    return [str(script), *command[1:]]


# --- the processes --------------------------------------------------------------------


@dataclass
class DagsterProcess:
    """One service of the topology: its command, environment, home and log."""

    name: str
    command: list[str]
    env: dict[str, str]
    home: Path
    log_path: Path
    # `dagster code-server start` (1.13.27) ignores SIGINT and SIGTERM: only SIGKILL ends it.
    stops_on_interrupt: bool = True
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_logged_process(self.command, self.env, self.log_path, self.home)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group, as when its container or pod is lost."""
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.stops_on_interrupt:
            stop_process_group(self.process, STOP_GRACE_SECONDS)
        else:
            self.kill()

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Topology:
    """The running services, driven like the UI drives the webserver (a ``DagsterUI``)."""

    url: str
    code_port: int
    code_server: DagsterProcess
    webserver: DagsterProcess
    daemon: DagsterProcess
    postgres: PostgresServer
    database: str
    sandbox: SandboxServer
    warehouse: Destination
    duckdb_path: Path  # SALESEXEC_DUCKDB_PATH: the warehouse, or a file nothing may create
    events: list[str] = field(default_factory=list)  # what the test did, for the report

    @property
    def services(self) -> list[DagsterProcess]:
        return [self.code_server, self.webserver, self.daemon]

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return post_graphql(self.url, query, variables)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {service.name} ---\n" + "\n".join(service.log_text().splitlines()[-lines:])
            for service in self.services
        )

    def raise_if_exited(self) -> None:
        for service in (self.webserver, self.daemon):
            if not service.running():
                raise DagsterDevError(f"{service.name} exited:\n{self.log_tail()}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` in Dagster's database."""
        with self.postgres.connect(self.database) as connection:
            return list(connection.execute(sql, params).fetchall())


# --- the warehouse variants -----------------------------------------------------------

Comparison = tuple[list[str], dict[str, int]]


def duckdb_warehouse(tmp: Path, postgres: PostgresServer, cleanup: ExitStack) -> Destination:
    return Destination.duckdb_file(tmp / "warehouse.duckdb")


def postgres_warehouse(tmp: Path, postgres: PostgresServer, cleanup: ExitStack) -> Destination:
    """A fresh database owned by a fresh role: the warehouse's password is not Dagster's."""
    role = f"warehouse_{uuid.uuid4().hex[:8]}"
    password = f"wh-{uuid.uuid4().hex[:12]}-leak-canary"
    postgres.create_role(role, password)
    cleanup.callback(postgres.drop_role, role)
    database = postgres.create_database(owner=role)
    cleanup.callback(postgres.drop_database, database)
    return Destination.postgres(postgres, database, user=role, password=password)


WAREHOUSES: dict[str, Callable[[Path, PostgresServer, ExitStack], Destination]] = {
    "duckdb": duckdb_warehouse,
    "postgres": postgres_warehouse,
}


# --- starting it ----------------------------------------------------------------------


def base_environment() -> dict[str, str]:
    """This process's environment without any SALESEXEC_* or DAGSTER_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SALESEXEC_", "DAGSTER_"))}


def dagster_storage_env(postgres: PostgresServer, database: str) -> dict[str, str]:
    """The ``DAGSTER_PG_*`` variables ``deploy/dagster.yaml`` reads."""
    return {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": database,
    }


def service_home(root: Path, name: str) -> Path:
    """A ``DAGSTER_HOME`` holding ``deploy/dagster.yaml`` unchanged."""
    home = root / f"{name}_home"
    home.mkdir(parents=True)
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home


def build_topology(
    tmp: Path,
    postgres: PostgresServer,
    database: str,
    sandbox: SandboxServer,
    warehouse: Destination,
) -> Topology:
    services = compose_services()
    code_port, web_port = free_port(), free_port()
    common = {
        **base_environment(),
        **dagster_storage_env(postgres, database),
        "PYTHONUNBUFFERED": "1",
    }
    scheduling = tmp / "salesexec.yaml"
    scheduling.write_text("{}\n", encoding="utf-8")  # every report manual
    duckdb_path = warehouse.path or tmp / "not-the-warehouse.duckdb"
    code_env = {
        **common,
        **salesexec_environment(sandbox, duckdb_path),
        **warehouse.env,
        "SALESEXEC_TIMEZONE": ZONE,
        "SALESEXEC_CONFIG": str(scheduling),
    }
    address = {
        "SALESEXEC_CODE_SERVER_HOST": "127.0.0.1",
        "SALESEXEC_CODE_SERVER_PORT": str(code_port),
    }
    workspace = str(DEPLOY / "workspace.yaml")

    def process(
        name: str, command: list[str], env: dict[str, str], *, stops_on_interrupt: bool = True
    ) -> DagsterProcess:
        home = service_home(tmp, name)
        return DagsterProcess(
            name, local_executable(command), {**env, "DAGSTER_HOME": str(home)}, home,
            tmp / "logs" / f"{name}.log", stops_on_interrupt,
        )  # fmt: skip

    return Topology(
        url=f"http://127.0.0.1:{web_port}",
        code_port=code_port,
        code_server=process(
            "code_server",
            with_options(dockerfile_cmd(), {"-h": "127.0.0.1", "-p": str(code_port)}),
            code_env,
            stops_on_interrupt=False,
        ),
        webserver=process(
            "webserver",
            with_options(
                services["webserver"]["command"],
                {"-h": "127.0.0.1", "-p": str(web_port), "-w": workspace},
            ),
            {**common, **address},
        ),
        daemon=process(
            "daemon",
            with_options(services["daemon"]["command"], {"-w": workspace}),
            {**common, **address},
        ),
        postgres=postgres,
        database=database,
        sandbox=sandbox,
        warehouse=warehouse,
        duckdb_path=duckdb_path,
    )


def wait_until_serving(topology: Topology, timeout: float) -> None:
    """Run the code server's healthcheck (docker-compose.yaml's) until it passes."""
    command = local_executable(
        with_options(compose_healthcheck("code_server"), {"-p": str(topology.code_port)})
    )
    deadline = time.monotonic() + timeout
    while True:
        if not topology.code_server.running():
            raise DagsterDevError(f"the code server exited:\n{topology.log_tail()}")
        check = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if check.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise DagsterDevError(
                f"code server not serving after {timeout:.0f} s: {check.stdout}{check.stderr}\n"
                f"{topology.log_tail()}"
            )
        time.sleep(1.0)


def save_logs(topology: Topology) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for service in topology.services:
        if service.log_path.exists():
            shutil.copyfile(service.log_path, ARTIFACTS / service.log_path.name)
    (ARTIFACTS / "events.txt").write_text("\n".join(topology.events) + "\n", encoding="utf-8")


@pytest.fixture(scope="module", params=sorted(WAREHOUSES))
def topology(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
) -> Iterator[Topology]:
    """The three services running and the code location loaded; all stopped after, the
    database dropped, the logs saved to ``test-artifacts/topology/`` on a failure."""
    tmp = tmp_path_factory.mktemp(f"topology_{request.param}")
    failures_before = request.session.testsfailed
    failed = False
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    with ExitStack() as stack:
        sandbox = stack.enter_context(
            run_sandbox(
                leads_per_day=SANDBOX_LEADS_PER_DAY,
                password=SANDBOX_PASSWORD,
                # still: the truth the tables are compared with is the data the runs read
                clock=lambda: started,
            )
        )
        database = postgres_server.create_database()
        stack.callback(postgres_server.drop_database, database)
        warehouse = WAREHOUSES[request.param](tmp, postgres_server, stack)
        topology = build_topology(tmp, postgres_server, database, sandbox, warehouse)
        try:
            topology.code_server.start()
            # As compose's depends_on waits for the code server's healthcheck.
            wait_until_serving(topology, LOAD_TIMEOUT_SECONDS)
            topology.webserver.start()
            topology.daemon.start()
            wait_until_loaded(topology, LOAD_TIMEOUT_SECONDS)
            yield topology
        except BaseException:
            failed = True
            raise
        finally:
            for service in reversed(topology.services):
                service.stop()
            if failed or request.session.testsfailed > failures_before:
                save_logs(topology)


# --- the scenario ---------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """Backfills that are done, and the tables compared with the truth right after."""

    days: list[date]
    today: date
    windowed: Backfill
    now_only: Backfill | None
    problems: list[str]
    rows: dict[str, int]


def compare(topology: Topology, days: Sequence[date], today: date) -> Comparison:
    return compare_with_truth(topology.warehouse, [topology.sandbox.data], days, today, ZONE)


@pytest.fixture(scope="module")
def first(topology: Topology) -> Phase:
    """The five windowed reports over the last days and the "now" report for today."""
    wait_until_clear_of_midnight()
    today = datetime.now(timezone.utc).date()
    days = last_days(BACKFILL_DAYS, today)
    windowed, now_only = backfill_reports(
        topology, days, today, "topology", BACKFILL_TIMEOUT_SECONDS
    )
    assert now_only is not None
    topology.events.append(f"first: {describe(windowed)}; {describe(now_only)}")
    problems, rows = compare(topology, days, today)
    return Phase(days, today, windowed, now_only, problems, rows)


@dataclass(frozen=True)
class Recovery:
    """What happened around the code server's SIGKILL and restart."""

    status_while_down: tuple[str | None, str | None]
    reloaded_through_graphql: bool
    second: Phase
    all_days: list[date]


RELOAD_LOCATION = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { name loadStatus }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""


def wait_for_location(
    topology: Topology, wanted: Callable[[str | None, str | None], bool], timeout: float
) -> tuple[str | None, str | None]:
    """Poll the webserver's view of the code location until ``wanted`` holds; the last
    status either way."""
    deadline = time.monotonic() + timeout
    status: tuple[str | None, str | None] = (None, None)
    while time.monotonic() < deadline:
        topology.raise_if_exited()
        with suppress(requests.RequestException, DagsterDevError):
            status = location_status(topology)
            if wanted(*status):
                break
        time.sleep(1.0)
    return status


@pytest.fixture(scope="module")
def recovery(topology: Topology, first: Phase) -> Recovery:
    """SIGKILL the code server, start one again on its address, backfill once more."""
    topology.code_server.kill()
    down = wait_for_location(
        topology, lambda status, error: error is not None, SELF_RECOVERY_SECONDS
    )
    topology.events.append(f"code server killed; webserver shows {down}")

    # Back as the Helm chart starts it: `dagster api grpc` with the chart's arguments.
    topology.code_server.command = local_executable(
        with_options(helm_grpc_command(), {"-h": "127.0.0.1", "-p": str(topology.code_port)})
    )
    topology.code_server.start()
    status = wait_for_location(
        topology, lambda status, error: status == "LOADED" and error is None,
        SELF_RECOVERY_SECONDS,
    )  # fmt: skip
    reloaded = False
    if status != ("LOADED", None):
        reloaded = True
        answer = topology.graphql(RELOAD_LOCATION, {"name": LOCATION_NAME})
        topology.events.append(f"reloaded through GraphQL: {answer}")
        wait_until_loaded(topology, LOAD_TIMEOUT_SECONDS)
    topology.events.append(f"code server back; reloaded through GraphQL: {reloaded}")

    day_before = first.days[0] - timedelta(days=1)
    windowed, _ = backfill_reports(
        topology, [day_before], None, "topology, after the restart", BACKFILL_TIMEOUT_SECONDS
    )
    topology.events.append(f"second: {describe(windowed)}")
    all_days = [day_before, *first.days]
    problems, rows = compare(topology, all_days, first.today)
    second = Phase([day_before], first.today, windowed, None, problems, rows)
    return Recovery(down, reloaded, second, all_days)


def assert_succeeded(backfill: Backfill | None, reports: Sequence[Any]) -> None:
    assert backfill is not None
    assert backfill.status == "COMPLETED_SUCCESS", describe(backfill)
    assert [run.status for run in backfill.runs] == ["SUCCESS"], describe(backfill)
    assert backfill.runs[0].asset_keys == {asset_path(report) for report in reports}


# --- the tests ------------------------------------------------------------------------


def test_webserver_loads_the_code_location_from_the_separate_code_server(
    topology: Topology,
) -> None:
    assert location_status(topology) == ("LOADED", None)
    assert topology.code_server.running()


def test_queued_backfills_of_the_five_reports_and_the_now_report_succeed(
    topology: Topology, first: Phase
) -> None:
    assert_succeeded(first.windowed, WINDOWED)
    assert_succeeded(first.now_only, NOW_ONLY)
    run_ids = [run.run_id for b in (first.windowed, first.now_only) if b for run in b.runs]
    enqueued = topology.query(
        "SELECT DISTINCT run_id FROM event_logs WHERE dagster_event_type = 'PIPELINE_ENQUEUED'"
    )
    assert set(run_ids) <= {row[0] for row in enqueued}, "runs did not go through the queue"


def test_tables_equal_the_sandbox_truth_after_the_first_backfills(
    topology: Topology, first: Phase
) -> None:
    assert first.problems == [], "\n".join(first.problems[:20])
    assert all(count > 0 for count in first.rows.values()), first.rows
    if topology.warehouse.path is None:  # the runs wrote to Postgres, and nowhere else
        assert not topology.duckdb_path.exists()


def test_webserver_and_daemon_recover_from_a_killed_code_server_and_backfill_again(
    topology: Topology, recovery: Recovery
) -> None:
    status, error = recovery.status_while_down
    assert error is not None, f"the webserver never noticed the code server was gone: {status}"
    assert location_status(topology) == ("LOADED", None)
    assert topology.webserver.running() and topology.daemon.running()
    assert_succeeded(recovery.second.windowed, WINDOWED)


def test_tables_equal_the_sandbox_truth_over_both_backfills(recovery: Recovery) -> None:
    assert recovery.second.problems == [], "\n".join(recovery.second.problems[:20])


def test_dagster_keeps_runs_events_and_backfills_in_postgres_and_no_sqlite_files(
    topology: Topology, recovery: Recovery, first: Phase
) -> None:
    counts = {
        table: topology.query(f"SELECT count(*) FROM {table}")[0][0] for table in DAGSTER_TABLES
    }
    assert counts["runs"] == 3, counts  # two first backfill runs, one after the restart
    assert counts["bulk_actions"] == 3, counts  # the three backfills
    assert counts["event_logs"] > 0, counts
    materialized = {
        row[0]
        for row in topology.query(
            "SELECT DISTINCT asset_key FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
    }
    assert len(materialized) == len(WINDOWED) + len(NOW_ONLY), materialized
    pools = {row[0] for row in topology.query("SELECT concurrency_key FROM concurrency_limits")}
    assert API_POOL in pools, pools  # the pool's slots are rows in Postgres too
    sqlite_files = [
        path
        for service in topology.services
        for path in service.home.rglob("*")
        if path.is_file() and path.open("rb").read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    ]
    assert sqlite_files == []


def test_the_salesexec_and_warehouse_passwords_reach_the_runs_but_no_log_and_no_dagster_row(
    topology: Topology, recovery: Recovery
) -> None:
    """The runs logged in to the sandbox (it refuses anything else) and to a Postgres
    warehouse (its role's password is required), with passwords only the code server's
    environment holds; they show in no log and no row of Dagster's database."""
    secrets = {"SalesExec": SANDBOX_PASSWORD}
    secrets.update(
        {f"warehouse {i}": secret for i, secret in enumerate(topology.warehouse.secrets)}
    )
    for name, secret in secrets.items():
        assert secret in topology.code_server.env.values(), name
        assert all(secret not in s.env.values() for s in (topology.webserver, topology.daemon)), (
            name
        )
        for service in topology.services:
            assert secret not in service.log_text(), f"{name} password in {service.name}'s log"
        for table, column in (
            ("event_logs", "event"), ("runs", "run_body"), ("run_tags", "value"),
        ):  # fmt: skip
            leaked = topology.query(
                f"SELECT count(*) FROM {table} WHERE strpos({column}, %s) > 0", [secret]
            )
            assert leaked == [(0,)], f"{name} password in {table}"
