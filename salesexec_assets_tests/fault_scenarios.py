"""The fault suite's scenarios: the real pipeline, faults on, every partition vs the truth.

``test_faults.py`` runs them at a small scale in CI; ``scripts/fault_suite.py`` runs the
same functions at any scale, so the figures of both come from one code path. Nothing of
the product is mocked: the sandbox is a real HTTP server on loopback, the runs go through
``dagster asset materialize`` (a subprocess) or Dagster's Python API, and the tables are
real DuckDB files (or databases on the real Postgres test server, for the scenarios
parametrized by destination), read back and compared with the sandbox's ground truth row
for row and value for value.

Each scenario adds what it did to ``lab.figures`` as it goes, then checks its promise
with ``assert``: a broken promise raises AssertionError after its figures were counted
(``faults_survived`` lags ``faults_injected`` by the faults of a scenario that failed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
import requests
from dagster import (
    DagsterEventType,
    DagsterInstance,
    EventLogEntry,
    ExecuteInProcessResult,
    serialize_value,
)

from salesexec_assets.api import contract
from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract import Report
from salesexec_assets.api.timestamps import parse_api_timestamp
from salesexec_assets.checks import BRANCH_COUNTS_MATCH_LEADS, NO_QUARANTINED_RECORDS
from salesexec_assets.loading import WriteMode, load_report
from salesexec_assets.partitions import local_midnight_utc, today_in
from salesexec_assets.records import QUARANTINE_SUFFIX, key_columns
from salesexec_assets.sandbox import Faults, SandboxServer, run_sandbox
from salesexec_assets.sandbox.state import ChangeKind
from salesexec_assets.settings import (
    LEAD_TYPE_UIDS_VAR,
    PASSWORD_VAR,
    START_DATE_VAR,
    TIMEZONE_VAR,
    USERNAME_VAR,
)
from salesexec_assets.warehouse import DuckDBWarehouse
from salesexec_assets.warehouse.postgres import LOCK_NAMESPACE
from salesexec_assets_tests.conftest import (
    SANDBOX_PASSWORD,
    execute_assets,
    point_environment,
    salesexec_environment,
)
from salesexec_assets_tests.destinations import DUCKDB, POSTGRES, Destination
from salesexec_assets_tests.figures import Figures
from salesexec_assets_tests.postgres_server import PostgresServer
from salesexec_assets_tests.test_asset_cli import (
    CLI_TIMEOUT_SECONDS,
    IN_PROCESS,
    LOCKED_MESSAGE,
    cli_environment,
    create_dagster_home,
    materialize_command,
)
from salesexec_assets_tests.test_assets import (
    ALL_ACTIONS,
    ALL_LEADS,
    AWAITING_IMPORT,
    DAY_REPORTS,
    definitions,
    failure_text,
    keys,
    lead_type_uids,
    metadata_of,
)
from salesexec_assets_tests.truth import (
    assert_rows_match,
    expected_day,
    retyped_columns,
    row_differences,
    sorted_rows,
    stored_rows,
)

FIRST_DAY = date(2025, 10, 27)  # ranges from here cross Chicago's 25-hour day (Nov 2)
CHICAGO = "America/Chicago"
# A wrong password is a secret too: the bad-credentials case scans for it as well.
WRONG_PASSWORD = "pw-Wr0ng-leak-canary-5e2a"
# Every fault at once. Shares are high enough that each kind fires many times even at
# CI's volume; a 429 costs a real Retry-After wait (1 s), so it stays the rarest.
ALL_FAULTS: dict[str, Any] = {
    "p429": 0.04,
    "retry_after_seconds": 1,
    "p5xx": 0.05,
    "token_uses": 5,
    "latency_ms": 2,
    "ptruncate": 0.05,
    "pdrop": 0.03,
    "pdrift": 0.08,
    "premove": 0.08,
}
SMALL_PAGES = 10
FAST_RETRIES = {"backoff_initial_seconds": 0.05}  # Retry-After is still honoured as sent
GIVE_UP_FAST = {"max_attempts": 3, "backoff_initial_seconds": 0.01}
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RUN_ID = re.compile(r" - ([0-9a-f-]{36}) - \d+ - RUN_START - ")


@dataclass(frozen=True)
class Scale:
    """How big the scenarios are: the defaults are CI's; the script takes any."""

    leads_per_day: int = 4  # per lead type and day
    partitions: int = 14
    kills: int = 2
    writers: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        # two leads a day give each day its midnight and last-microsecond leads, and the
        # bad-records scenario one lead of each kind to corrupt; two days make a range
        if self.leads_per_day < 2 or self.partitions < 2 or self.writers < 1 or self.kills < 0:
            raise ValueError(f"a scale needs 2+ leads a day, 2+ partitions, 1+ writer: {self}")

    @property
    def page_size(self) -> int:
        """Pages small enough that every window has several, so offset drift can shift
        them: 10 at CI's volume, more at larger ones."""
        return min(contract.TAKE_MAX, max(SMALL_PAGES, self.leads_per_day // 4))


# --- the secret scan ------------------------------------------------------------------------


class SecretScan:
    """Everything a scenario captured, searched for the password and the issued tokens.

    Tokens are known only once the sandboxes are done issuing them, so the scan runs last.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(secrets)
        self._servers: list[SandboxServer] = []
        self._texts: list[tuple[str, str]] = []

    def add_secret(self, secret: str) -> None:
        """One more value that must never show up (a database password)."""
        if secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def watch(self, server: SandboxServer) -> None:
        self._servers.append(server)

    def add(self, label: str, text: str) -> None:
        if text:
            self._texts.append((label, text))

    def add_instance(self, instance: DagsterInstance, label: str) -> None:
        """Every run of the instance: its config and tags, and its whole event log (logs,
        metadata, check results, errors)."""
        for run in instance.get_runs():
            events = instance.all_logs(run.run_id)
            self.add(f"{label} run {run.run_id}", serialize_value(run))
            self.add(
                f"{label} events of {run.run_id}",
                "\n".join(serialize_value(event) for event in events),
            )

    def add_warehouse(self, path: Target) -> None:
        """Every value of every table of a DuckDB file (or a Postgres database), as text."""
        if isinstance(path, Destination):
            assert path.server is not None
            with path.server.connect(path.location.database) as con:
                tables = con.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                ).fetchall()
                for schema, table in tables:
                    rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                    self.add(f"{path.location.database} {schema}.{table}", repr(rows))
            return
        if not path.exists():
            return
        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
            for schema, table in tables:
                rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                self.add(f"{path.name} {schema}.{table}", repr(rows))
        finally:
            con.close()

    @property
    def texts(self) -> int:
        return len(self._texts)

    def leaks(self) -> list[str]:
        """Where a secret was found: 'password in <label>' or 'token in <label>'."""
        tokens = {token for server in self._servers for token in server.issued_tokens}
        found = []
        for label, text in self._texts:
            if any(secret in text for secret in self._secrets):
                found.append(f"password in {label}")
            if tokens & set(_UUID.findall(text)):
                found.append(f"token in {label}")
        return found


# --- HTTP in front of the sandbox ----------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One forwarded request and the answer it got, which a rewrite may replace."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


Rewrite = Callable[[Exchange], Exchange | None]  # None: pass the answer on unchanged
BeforeForward = Callable[[str, Mapping[str, list[str]]], None]  # (path, query) of a request
_FORWARDED_REQUEST_HEADERS = (contract.AUTH_HEADER, "Content-Type", "Accept")
_FORWARDED_ANSWER_HEADERS = (contract.RETRY_AFTER_HEADER,)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        if self.server.before is not None:
            self.server.before(url.path, parse_qs(url.query))
        upstream = requests.request(
            self.command,
            self.server.upstream + self.path,
            data=body,
            headers={n: v for n in _FORWARDED_REQUEST_HEADERS if (v := self.headers.get(n))},
            timeout=60,
        )
        exchange = Exchange(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            status=upstream.status_code,
            body=upstream.content,
            content_type=upstream.headers.get("Content-Type", ""),
            headers=tuple(
                (n, v) for n in _FORWARDED_ANSWER_HEADERS if (v := upstream.headers.get(n))
            ),
        )
        answer = self.server.rewrite(exchange)
        if answer is not None:
            self.server.count_rewrite()
            exchange = answer
        self.send_response(exchange.status)
        self.send_header("Content-Type", exchange.content_type)
        self.send_header("Content-Length", str(len(exchange.body)))
        for name, value in exchange.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(exchange.body)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, rewrite: Rewrite, before: BeforeForward | None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.rewrite = rewrite
        self.before = before
        self.rewrites = 0
        self._lock = threading.Lock()

    def count_rewrite(self) -> None:
        with self._lock:
            self.rewrites += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that died before its answer (a killed run) is expected, not an error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class RewritingProxy:
    """A loopback HTTP server in front of a sandbox: it forwards every request and lets
    ``rewrite`` change the answer. The client and the sandbox both speak real HTTP; only
    the chosen answers change (a corrupted record, a failing window, an HTML page).
    ``before`` runs ahead of forwarding a request: to hold it back, or to change the
    sandbox's data at an exact moment."""

    def __init__(
        self, upstream: SandboxServer, rewrite: Rewrite, before: BeforeForward | None = None
    ) -> None:
        self._server = _ProxyServer(upstream.base_url, rewrite, before)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RewritingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def rewrites(self) -> int:
        """How many answers were changed: the faults this proxy injected."""
        return self._server.rewrites


@dataclass(frozen=True)
class Address:
    """A base URL with nothing behind it that speaks the API."""

    base_url: str


def refusing_address() -> Address:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Address(f"http://127.0.0.1:{port}")


def html_pages(status: int) -> Rewrite:
    """Every answer becomes a web server's HTML page, as at a wrong base URL."""

    def rewrite(exchange: Exchange) -> Exchange:
        return replace(
            exchange, status=status, body=HTML_PAGE, content_type="text/html", headers=()
        )

    return rewrite


def failing_windows_from(report: Report, first_failing: date, status: int = 503) -> Rewrite:
    """The report's calls for windows starting on or after a day answer ``status`` (a
    429 with ``Retry-After: 1``), always: a failure that starts in the middle of a range."""
    failing_from = local_midnight_utc(first_failing, "UTC")
    headers = ((contract.RETRY_AFTER_HEADER, "1"),) if status == 429 else ()

    def rewrite(exchange: Exchange) -> Exchange | None:
        start = exchange.param(contract.PARAM_START)
        if exchange.path.lower() != report.path.lower() or start is None:
            return None
        if parse_api_timestamp(start) < failing_from:
            return None
        body = json.dumps({contract.ERROR_MESSAGE: "The service is unavailable."}).encode()
        return replace(
            exchange, status=status, body=body, content_type="application/json", headers=headers
        )

    return rewrite


Corruption = Callable[[dict[str, Any]], None]


def corrupting_records(report: Report, corruptions: Mapping[Any, Corruption]) -> Rewrite:
    """Records of the report whose id is a key of ``corruptions`` are changed by it."""
    id_field = report.key[0]

    def rewrite(exchange: Exchange) -> Exchange | None:
        if exchange.path.lower() != report.path.lower() or exchange.status != 200:
            return None
        envelope = json.loads(exchange.body)
        targets = [
            record
            for record in envelope[contract.ENVELOPE_RESULTS]
            if record.get(id_field) in corruptions
        ]
        for record in targets:
            corruptions[record[id_field]](record)
        return replace(exchange, body=json.dumps(envelope).encode()) if targets else None

    return rewrite


# --- the CLI as a process to watch (and kill) ---------------------------------------------


class CliProcess:
    """A running ``dagster asset materialize``; its output is read line by line as it comes,
    so a scenario can act (kill -9) at a chosen moment."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.popen = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = CLI_TIMEOUT_SECONDS) -> bool:
        """Until ``count`` lines match ``pattern`` (a regex); False if the output ended first."""
        regex = re.compile(pattern)

        def enough() -> bool:
            return sum(1 for line in self.lines if regex.search(line)) >= count

        with self._changed:
            return (
                self._changed.wait_for(
                    lambda: enough() or not self._reader.is_alive(), timeout=timeout
                )
                and enough()
            )

    def kill(self) -> None:
        """SIGKILL, to this process only: no handler, no cleanup, as a crash or an OOM kill."""
        os.kill(self.popen.pid, signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = CLI_TIMEOUT_SECONDS) -> int:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise
        self._reader.join(timeout=10)
        return code


# --- the lab --------------------------------------------------------------------------------


# Where a scenario's tables go: a DuckDB file, or a database on the Postgres test server.
Target = Path | Destination
# What a writer waiting for another logs, per destination
LOCK_WAIT_MESSAGES = {DUCKDB: LOCKED_MESSAGE, POSTGRES: "is being written by another run"}


def target_environment(target: Target) -> dict[str, str]:
    """The variables that point the project at ``target``."""
    if isinstance(target, Destination):
        return dict(target.env)
    return {"SALESEXEC_DUCKDB_PATH": str(target)}


@dataclass(frozen=True)
class Materialize:
    """One run to launch: ``reports`` over ``days`` (one day, or a range in one run), read
    from ``source`` (a sandbox, a proxy, any ``base_url``), written to ``path``."""

    source: Any
    path: Target
    reports: Sequence[Report]
    days: Sequence[date]
    config: dict[str, Any] | None = None  # run config (the CLI adds in-process execution)
    env: dict[str, str] | None = None  # more SALESEXEC_* variables, or other values


@dataclass
class Outcome:
    """One run, whichever way it was launched."""

    success: bool
    text: str  # the CLI's output, or the failure text of a Python API run
    run_id: str
    result: ExecuteInProcessResult | None = None  # Python API runs only


def selection(reports: Iterable[Report]) -> str:
    return " or ".join(f"key:salesexec/{report.name}" for report in reports)


def partition_arguments(days: Sequence[date]) -> dict[str, Any]:
    """``execute_assets`` keywords for one day or a range (a single run)."""
    if len(days) == 1:
        return {"partition": str(days[0])}
    return {"partition_range": (str(days[0]), str(days[-1]))}


def resources_config(
    path: Target | None = None, *, chunk_days: int | None = None, **client: Any
) -> dict[str, Any]:
    """Run config for the resources. The warehouse's names its destination again (a
    Postgres password comes from the environment, never from run config)."""
    resources: dict[str, Any] = {}
    if client:
        resources["salesexec"] = {"config": client}
    if path is not None:
        extra = {"chunk_days": chunk_days} if chunk_days else {}
        warehouse = (
            path.resource_config(**extra)
            if isinstance(path, Destination)
            else {"path": str(path), **extra}
        )
        resources["warehouse"] = {"config": warehouse}
    return {"resources": resources} if resources else {}


class Lab:
    """What every scenario needs: sandboxes, files, both ways to run, figures, secret scan.

    ``finish()`` stops everything, scans all that was captured and counts it.
    """

    def __init__(self, root: Path, scale: Scale, figures: Figures) -> None:
        self.root = root
        self.scale = scale
        self.figures = figures
        self.rng = random.Random(scale.seed)
        self.secrets = SecretScan([SANDBOX_PASSWORD, WRONG_PASSWORD])
        self.notes: list[str] = []
        self.instance: DagsterInstance
        self._stack = ExitStack()
        self._files: list[Path] = []
        self._home: Path | None = None
        self._processes: list[CliProcess] = []
        self._seed_file: Path | None = None
        self._databases: list[Destination] = []
        # the session's Postgres server, started when a scenario first asks for a database
        self.postgres: Callable[[], PostgresServer] | None = None

    def __enter__(self) -> Lab:
        self.instance = self._stack.enter_context(DagsterInstance.ephemeral())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._close()

    # --- things to run against ----------------------------------------------------------
    def sandbox(self, **overrides: Any) -> SandboxServer:
        """A started sandbox with the distinctive password and the scale's volume."""
        overrides.setdefault("password", SANDBOX_PASSWORD)
        overrides.setdefault("leads_per_day", self.scale.leads_per_day)
        overrides.setdefault("seed", self.scale.seed)
        server = self._stack.enter_context(run_sandbox(**overrides))
        self.secrets.watch(server)
        return server

    def proxy(
        self, upstream: SandboxServer, rewrite: Rewrite, before: BeforeForward | None = None
    ) -> RewritingProxy:
        return self._stack.enter_context(RewritingProxy(upstream, rewrite, before))

    def file(self, name: str) -> Path:
        """A warehouse file of this lab (scanned for secrets at the end)."""
        path = self.root / f"{name}.duckdb"
        self._files.append(path)
        return path

    def target(self, name: str, kind: str = DUCKDB) -> Target:
        """Where a scenario writes: a warehouse file, or (``kind="postgres"``) a fresh
        database on the Postgres test server; scanned for secrets at the end, and the
        database password is one of the secrets."""
        if kind == DUCKDB:
            return self.file(name)
        assert self.postgres is not None, "this lab has no Postgres server"
        server = self.postgres()
        database = server.create_database(f"lab_{name.replace('-', '_')}_{len(self._databases)}")
        self.secrets.add_secret(server.password)
        destination = Destination.postgres(server, database)
        self._databases.append(destination)
        return destination

    def seeded_file(self, name: str) -> Path:
        """A warehouse file that already holds All Leads for ``days(2)`` (a copy of one
        load): the data a failed run must leave as it was."""
        if self._seed_file is None:
            self._seed_file = self.file("seed")
            seeded = self.run(
                Materialize(self.sandbox(), self._seed_file, [ALL_LEADS], self.days(2))
            )
            assert seeded.success, seeded.text
        path = self.file(name)
        shutil.copy(self._seed_file, path)
        return path

    def seeded(self, name: str, kind: str = DUCKDB) -> Target:
        """:meth:`seeded_file`, or a Postgres database seeded by the same load."""
        if kind == DUCKDB:
            return self.seeded_file(name)
        target = self.target(name, kind)
        seeded = self.run(Materialize(self.sandbox(), target, [ALL_LEADS], self.days(2)))
        assert seeded.success, seeded.text
        return target

    def days(self, count: int, first: date = FIRST_DAY) -> list[date]:
        return [first + timedelta(days=n) for n in range(count)]

    @property
    def dagster_home(self) -> Path:
        """The CLI's DAGSTER_HOME (one for every CLI run of the lab)."""
        if self._home is None:
            self._home = create_dagster_home(self.root / "dagster_home")
        return self._home

    # --- running -------------------------------------------------------------------------
    def run(self, job: Materialize, via: str = "python") -> Outcome:
        """A run through Dagster's Python API (on the lab's instance, the environment
        pointed at the source) or, ``via="cli"``, through ``dagster asset materialize``."""
        if via == "cli":
            process = self.start_cli(job)
            code = process.wait()
            match = _RUN_ID.search(process.output)
            return Outcome(code == 0, process.output, match[1] if match else "")
        with pytest.MonkeyPatch.context() as patch:
            point_environment(patch, job.source, self.root / "unused.duckdb")
            for name, value in {**target_environment(job.path), **(job.env or {})}.items():
                patch.setenv(name, value)
            result = execute_assets(
                self.instance,
                definitions(),
                keys(*job.reports),
                run_config=job.config,
                **partition_arguments(job.days),
            )
        text = "" if result.success else failure_text(result)
        self.secrets.add(f"failure of run {result.run_id}", text)
        return Outcome(result.success, text, result.run_id, result)

    def start_cli(self, job: Materialize) -> CliProcess:
        """``dagster asset materialize`` as a subprocess (steps in its own process)."""
        days = job.days
        partition = (
            ["--partition", str(days[0])]
            if len(days) == 1
            else ["--partition-range", f"{days[0]}...{days[-1]}"]
        )
        command = materialize_command(
            "--select",
            selection(job.reports),
            *partition,
            "--config-json",
            json.dumps({**IN_PROCESS, **(job.config or {})}),
        )
        environment = {
            **cli_environment(job.source, self.root / "unused.duckdb", self.dagster_home),
            **target_environment(job.path),
            **(job.env or {}),
        }
        process = CliProcess(command, environment, self.root)
        self._processes.append(process)
        return process

    def cli_instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.dagster_home))

    def events(self, outcome: Outcome, of_type: DagsterEventType) -> list[EventLogEntry]:
        """Events of a run, from the instance that recorded it."""
        assert outcome.run_id, "the run has no id (did the CLI start it?)"
        if outcome.result is not None:
            return list(self.instance.all_logs(outcome.run_id, of_type=of_type))
        with self.cli_instance() as instance:
            return list(instance.all_logs(outcome.run_id, of_type=of_type))

    # --- the end ---------------------------------------------------------------------------
    def finish(self) -> None:
        """Stop everything, then scan every captured text, event log and table."""
        try:
            for process in self._processes:
                self.secrets.add(f"cli output {process.popen.args!r}", process.output)
            self.secrets.add_instance(self.instance, "python")
            if self._home is not None:
                with self.cli_instance() as instance:
                    self.secrets.add_instance(instance, "cli")
            for path in [*self._files, *self._databases]:
                self.secrets.add_warehouse(path)
        finally:
            self._close()
        leaks = self.secrets.leaks()
        self.figures.texts_scanned += self.secrets.texts
        self.figures.secrets_leaked += len(leaks)
        assert not leaks, f"secrets leaked: {leaks}"

    def _close(self) -> None:
        for process in self._processes:
            if process.popen.poll() is None:
                process.kill()
        self._stack.close()

    # --- figures ---------------------------------------------------------------------------
    def injected(self, count: int) -> int:
        self.figures.faults_injected += count
        return count

    def survived(self, count: int) -> None:
        self.figures.faults_survived += count

    def tally(
        self,
        report: Report,
        expected: Sequence[dict[str, Any]],
        actual: Sequence[dict[str, Any]],
        partitions: int,
    ) -> None:
        """Count a comparison: partitions, rows, rows lost, duplicate rows."""
        key = key_columns(report)

        def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
            return (row["partition_date"], *(row.get(name) for name in key))

        stored = Counter(row_key(row) for row in actual)
        self.figures.partitions_compared += partitions
        self.figures.rows_compared += len(expected)
        self.figures.rows_lost += len({row_key(row) for row in expected} - stored.keys())
        self.figures.duplicates_found += sum(count - 1 for count in stored.values())


# --- comparisons ---------------------------------------------------------------------------


def compare_with_truth(
    lab: Lab,
    path: Target,
    server: SandboxServer,
    reports: Iterable[Report],
    days: Sequence[date],
    *,
    zone: str = "UTC",
    as_of: Mapping[str, int] | None = None,
) -> None:
    """The stored ``days`` of every report equal the sandbox's truth, row for row and value
    for value (``as_of``: per report, the data version it was read at)."""
    lead_types = lead_type_uids(server)
    wanted = set(days)
    for report in reports:
        version = as_of.get(report.name) if as_of else None
        expected = [
            row
            for day in days
            for row in expected_day(server, report, lead_types, day, zone, version)
        ]
        actual = [row for row in stored_rows(path, report.name) if row["partition_date"] in wanted]
        text = retyped_columns(expected)
        changed = rows_read_mid_change(server, report, lead_types, days, zone)
        expected = with_rows_read_mid_change(expected, actual, changed, report, text)
        lab.tally(report, expected, actual, len(days))
        assert expected, f"{report.name}: the sandbox has no rows; the comparison proves nothing"
        try:
            assert_rows_match(actual, expected, key_columns(report), text_columns=text)
        except AssertionError as error:
            raise AssertionError(f"{report.name}: {error}") from None


RowKey = tuple[Any, ...]


def _row_key(report: Report, row: dict[str, Any]) -> RowKey:
    return (row["partition_date"], *(row[name] for name in key_columns(report)))


def rows_read_mid_change(
    server: SandboxServer,
    report: Report,
    lead_types: Sequence[int],
    days: Sequence[date],
    zone: str,
) -> dict[RowKey, list[dict[str, Any] | None]]:
    """The report's rows that changes made DURING ITS OWN READ may leave as they were before
    the change (None: absent). The client promises every row that stayed in a window while
    it was read; a row read before it left is kept as read (or missed, if it left before
    its page came), and a lead inserted while another row of the window left may be
    missed: the two shifts cancel out, and what was read is the window as it was before
    both. Insertions into windows where no row left must be read, as before."""
    during = [change for change in server.data_changes if change.report_name == report.name]
    windows_left = {
        (change.lead_type_uid, change.window)
        for change in during
        if change.kind is not ChangeKind.INSERTED
    }
    versions = sorted(
        {
            change.version
            for change in during
            if change.kind is not ChangeKind.INSERTED
            or (change.lead_type_uid, change.window) in windows_left
        }
    )
    alternatives: dict[RowKey, list[dict[str, Any] | None]] = {}
    for version in versions:
        before, after = (
            {
                _row_key(report, row): row
                for day in days
                for row in expected_day(server, report, lead_types, day, zone, at)
            }
            for at in (version - 1, version)
        )
        for key in before.keys() | after.keys():
            if before.get(key) != after.get(key):
                alternatives.setdefault(key, []).append(before.get(key))
    return alternatives


def with_rows_read_mid_change(
    expected: list[dict[str, Any]],
    stored: Sequence[dict[str, Any]],
    alternatives: Mapping[RowKey, list[dict[str, Any] | None]],
    report: Report,
    text_columns: set[str],
) -> list[dict[str, Any]]:
    """The expected rows, where a row changed during the read may stand as it was before
    the change (:func:`rows_read_mid_change`): stored exactly so, or absent if it was."""
    if not alternatives:
        return expected
    stored_by_key = {_row_key(report, row): row for row in stored}
    instead: dict[RowKey, dict[str, Any] | None] = {}
    for key, rows in alternatives.items():
        got = stored_by_key.get(key)
        if got is None and None in rows:
            instead[key] = None
        match = next(
            (r for r in rows if got and r and not row_differences(got, r, text_columns)), None
        )
        if match is not None:
            instead[key] = match
    kept = [row for row in expected if _row_key(report, row) not in instead]
    return kept + [row for row in instead.values() if row is not None]


def compare_awaiting_import(lab: Lab, path: Target, server: SandboxServer, day: date) -> None:
    """One snapshot per lead type, each with the sandbox's count for its AsOfUtc."""
    stored = stored_rows(path, AWAITING_IMPORT.name)
    as_of = {row["lead_type_uid"]: row["as_of_utc"] for row in stored}
    expected = [
        {
            "lead_type_uid": uid,
            "count": server.data.awaiting_import_count(uid, now=as_of.get(uid))["Count"],
            "as_of_utc": as_of.get(uid),
            "partition_date": day,
        }
        for uid in lead_type_uids(server)
    ]
    lab.tally(AWAITING_IMPORT, expected, stored, 1)
    assert_rows_match(stored, expected, key_columns(AWAITING_IMPORT))


def materialization_order(lab: Lab, outcome: Outcome) -> list[str]:
    """The reports of a run in the order they were materialized (read, then written)."""
    order: list[str] = []
    for entry in lab.events(outcome, DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        name = event.asset_key.path[-1] if event and event.asset_key else None
        if name and name not in order:
            order.append(name)
    return order


def versions_as_read(server: SandboxServer, order: Sequence[str]) -> dict[str, int]:
    """Per report, the data version it was read at, for a run whose steps ran one after the
    other in ``order``: it saw the changes the faults made during its own read and the
    reads before it (leads inserted, deleted, updated, reopened), and rightly not those
    made during later reads."""
    position = {name: index for index, name in enumerate(order)}
    changes = server.data_changes
    unknown = {change.report_name for change in changes} - set(position)
    assert not unknown, f"the data changed during reads of {unknown}, not in this run"
    return {
        name: max(
            (c.version for c in changes if position[c.report_name] <= position[name]),
            default=0,
        )
        for name in order
    }


def partitions_of(path: Target, report: Report) -> dict[date, list[dict[str, Any]]]:
    """Each stored partition's rows, load stamps included, in a stable order."""
    days: dict[date, list[dict[str, Any]]] = {}
    for row in stored_rows(path, report.name, with_metadata=True):
        days.setdefault(row["partition_date"], []).append(row)
    return {day: sorted_rows(rows) for day, rows in days.items()}


def assert_crash_left_whole_partitions(
    lab: Lab,
    path: Target,
    server: SandboxServer,
    report: Report,
    before: Mapping[date, list[dict[str, Any]]],
) -> str:
    """After a kill, read from the file as the crash left it: every partition stored
    before is still there; each holds the rows of ONE run, and is either exactly what it
    was (load stamps included) or the killed run's whole rewrite; all equal the truth.
    Returns a note."""
    after = partitions_of(path, report)
    runs = {day: {row["_run_id"] for row in rows} for day, rows in after.items()}
    mixed = {day: found for day, found in runs.items() if len(found) > 1}
    assert not mixed, f"{report.name}: partitions mixing rows of several runs: {mixed}"
    vanished = sorted(set(before) - set(after))
    assert not vanished, f"{report.name}: the crash lost stored partitions {vanished}"
    kept = [day for day in before if runs[day] == {row["_run_id"] for row in before[day]}]
    changed = [day for day in kept if after[day] != before[day]]
    assert not changed, f"{report.name}: partitions changed without being rewritten: {changed}"
    compare_with_truth(lab, path, server, [report], sorted(after))
    rewritten = len(after) - len(kept)
    return f"{report.name}: {len(kept)} partitions as they were, {rewritten} written whole"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def whole_tables(path: Target, reports: Iterable[Report]) -> dict[str, list[dict[str, Any]]]:
    """Every row with its load stamps, report by report, in a stable order."""
    return {
        report.name: sorted_rows(stored_rows(path, report.name, with_metadata=True))
        for report in reports
    }


def values_only(tables: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The same tables without the load stamps (what a rewrite of equal data keeps)."""
    stamps = ("_loaded_at", "_run_id")
    return {
        name: sorted_rows({k: v for k, v in row.items() if k not in stamps} for row in rows)
        for name, rows in tables.items()
    }


# --- scenarios ------------------------------------------------------------------------------


def all_faults_at_once(lab: Lab, via: str) -> None:
    """Every fault at once (429 with Retry-After in both forms, 5xx, tokens dying every few
    calls, cut bodies, connections dropped mid-body, latency, offset drift and rows leaving
    their window while paging, schema drift mid-range) on all
    six reports over the scale's partitions, in Chicago time across a daylight-saving
    change: each stored partition equals the truth, and every check passes."""
    days = lab.days(lab.scale.partitions)
    server = lab.sandbox(**ALL_FAULTS, schema_drift_from=days[len(days) // 2])
    path = lab.file(f"all-faults-{via}")
    env = {TIMEZONE_VAR: CHICAGO}
    config = resources_config(page_size=lab.scale.page_size, **FAST_RETRIES)
    job = Materialize(server, path, DAY_REPORTS, days, config, env)
    outcome = lab.run(job, via)
    today = today_in(CHICAGO)
    now = (
        lab.run(replace(job, reports=[AWAITING_IMPORT], days=[today]), via)
        if outcome.success
        else outcome
    )
    injected = lab.injected(sum(server.fault_counts.values()) + 1)  # + the schema drift
    assert outcome.success, outcome.text[-5000:]
    assert now.success, now.text[-5000:]
    fired = {name for name, count in server.fault_counts.items() if count}
    assert fired == set(server.fault_counts), f"faults that never fired: {server.fault_counts}"
    as_read = versions_as_read(server, materialization_order(lab, outcome))
    compare_with_truth(lab, path, server, DAY_REPORTS, days, zone=CHICAGO, as_of=as_read)
    compare_awaiting_import(lab, path, server, today)
    for run in (outcome, now):
        failed = [
            (entry.dagster_event.asset_key, entry.dagster_event.event_specific_data)
            for entry in lab.events(run, DagsterEventType.ASSET_CHECK_EVALUATION)
            if entry.dagster_event
            and not entry.dagster_event.event_specific_data.passed
            and not _explained_by_leads_leaving(server, entry.dagster_event.event_specific_data)
        ]
        assert not failed, f"checks failed: {failed}"
    lab.notes.append(f"all faults via {via}: {server.fault_counts}")
    lab.survived(injected)


def _explained_by_leads_leaving(server: SandboxServer, evaluation: Any) -> bool:
    """Branch Lead Count is read after All Leads: a lead deleted while All Leads was read
    is stored there as read, and rightly missing from the counts read later. The check that
    compares the two says so; that is the check doing its job, not a loss."""
    return evaluation.check_name == BRANCH_COUNTS_MATCH_LEADS and any(
        change.report_name == ALL_LEADS.name and change.kind is ChangeKind.DELETED
        for change in server.data_changes
    )


LEAVING = {
    "alone": {"premove": 0.15},
    "with insertions": {"premove": 0.12, "pdrift": 0.12},
}


def rows_leave_windows(lab: Lab, mix: str) -> None:
    """Rows leave their window while it is paged (a lead deleted, updated out of its past
    day, reopened), alone or mixed with leads that offset drift inserts: every row of the
    five dated reports' truth is stored once, and a row read before it left stays exactly
    as it was read; the client noticed the shifted pages and read the windows again."""
    days = lab.days(lab.scale.partitions)
    server = lab.sandbox(**LEAVING[mix])
    path = lab.file("leaving-" + mix.replace(" ", "-"))
    config = resources_config(page_size=lab.scale.page_size)
    outcome = lab.run(Materialize(server, path, DAY_REPORTS, days, config))
    injected = lab.injected(sum(server.fault_counts.values()))
    assert outcome.success and outcome.result is not None, outcome.text[-5000:]
    fired = {name for name, count in server.fault_counts.items() if count}
    assert fired == {"row_left"} | ({"drift_inserted"} if "pdrift" in LEAVING[mix] else set())
    as_read = versions_as_read(server, materialization_order(lab, outcome))
    compare_with_truth(lab, path, server, DAY_REPORTS, days, as_of=as_read)
    rereads = sum(metadata_of(outcome.result, r)["api_window_rereads"] for r in DAY_REPORTS)
    assert rereads >= 1, "no window was read again: the changes went unnoticed"
    during = sorted({c.report_name for c in server.data_changes})
    lab.notes.append(f"rows leaving {mix}: {server.fault_counts}, during {during}")
    lab.survived(injected)


class KillSwitch:
    """Kills a CLI run at an exact point, by construction, from the proxy in front of the
    sandbox: when the run asks for the first page of ``report`` for ``day`` (a request
    the run makes only after every earlier chunk of that report is committed).

    ``at="pull"``: SIGKILL right then, before the request is answered: the run dies
    mid-pull, its earlier chunks committed, this one not. ``at="write"``: take the
    destination's write lock right then (the DuckDB file's, or the table's advisory lock
    in Postgres); the run pulls and stages the whole chunk, then waits for the lock to
    write it, and is killed while it waits (its log says so).
    """

    def __init__(self, report: Report, day: date, at: str, target: Target) -> None:
        self.report, self.at, self.target = report, at, target
        self.window_start = local_midnight_utc(day, "UTC")
        self.process: CliProcess | None = None
        self.started = threading.Event()
        self.struck = threading.Event()
        self.holder = ExitStack()  # the destination's write lock, while the run waits

    def before(self, path: str, query: Mapping[str, list[str]]) -> None:
        start = (query.get(contract.PARAM_START) or [None])[0]
        if self.struck.is_set() or path.lower() != self.report.path.lower() or start is None:
            return
        if parse_api_timestamp(start) != self.window_start:
            return
        self.struck.set()
        self.started.wait(CLI_TIMEOUT_SECONDS)
        assert self.process is not None
        if self.at == "pull":
            self.process.kill()
        else:
            # the run will wait for the destination's write lock
            self.holder.enter_context(hold_write_locks(self.target, [self.report]))

    def strike(self, lab: Lab, job: Materialize) -> CliProcess:
        """Start the run through a proxy with this switch; return once it is dead."""
        proxy = lab.proxy(job.source, lambda exchange: None, before=self.before)
        self.process = lab.start_cli(replace(job, source=proxy))
        self.started.set()
        process = self.process
        try:
            if self.at == "write":
                waiting = LOCK_WAIT_MESSAGES[DUCKDB if isinstance(self.target, Path) else POSTGRES]
                assert process.wait_for(waiting), process.output[-3000:]
                process.kill()
            else:
                process.wait()
        finally:
            self.holder.close()
        assert self.struck.is_set(), f"the run never asked for {self.report.name} of the day"
        assert process.popen.returncode == -signal.SIGKILL, process.output[-3000:]
        return process


def rewritten_days(
    before: Mapping[date, list[dict[str, Any]]], after: Mapping[date, list[dict[str, Any]]]
) -> list[date]:
    """The partitions whose rows a run replaced (another run id, or new)."""
    runs = {day: {row["_run_id"] for row in rows} for day, rows in before.items()}
    return sorted(
        day for day, rows in after.items() if {row["_run_id"] for row in rows} != runs.get(day)
    )


def kill_and_rerun(lab: Lab, kind: str = DUCKDB) -> None:
    """kill -9 ``dagster asset materialize`` at exact points, by construction: mid-pull
    (the run waiting for a page of chunk N) and at a write (chunk N pulled and staged,
    the run waiting for the destination's write lock), and, for DuckDB, once between a
    COMMIT and DuckDB's checkpoint. Each kill is asserted to have landed where it was
    aimed: the killed run committed exactly the chunks before N of the struck report.
    Between the kill and the re-run, the destination (a DuckDB file with its WAL replayed
    by a read-only open, or a Postgres database whose server rolled the killed transaction
    back) holds whole partitions only and lost none; the re-run restores the truth."""
    reports = (ALL_ACTIONS, ALL_LEADS)
    days = lab.days(lab.scale.partitions)
    server = lab.sandbox()
    path = lab.target("killed", kind)
    per_day = resources_config(path, chunk_days=1)  # a transaction per day: many to hit
    job = Materialize(server, path, reports, days, per_day)
    baseline = lab.run(replace(job, days=days[: len(days) // 2]))
    assert baseline.success, baseline.text
    for number in range(lab.scale.kills):
        at = "write" if number % 2 else "pull"
        struck = reports[lab.rng.randrange(len(reports))]
        chunk = lab.rng.randrange(len(days))
        before = {report.name: partitions_of(path, report) for report in reports}
        KillSwitch(struck, days[chunk], at, path).strike(lab, job)
        lab.injected(1)
        wal = isinstance(path, Path) and wal_of(path).exists()
        notes = [
            assert_crash_left_whole_partitions(lab, path, server, report, before[report.name])
            for report in reports
        ]
        landed = rewritten_days(before[struck.name], partitions_of(path, struck))
        assert landed == days[:chunk], (
            f"kill at the {at} of {struck.name} {days[chunk]}: the killed run committed "
            f"{landed}, not exactly the days before it"
        )
        rerun = lab.run(job)
        assert rerun.success, rerun.text
        compare_with_truth(lab, path, server, reports, days)
        lab.notes.append(
            f"{kind}: kill at the {at} of {struck.name} chunk {chunk + 1}/{len(days)} landed "
            f"there ({chunk} chunk(s) committed before it); WAL left: {wal}; " + "; ".join(notes)
        )
        lab.survived(1)
    if not isinstance(path, Path):
        return  # the WAL and its checkpoint are DuckDB's
    kill_between_commit_and_checkpoint(lab, server, path, days[0])
    rerun = lab.run(job)
    assert rerun.success, rerun.text
    assert not wal_of(path).exists(), "the re-run's write did not check the WAL in"
    compare_with_truth(lab, path, server, reports, days)


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def kill_between_commit_and_checkpoint(
    lab: Lab, server: SandboxServer, path: Path, day: date
) -> None:
    """A kill after a COMMIT but before DuckDB's checkpoint leaves the commit in the WAL
    only. Made certain in a child process (:func:`commit_then_die`) that runs the
    pipeline's load (pull from the sandbox, stage, write); the file, opened read-only,
    must show the commit, replayed from the WAL, equal to the truth."""
    lab.injected(1)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from salesexec_assets_tests.fault_scenarios import commit_then_die; "
            f"commit_then_die({str(path)!r}, {str(day)!r}, {server.base_url!r})",
        ],
        env={
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            **salesexec_environment(server, path),
        },
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    lab.secrets.add("commit_then_die output", child.stdout + child.stderr)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert "committed" in child.stdout, child.stdout[-3000:]  # it died after its COMMIT
    assert wal_of(path).exists(), "the killed writer left no WAL"
    runs = {
        row["_run_id"]
        for row in stored_rows(path, ALL_LEADS.name, with_metadata=True)
        if row["partition_date"] == day
    }
    assert runs == {WAL_RUN_ID}, f"the commit in the WAL was not read back: {runs}"
    compare_with_truth(lab, path, server, [ALL_LEADS], [day])
    lab.notes.append("a kill between COMMIT and checkpoint left a WAL; it was read back")
    lab.survived(1)


WAL_RUN_ID = "killed-between-commit-and-checkpoint"


def commit_then_die(path: str, day: str, base_url: str) -> None:
    """In a child process: load one day of All Leads from the sandbox at ``base_url``
    through the pipeline's :func:`load_report`, with DuckDB's checkpoint on close turned
    off, then SIGKILL this process: dead after the COMMIT, before any checkpoint."""

    def keep_in_wal(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("PRAGMA disable_checkpoint_on_shutdown")

    log = logging.getLogger("commit_then_die")
    username, password = os.environ[USERNAME_VAR], os.environ[PASSWORD_VAR]
    with SalesExecClient(base_url, username, password) as client:
        lead_types = [
            (lead_type[contract.LEAD_TYPE_UID], lead_type[contract.LEAD_TYPE_NAME])
            for lead_type in client.lead_types()
        ]
        result = load_report(
            ALL_LEADS,
            [date.fromisoformat(day)],
            client=client,
            lead_types=lead_types,
            warehouse=DuckDBWarehouse(path),
            zone="UTC",
            mode=WriteMode.REPLACE,
            run_id=WAL_RUN_ID,
            chunk_days=1,
            log=log,
            loaded_at=lambda: datetime.now(timezone.utc).replace(tzinfo=None),
            before_insert=keep_in_wal,
        )
    print(f"committed {result.rows_written} rows", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def parallel_writers(lab: Lab, kind: str = DUCKDB) -> None:
    """Several CLI processes write different partitions of the same five reports into
    one destination at once (all made to collide: on the DuckDB file's lock, or on the
    Postgres tables' advisory locks): all succeed, and the destination holds the truth of
    every partition, once."""
    writers = lab.scale.writers
    per_writer = max(1, lab.scale.partitions // writers)
    days = lab.days(per_writer * writers)
    server = lab.sandbox(latency_ms=5, p5xx=0.02)
    path = lab.target("parallel", kind)
    config = resources_config(path, **FAST_RETRIES)
    waiting = LOCK_WAIT_MESSAGES[kind]
    # Hold the destination's write locks while the writers start: each must wait for
    # them, and then for the others. The collision is certain, not left to timing.
    with hold_write_locks(path, DAY_REPORTS):
        processes = [
            lab.start_cli(Materialize(server, path, DAY_REPORTS, group, config))
            for group in (days[n * per_writer : (n + 1) * per_writer] for n in range(writers))
        ]
        for process in processes:
            process.wait_for(waiting)
    codes = [process.wait() for process in processes]
    lock_waits = sum(process.output.count(waiting) for process in processes)
    injected = lab.injected(lock_waits + sum(server.fault_counts.values()))
    for code, process in zip(codes, processes, strict=True):
        assert code == 0, process.output[-5000:]
        assert waiting in process.output
    compare_with_truth(lab, path, server, DAY_REPORTS, days)
    lab.notes.append(f"{writers} parallel writers into {kind} waited {lock_waits} times")
    lab.survived(injected)


@contextmanager
def hold_write_locks(target: Target, reports: Iterable[Report]) -> Iterator[None]:
    """Hold what a writer of ``reports`` must wait for: the DuckDB file's lock, or each
    report's (and its quarantine's) advisory lock in Postgres, until the block ends."""
    if isinstance(target, Path):
        holder = duckdb.connect(str(target))
        try:
            yield
        finally:
            holder.close()
        return
    assert target.server is not None
    with target.server.connect(target.location.database) as con:
        for report in reports:
            for table in (report.name, report.name + QUARANTINE_SUFFIX):
                con.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    [f"{LOCK_NAMESPACE}salesexec.{table}"],
                )
        yield
        con.rollback()


EXHAUSTED_ENDPOINTS = {
    "5xx": (f"POST {contract.AUTHENTICATE_PATH}", r"HTTP 50[0234]"),
    "429": (f"POST {contract.AUTHENTICATE_PATH}", r"HTTP 429 \(rate limited\)"),
    # failures that start in the middle of the range, after the first day was written
    "503 from the second day": (f"GET {ALL_LEADS.path}", r"HTTP 503"),
    "500 from the second day": (f"GET {ALL_LEADS.path}", r"HTTP 500"),
    "429 from the second day": (f"GET {ALL_LEADS.path}", r"HTTP 429 \(rate limited\)"),
}


def retries_exhausted(lab: Lab, kind: str) -> None:
    """A source that keeps failing (``kind``: every call 5xx, every call 429, or, from the
    middle of a range on, every call for its second day 503, 500 or 429) fails the run
    with a message naming the endpoint, the base URL and the status; the stored values
    are unchanged (the first day, committed before a mid-range failure, by that run), and
    partitions the run did not reach keep even their load stamps."""
    days = lab.days(2)
    server = lab.sandbox()
    path = lab.seeded_file(f"exhausted-{kind.replace(' ', '-')}")
    before = whole_tables(path, [ALL_LEADS])
    source: Any = server
    if kind == "5xx":
        server.set_faults(Faults(p5xx=1.0))
    elif kind == "429":
        server.set_faults(Faults(p429=1.0, retry_after_seconds=1))
    else:
        status = int(kind.split()[0])
        source = lab.proxy(server, failing_windows_from(ALL_LEADS, days[1], status))
    config = resources_config(path, chunk_days=1, **GIVE_UP_FAST)
    outcome = lab.run(Materialize(source, path, [ALL_LEADS], days, config))
    faults = source.rewrites if source is not server else sum(server.fault_counts.values())
    injected = lab.injected(faults)
    assert injected > 0, f"{kind}: the fault never fired"
    endpoint, status = EXHAUSTED_ENDPOINTS[kind]
    assert not outcome.success
    assert endpoint in outcome.text and re.search(status, outcome.text), outcome.text[-3000:]
    assert f"{endpoint} at {source.base_url} still failing after 3 attempts" in outcome.text
    after = whole_tables(path, [ALL_LEADS])
    assert values_only(after) == values_only(before)
    if source is not server:  # the first day was read and committed before the failure
        first = {
            row["_run_id"] for row in after[ALL_LEADS.name] if row["partition_date"] == days[0]
        }
        assert first == {outcome.run_id}, f"{kind}: the first day was not written: {first}"
    untouched = set(days) if source is server else {days[1]}
    for name, rows in after.items():
        kept = [row for row in before[name] if row["partition_date"] in untouched]
        assert [row for row in rows if row["partition_date"] in untouched] == kept
    lab.survived(injected)


BAD_SETTINGS: dict[str, tuple[dict[str, str], dict[str, Any], str]] = {
    # case: (environment, run config, the message naming the setting and its value: a regex)
    "bad zone": ({TIMEZONE_VAR: "Mars/Olympus"}, {}, rf"{TIMEZONE_VAR}='Mars/Olympus' is not"),
    "bad date": ({START_DATE_VAR: "2024-13-45"}, {}, rf"{START_DATE_VAR}='2024-13-45' is not"),
    "non-numeric UID": ({LEAD_TYPE_UIDS_VAR: "1,two"}, {}, rf"{LEAD_TYPE_UIDS_VAR} .*'two'"),
    "negative UID": ({LEAD_TYPE_UIDS_VAR: "-4"}, {}, rf"{LEAD_TYPE_UIDS_VAR} .*'-4' is not"),
    "negative chunk days": (
        {},
        {"chunk_days": -3},
        r"WarehouseResource\s+chunk_days\s+Input should be greater than or equal to 1 "
        r"\[.*input_value=-3",
    ),
}


def malformed_settings(lab: Lab) -> None:
    """Malformed ``SALESEXEC_*`` values and a negative number in run config stop
    ``dagster asset materialize`` before any run, with an error naming the setting and
    its value; the warehouse file is not touched (byte for byte)."""
    days = lab.days(1)
    server = lab.sandbox()
    path = lab.seeded_file("malformed-settings")
    digest = file_digest(path)
    processes = {
        case: lab.start_cli(
            Materialize(server, path, [ALL_LEADS], days, resources_config(path, **config), env)
        )
        for case, (env, config, _) in BAD_SETTINGS.items()
    }
    lab.injected(len(processes))
    for case, process in processes.items():
        code = process.wait()
        says = BAD_SETTINGS[case][2]
        assert code != 0, f"{case}: {process.output[-3000:]}"
        assert re.search(says, process.output), f"{case}: not {says!r}: {process.output[-3000:]}"
    assert file_digest(path) == digest
    lab.survived(len(processes))


def _base_url_case(lab: Lab, case: str) -> tuple[Any, tuple[str, ...]]:
    """The base URL of a bad-input case, and what the failure must say (regexes)."""
    if case == "refused":
        address = refusing_address()
        return address, (re.escape(address.base_url), r"connection error \(Connection refused\)")
    server = lab.sandbox()
    if case == "wrong password":
        return server, ("bad credentials for user 'sandbox'", "SALESEXEC_PASSWORD")
    status = 200 if case == "html" else 404
    proxy = lab.proxy(server, html_pages(status))
    return proxy, (re.escape(proxy.base_url), "answered HTML, not JSON", "SALESEXEC_BASE_URL")


BAD_BASE_URLS = ("refused", "html", "html error page", "wrong password")


def bad_base_url(lab: Lab, case: str) -> None:
    """A base URL that refuses connections, one that answers HTML (a 200 page, an error
    page), or a wrong password: the run fails naming the problem; nothing stored changes."""
    days = lab.days(1)
    path = lab.seeded_file(f"bad-url-{case.replace(' ', '-')}")
    before = whole_tables(path, [ALL_LEADS])
    source, says = _base_url_case(lab, case)
    env = {"SALESEXEC_PASSWORD": WRONG_PASSWORD} if case == "wrong password" else {}
    config = resources_config(**GIVE_UP_FAST)
    lab.injected(1)
    outcome = lab.run(Materialize(source, path, [ALL_LEADS], days, config, env))
    assert not outcome.success
    missing = [pattern for pattern in says if not re.search(pattern, outcome.text)]
    assert not missing, f"{case}: the error does not say {missing}: {outcome.text[-3000:]}"
    assert whole_tables(path, [ALL_LEADS]) == before
    lab.survived(1)


def _mark_missing_id(record: dict[str, Any]) -> None:
    del record[contract.LEAD_UID]


def _mark_text_id(record: dict[str, Any]) -> None:
    record[contract.LEAD_UID] = f"L-{record[contract.LEAD_UID]}"


def _mark_bad_timestamp(record: dict[str, Any]) -> None:
    record[contract.DATE_ADDED] = "yesterday at noon"


def _mark_out_of_range_timestamp(record: dict[str, Any]) -> None:
    record[contract.LAST_UPDATED] = "0001-01-01T00:00:00+01:00"  # before year 1 in UTC


def _mark_window_outside_the_days(record: dict[str, Any]) -> None:
    record[contract.DATE_ADDED] = "2001-01-01T00:00:00Z"


# (corruption, the reason's beginning, whether the record still has its own day)
BAD_RECORDS: tuple[tuple[Corruption, str, bool], ...] = (
    (_mark_missing_id, "LeadUID is missing", True),
    (_mark_text_id, "LeadUID: 'L-", True),
    (_mark_bad_timestamp, "DateAddedUtc: not a timestamp the API contract allows", False),
    (_mark_out_of_range_timestamp, "LastUpdatedUtc: an instant outside the representable", True),
    (
        _mark_window_outside_the_days,
        "DateAddedUtc 2001-01-01T00:00:00 is outside the requested days",
        False,
    ),
)


def bad_records(lab: Lab, kind: str = DUCKDB) -> None:
    """Records that break the contract (no id, a text id, an unparseable timestamp, one
    out of range, a window instant outside the requested days) go whole, with the reason,
    to the quarantine table, dated by their own day when their window field gives one
    (else by the first day of their chunk); the materialization counts them and its
    ``no_quarantined_records`` check fails as a warning; every other record is stored.
    Once the source is fixed, re-running a record's day stores it and empties that day's
    quarantine."""
    days = lab.days(2)
    first_day, bad_day = days
    server = lab.sandbox()
    path = lab.seeded("bad-records", kind)
    truth = expected_day(server, ALL_LEADS, lead_type_uids(server), bad_day)
    assert len(truth) >= len(BAD_RECORDS), "too few leads a day to corrupt one of each kind"
    cases = dict(zip((row["lead_uid"] for row in truth), BAD_RECORDS, strict=False))
    targets = {uid: corrupt for uid, (corrupt, _, _) in cases.items()}
    proxy = lab.proxy(server, corrupting_records(ALL_LEADS, targets))
    # a range in one chunk: the bad records' day is not the chunk's first day
    outcome = lab.run(Materialize(proxy, path, [ALL_LEADS], days))
    injected = lab.injected(len(targets))
    assert outcome.success and outcome.result is not None, outcome.text
    metadata = metadata_of(outcome.result, ALL_LEADS)
    assert metadata["quarantined_records"] == len(targets)
    assert sum(metadata["quarantine_reasons"].values()) == len(targets)
    check = next(
        e
        for e in outcome.result.get_asset_check_evaluations()
        if e.check_name == NO_QUARANTINED_RECORDS
    )
    assert not check.passed and check.severity.value == "WARN"
    quarantined = stored_rows(path, ALL_LEADS.name + QUARANTINE_SUFFIX)
    assert len(quarantined) == len(BAD_RECORDS)
    for row in quarantined:  # each under its own lead type (records are staged in batches
        record = row["record"]  # that mix lead types)
        record = json.loads(record) if isinstance(record, str) else record
        assert row["lead_type_uid"] == record[contract.LEAD_TYPE_UID], row
    for _, reason, has_day in BAD_RECORDS:
        rows = [row for row in quarantined if row["reason"].startswith(reason)]
        assert len(rows) == 1, (reason, [row["reason"] for row in quarantined])
        assert rows[0]["partition_date"] == (bad_day if has_day else first_day), reason
    # every other record of both days is stored
    expected = [
        *expected_day(server, ALL_LEADS, lead_type_uids(server), first_day),
        *(row for row in truth if row["lead_uid"] not in targets),
    ]
    kept = stored_rows(path, ALL_LEADS.name)
    lab.tally(ALL_LEADS, expected, kept, 2)
    assert_rows_match(kept, expected, key_columns(ALL_LEADS))
    # the source fixed: re-running the bad day stores its records and empties its quarantine
    fixed = lab.run(Materialize(server, path, [ALL_LEADS], [bad_day]))
    assert fixed.success, fixed.text
    left = stored_rows(path, ALL_LEADS.name + QUARANTINE_SUFFIX)
    assert sorted(row["reason"][:20] for row in left) == sorted(
        reason[:20] for _, reason, has_day in BAD_RECORDS if not has_day
    )
    assert {row["partition_date"] for row in left} == {first_day}
    # the records without a day of their own go when their chunk's first day is re-run
    assert lab.run(Materialize(server, path, [ALL_LEADS], [first_day])).success
    compare_with_truth(lab, path, server, [ALL_LEADS], days)
    assert stored_rows(path, ALL_LEADS.name + QUARANTINE_SUFFIX) == []
    lab.survived(injected)


def _run_each(lab: Lab, scenario: Callable[..., None], cases: Iterable[str]) -> None:
    for case in cases:
        scenario(lab, case)


# Every scenario, for the script: name -> what to call with the lab.
SCENARIOS: dict[str, Callable[[Lab], None]] = {
    "all faults at once, Python API": lambda lab: all_faults_at_once(lab, "python"),
    "all faults at once, dagster asset materialize": lambda lab: all_faults_at_once(lab, "cli"),
    "rows leave windows mid-read": lambda lab: _run_each(lab, rows_leave_windows, LEAVING),
    "kill -9 and re-run": kill_and_rerun,
    "kill -9 and re-run, Postgres": lambda lab: kill_and_rerun(lab, POSTGRES),
    "parallel writers": parallel_writers,
    "parallel writers, Postgres": lambda lab: parallel_writers(lab, POSTGRES),
    "retries exhausted": lambda lab: _run_each(lab, retries_exhausted, EXHAUSTED_ENDPOINTS),
    "malformed settings": malformed_settings,
    "bad base URL or password": lambda lab: _run_each(lab, bad_base_url, BAD_BASE_URLS),
    "bad records": bad_records,
    "bad records, Postgres": lambda lab: bad_records(lab, POSTGRES),
}
