"""The one timing and memory harness every contender runs under.

Each contender runs in a FRESH child process (``python -m benchmarks.harness NAME
WORKLOAD RESULT``), so that its peak RSS is its own and nothing it imported or cached
helps the next one. The parent waits for the child with ``os.wait4``, which returns the
child's own resource usage (peak RSS, user and system CPU): the ``/usr/bin/time -v``
measurement, without parsing its output.

Inside the child, imports and one-time setup (``prepare``) happen before the clock
starts; the clock covers only the load the contender's ``prepare`` returns. The process
wall time (interpreter start and imports included) is reported separately by the parent.
"""

from __future__ import annotations

import cProfile
import json
import os
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.contenders import load_contender
from benchmarks.workload import LoadOutput, StoredTable, Workload

REPO_ROOT = Path(__file__).resolve().parent.parent

# dlt must not phone home, and no contender may pick up a developer's SalesExec settings.
CHILD_ENVIRONMENT = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DLT_TELEMETRY": "false",  # older spelling, harmless
    "RUNTIME__LOG_LEVEL": "WARNING",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "PYTHONHASHSEED": "0",
}
_CLEARED_PREFIXES = ("SALESEXEC_", "DAGSTER_HOME")
# When set (by ``run_contender(profile_to=...)``), the child profiles its load with cProfile.
PROFILE_ENV = "BENCH_PROFILE_OUT"


@dataclass
class Measurement:
    """One contender's load, as measured by the harness (parent side)."""

    contender: str
    ok: bool
    load_seconds: float  # the timed load inside the child
    process_seconds: float  # the child's whole life, interpreter start and imports included
    peak_rss_bytes: int  # the child's peak resident set (wait4's ru_maxrss)
    cpu_seconds: float  # user + system CPU of the child
    tables: list[StoredTable] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    rows: int | None = None
    client_requests: int | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    log_path: str = ""


def child_environment(profile_to: Path | None = None) -> dict[str, str]:
    """The parent's environment, cleaned, plus the benchmark's settings."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(_CLEARED_PREFIXES)
    }
    env.update(CHILD_ENVIRONMENT)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop(PROFILE_ENV, None)
    if profile_to is not None:
        env[PROFILE_ENV] = str(profile_to)
    return env


def run_contender(
    name: str,
    workload: Workload,
    work_dir: Path,
    *,
    timeout_seconds: float = 1800.0,
    profile_to: Path | None = None,
) -> Measurement:
    """Run one contender in a fresh process and measure it (and profile it, if asked)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    workload_path = workload.save(work_dir / f"{name}.workload.json")
    result_path = work_dir / f"{name}.result.json"
    log_path = work_dir / f"{name}.log"
    result_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.harness", name, str(workload_path)]
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, str(result_path)],
            cwd=REPO_ROOT,
            env=child_environment(profile_to),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        status, usage = _wait_with_usage(process, timeout_seconds)
    process_seconds = time.perf_counter() - started
    measurement = Measurement(
        contender=name,
        ok=False,
        load_seconds=float("nan"),
        process_seconds=process_seconds,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # kilobytes on Linux
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        log_path=str(log_path),
    )
    if status != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        measurement.error = f"exit status {status}; log tail:\n{tail}"
        return measurement
    payload = json.loads(result_path.read_text())
    if payload.get("error"):
        measurement.error = payload["error"]
        return measurement
    measurement.ok = True
    measurement.load_seconds = payload["load_seconds"]
    measurement.tables = [StoredTable(**table) for table in payload["tables"]]
    measurement.phases = payload["phases"]
    measurement.rows = payload.get("rows")
    measurement.client_requests = payload.get("client_requests")
    measurement.notes = payload.get("notes", [])
    return measurement


def _wait_with_usage(
    process: subprocess.Popen[bytes], timeout_seconds: float
) -> tuple[int, resource.struct_rusage]:
    """Reap the child with wait4 (its own rusage); kill it past the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return -9, usage
        time.sleep(0.02)


# --------------------------------------------------------------------------- child side


def child_main(argv: list[str]) -> int:
    """In the child: prepare (untimed), load (timed), write the result as JSON."""
    name, workload_path, result_path = argv
    workload = Workload.from_json(Path(workload_path).read_text())
    payload: dict[str, Any]
    try:
        contender = load_contender(name)
        load = contender.prepare(workload)
        profile_path = os.environ.get(PROFILE_ENV)
        profiler = cProfile.Profile() if profile_path else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        output: LoadOutput = load()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        load_seconds = time.perf_counter() - started
        payload = {
            "load_seconds": load_seconds,
            "tables": [asdict(table) for table in output.tables],
            "phases": output.phases,
            "rows": output.rows,
            "client_requests": output.client_requests,
            "notes": output.notes,
            "self_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
    except Exception:
        traceback.print_exc()
        payload = {"error": traceback.format_exc()[-3000:]}
    Path(result_path).write_text(json.dumps(payload, indent=2))
    return 0 if "error" not in payload else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
