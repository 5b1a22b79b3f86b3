"""Dagster as a user starts it, driven over the GraphQL API the UI itself uses.

:func:`dagster_dev` starts ``dagster dev`` in the repository root (so it loads
``workspace.yaml``) on a free loopback port, with a temporary ``DAGSTER_HOME``, waits
(bounded) until the code location is loaded, and stops the whole process group on exit,
even on failure. Everything it printed is kept in a log file for assertions and CI.

The GraphQL helpers (location status, backfill launch and polling) take any
:class:`DagsterUI`: ``dagster dev`` here, or the separate processes of the deployed
topology (``test_topology.py``), which start with :func:`start_logged_process`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from salesexec_assets_tests.e2e_truth import NOW_ONLY, WINDOWED, asset_path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCATION_NAME = "salesexec_assets"
PROJECT_PACKAGE = "salesexec_assets"

# The project's instance settings (run retries, pools): the DAGSTER_HOME the README sets.
PROJECT_INSTANCE_YAML = REPO_ROOT / "dagster_home" / "dagster.yaml"
# Off on top of them: telemetry (the machine may have no internet) and the first-visit
# "Join the Dagster community" dialog of the UI.
INSTANCE_OVERRIDES: dict[str, Any] = {"telemetry": {"enabled": False}, "nux": {"enabled": False}}

# The backfill statuses after which nothing more happens.
BACKFILL_DONE = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)
RUN_DONE = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

# A Python warning as printed ("file.py:12: BetaWarning: ..."), alone on its line or after
# a Dagster log prefix ("... - dagster - WARNING - file.py:12: ...").
_PYTHON_WARNING = re.compile(r"(?P<file>\S+\.py):(?P<line>\d+): (?P<category>\w*Warning): ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DagsterDevError(RuntimeError):
    """``dagster dev`` did not come up, or answered GraphQL with an error."""


class DagsterUI(Protocol):
    """A running Dagster webserver with its daemon, whatever started them."""

    url: str

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a GraphQL answer; GraphQL errors raise."""
        ...

    def log_tail(self, lines: int = 60) -> str:
        """The end of what its processes printed, for error messages."""
        ...

    def raise_if_exited(self) -> None:
        """Raise :class:`DagsterDevError` if one of its processes is gone."""
        ...


def post_graphql(
    url: str, query: str, variables: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """POST a query to the webserver at ``url``: the ``data`` of the answer; errors raise."""
    response = requests.post(
        f"{url}/graphql",
        json={"query": query, "variables": dict(variables or {})},
        timeout=60,
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise DagsterDevError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DagsterDev:
    """A running ``dagster dev``: its URL, its process and everything it printed."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    home: Path
    env: Mapping[str, str]  # the process's whole environment

    def log_text(self) -> str:
        return _ANSI.sub("", self.log_path.read_text(encoding="utf-8", errors="replace"))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a GraphQL answer; GraphQL errors raise."""
        return post_graphql(self.url, query, variables)

    def raise_if_exited(self) -> None:
        if self.process.poll() is not None:
            raise DagsterDevError(
                f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def project_warnings(self) -> list[str]:
        """Python warnings printed with a source file in the project's own code."""
        return project_warnings(self.log_text())


def project_warnings(text: str) -> list[str]:
    """The lines of ``text`` that print a Python warning raised in the project's code."""
    found = []
    for line in text.splitlines():
        for match in _PYTHON_WARNING.finditer(line):
            if f"/{PROJECT_PACKAGE}/" in match["file"].replace("\\", "/"):
                found.append(line.strip())
                break
    return found


# Dagster attributes the warnings its decorators raise (BetaWarning, PreviewWarning, ...)
# to its own files (dagster/_core/decorator_utils.py), so a search of the output for the
# project's paths misses them. Importing the definitions with every warning recorded, after
# dagster itself is imported, catches every warning the project's code causes.
_LOAD_SCRIPT = """
import json, warnings
import dagster  # its own import-time warnings are not the project's
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from {module} import defs
    defs.get_repository_def()
print(json.dumps([
    f"{{w.filename}}:{{w.lineno}}: {{w.category.__name__}}: {{w.message}}" for w in caught
]))
"""


def definition_load_warnings(env: Mapping[str, str], module: str) -> list[str]:
    """Every warning raised while ``module`` loads its ``defs``, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT.format(module=module)],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise DagsterDevError(f"loading {module} failed:\n{result.stderr}")
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def location_status(dev: DagsterUI) -> tuple[str | None, str | None]:
    """(load status, load error) of the project's code location; (None, None) if absent."""
    workspace = dev.graphql(WORKSPACE_QUERY)["workspaceOrError"]
    for entry in workspace.get("locationEntries", []):
        if entry["name"] == LOCATION_NAME:
            location = entry["locationOrLoadError"] or {}
            error = None
            if location.get("__typename") == "PythonError":
                error = location["message"] + "".join(location.get("stack") or [])
            return entry["loadStatus"], error
    return None, None


def wait_until_loaded(dev: DagsterUI, timeout: float) -> None:
    """Poll (bounded) until the webserver shows the code location LOADED; a load error,
    or one of its processes exiting, raises at once."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        dev.raise_if_exited()
        try:
            status, error = location_status(dev)
        except (requests.RequestException, DagsterDevError, ValueError) as problem:
            last = f"{type(problem).__name__}: {problem}"
        else:
            if error:
                raise DagsterDevError(f"code location {LOCATION_NAME} failed to load:\n{error}")
            if status == "LOADED":
                return
            last = f"location {LOCATION_NAME}: {status}"
        time.sleep(1.0)
    raise DagsterDevError(
        f"code location {LOCATION_NAME} not loaded after {timeout:.0f} s ({last}):\n"
        f"{dev.log_tail()}"
    )


def start_logged_process(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own (so that it and its children can be
    stopped together), everything it prints going to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """Ctrl+C to the whole group (as a terminal would), then SIGKILL what is left."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # dagster dev does not always stop its children on Ctrl+C within the grace period:
    # the group is ours alone (start_new_session), so everything left in it goes.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def write_instance_yaml(path: Path) -> dict[str, Any]:
    """The project's ``dagster_home/dagster.yaml`` (if any), :data:`INSTANCE_OVERRIDES`
    applied."""
    settings: dict[str, Any] = {}
    if PROJECT_INSTANCE_YAML.exists():
        settings = yaml.safe_load(PROJECT_INSTANCE_YAML.read_text(encoding="utf-8")) or {}
    settings.update(INSTANCE_OVERRIDES)
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return settings


@contextmanager
def dagster_dev(
    home: Path,
    env: Mapping[str, str],
    log_path: Path,
    *,
    load_timeout: float = 120.0,
    stop_grace: float = 15.0,
) -> Iterator[DagsterDev]:
    """``dagster dev -p <free port> -h 127.0.0.1`` in the repository root, with ``env``.

    ``env`` is the whole environment of the process; ``DAGSTER_HOME`` is set to ``home``,
    which holds the project's ``dagster_home/dagster.yaml``, as the README's home does.
    """
    home.mkdir(parents=True, exist_ok=True)
    write_instance_yaml(home / "dagster.yaml")
    env = {**env, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    command = [sys.executable, "-m", "dagster", "dev", "-p", str(port), "-h", "127.0.0.1"]
    log_path.unlink(missing_ok=True)
    process = start_logged_process(command, env, log_path, REPO_ROOT)
    dev = DagsterDev(f"http://127.0.0.1:{port}", process, log_path, home, env)
    try:
        wait_until_loaded(dev, load_timeout)
        yield dev
    finally:
        stop_process_group(process, stop_grace)


LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { stack }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id
      status
      title
      isAssetBackfill
      numPartitions
      error { message }
      runs(limit: 100) {
        runId
        status
        assetSelection { path }
        tags { key value }
      }
    }
    ... on PythonError { message }
  }
}
"""


def launch_backfill(
    dev: DagsterUI,
    asset_keys: Sequence[Sequence[str]],
    partition_names: Sequence[str],
    title: str,
) -> str:
    """Launch a backfill as the UI's "Materialize… / Launch backfill" dialog does."""
    params = {
        "assetSelection": [{"path": list(key)} for key in asset_keys],
        "partitionNames": list(partition_names),
        "fromFailure": False,
        "title": title,
        "tags": [],
    }
    answer = dev.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise DagsterDevError(f"launchPartitionBackfill answered {answer}")
    return str(answer["backfillId"])


@dataclass(frozen=True)
class BackfillRun:
    run_id: str
    status: str
    asset_keys: frozenset[tuple[str, ...]]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class Backfill:
    backfill_id: str
    status: str
    runs: tuple[BackfillRun, ...]
    error: str | None


def backfill_state(dev: DagsterUI, backfill_id: str) -> Backfill:
    answer = dev.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if answer["__typename"] != "PartitionBackfill":
        raise DagsterDevError(f"partitionBackfillOrError answered {answer}")
    runs = tuple(
        BackfillRun(
            run_id=run["runId"],
            status=run["status"],
            asset_keys=frozenset(tuple(key["path"]) for key in run["assetSelection"] or []),
            tags={tag["key"]: tag["value"] for tag in run["tags"]},
        )
        for run in answer["runs"]
    )
    error = (answer.get("error") or {}).get("message")
    return Backfill(answer["id"], answer["status"], runs, error)


def wait_for_backfills(
    dev: DagsterUI, backfill_ids: Sequence[str], timeout: float, poll: float = 2.0
) -> dict[str, Backfill]:
    """Poll until every backfill and each of its runs is done; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    states: dict[str, Backfill] = {}
    while True:
        states = {backfill_id: backfill_state(dev, backfill_id) for backfill_id in backfill_ids}
        if all(
            state.status in BACKFILL_DONE and all(run.status in RUN_DONE for run in state.runs)
            for state in states.values()
        ):
            return states
        if time.monotonic() > deadline:
            summary = {
                backfill_id: (state.status, [(run.run_id[:8], run.status) for run in state.runs])
                for backfill_id, state in states.items()
            }
            raise DagsterDevError(
                f"backfills not done after {timeout:.0f} s: {summary}\n{dev.log_tail()}"
            )
        time.sleep(poll)


def describe(backfill: Backfill) -> str:
    runs = ", ".join(f"{run.run_id[:8]} {run.status}" for run in backfill.runs)
    return f"backfill {backfill.backfill_id}: {backfill.status} (runs: {runs or 'none'})"


def backfill_reports(
    dev: DagsterUI, days: Sequence[date], today: date | None, label: str, timeout: float
) -> tuple[Backfill, Backfill | None]:
    """Backfill the windowed reports over ``days`` (one run, by their single-run policy)
    and, when ``today`` is given, the "now" report for today (its own run), launched at
    once as two clicks in the UI would; return both once they are done.

    Two backfills, not one: the "now" report refuses past days, so one backfill of all
    six over a range would fail that asset.
    """
    launched = [
        launch_backfill(
            dev,
            [asset_path(report) for report in WINDOWED],
            [str(day) for day in days],
            title=f"{label}: {len(WINDOWED)} windowed reports, {days[0]}..{days[-1]}",
        )
    ]
    if today is not None:
        launched.append(
            launch_backfill(
                dev,
                [asset_path(report) for report in NOW_ONLY],
                [str(today)],
                title=f"{label}: the 'now' report, {today}",
            )
        )
    states = wait_for_backfills(dev, launched, timeout)
    return states[launched[0]], states[launched[1]] if today is not None else None


# The "now" report must run on the day it was asked for: keep clear of UTC midnight.
MIDNIGHT_MARGIN = timedelta(minutes=5)


def wait_until_clear_of_midnight(now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), timezone.utc)
    if midnight - now < MIDNIGHT_MARGIN:
        time.sleep((midnight - now).total_seconds() + 1)
