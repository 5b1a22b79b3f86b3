"""The report assets through the real ``dagster asset materialize`` command: a subprocess
per run, the code location loaded with ``-m salesexec_assets.definitions`` from
``SALESEXEC_*`` variables that point at a sandbox this test started, DAGSTER_HOME and the
DuckDB file in tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance

from salesexec_assets.api.contract import REPORTS, REPORTS_BY_NAME, Pull
from salesexec_assets.assets import report_asset_key
from salesexec_assets.definitions import build_definitions
from salesexec_assets.naming import snake_case
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.settings import load_settings
from salesexec_assets_tests.conftest import (
    SANDBOX_PASSWORD,
    PointEnv,
    RunAssets,
    salesexec_environment,
)
from salesexec_assets_tests.truth import (
    assert_rows_match,
    expected_day,
    sorted_rows,
    stored_rows,
)

MODULE = "salesexec_assets.definitions"
DAY_REPORTS = tuple(report for report in REPORTS if report.pull is not Pull.NOW)
ALL_LEADS = REPORTS_BY_NAME["all_leads"]
# every report a past day can be pulled for
PAST_DAY_SELECTION = " or ".join(f"key:salesexec/{report.name}" for report in DAY_REPORTS)
LOCKED_MESSAGE = "is locked by another writer"
CLI_TIMEOUT_SECONDS = 180
# Steps run in the CLI's own process: the default multiprocess executor starts one Python
# per step, which costs about 10 s per step on a busy 2-core machine and tests nothing of
# ours. The command, its selection, partitions and the code location are the real ones.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def create_dagster_home(home: Path) -> Path:
    """A DAGSTER_HOME with telemetry off and its storage created."""
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # Create the instance's SQLite storage now, as any deployment has it before its first
    # runs: two CLI processes that both find it missing race to create it and one fails
    # ("Version table 'alembic_version' has more than one head present").
    with DagsterInstance.from_config(str(home)):
        pass
    return home


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    return create_dagster_home(tmp_path / "dagster_home")


def cli_environment(server: Any, duckdb_path: Path, dagster_home: Path) -> dict[str, str]:
    """This process's environment without any SALESEXEC_* of its own, pointed at ``server``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SALESEXEC_")}
    return {
        **inherited,
        **salesexec_environment(server, duckdb_path),
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONUNBUFFERED": "1",
    }


def materialize_command(*args: str) -> list[str]:
    dagster = Path(sys.executable).with_name("dagster")
    return [str(dagster), "asset", "materialize", "-m", MODULE, *args]


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        materialize_command(*args),
        env=env,
        cwd=cwd,  # a tmp dir: no .env or .tmp_dagster_home_* of the repository
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )


def test_a_partition_range_run_equals_the_same_days_run_one_by_one(
    sandbox: SandboxServer,
    tmp_path: Path,
    dagster_home: Path,
    point_env_at: PointEnv,
    run_assets: RunAssets,
) -> None:
    days = [date(2025, 6, 10) + timedelta(days=n) for n in range(4)]
    range_path = tmp_path / "range.duckdb"
    # two days per transaction, so the range is written in two chunks
    config = {
        "resources": {"warehouse": {"config": {"path": str(range_path), "chunk_days": 2}}},
        **IN_PROCESS,
    }
    completed = run_cli(
        cli_environment(sandbox, range_path, dagster_home),
        tmp_path,
        "--select",
        PAST_DAY_SELECTION,
        "--partition-range",
        f"{days[0]}...{days[-1]}",
        "--config-json",
        json.dumps(config),
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-5000:]
    for report in DAY_REPORTS:
        assert f"{report.name}: wrote {days[0]}..{days[1]}" in output
        assert f"{report.name}: wrote {days[2]}..{days[3]}" in output
    assert SANDBOX_PASSWORD not in output
    # nor in anything the run stored: run config, event log, the warehouse
    stored_files = [path for path in (*dagster_home.rglob("*"), range_path) if path.is_file()]
    assert range_path in stored_files and len(stored_files) > 2
    for path in stored_files:
        assert SANDBOX_PASSWORD.encode() not in path.read_bytes(), path
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for report in DAY_REPORTS:
            materialized = instance.get_materialized_partitions(report_asset_key(report))
            assert materialized == {str(day) for day in days}, report.name

    daily_path = tmp_path / "daily.duckdb"
    point_env_at(sandbox, daily_path)
    defs = build_definitions(load_settings())
    for day in days:
        result = run_assets(defs, [report_asset_key(r) for r in DAY_REPORTS], partition=str(day))
        assert result.success

    for report in DAY_REPORTS:
        in_range = sorted_rows(stored_rows(range_path, report.name))
        assert {row["partition_date"] for row in in_range} == set(days), report.name
        assert in_range == sorted_rows(stored_rows(daily_path, report.name)), report.name


def wait_until_both_wait_for_the_lock(logs: list[Path], processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + CLI_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if all(LOCKED_MESSAGE in log.read_text(errors="replace") for log in logs):
            return
        if any(process.poll() is not None for process in processes):
            return  # one ended: its output tells why
        time.sleep(0.2)


def test_two_cli_writers_into_one_duckdb_file_both_succeed_and_lose_nothing(
    sandbox: SandboxServer, tmp_path: Path, dagster_home: Path, warehouse_path: Path
) -> None:
    days = [date(2025, 6, 10), date(2025, 6, 11)]
    env = cli_environment(sandbox, warehouse_path, dagster_home)
    # This test holds the file's write lock while both runs start, so that both must wait
    # for it and then for each other: the collision is certain, not left to timing.
    holder = duckdb.connect(str(warehouse_path))
    processes: list[subprocess.Popen] = []
    logs = [tmp_path / f"writer-{day}.log" for day in days]
    try:
        for day, log in zip(days, logs, strict=True):
            with log.open("w") as sink:
                processes.append(
                    subprocess.Popen(
                        materialize_command(
                            "--select",
                            f"key:salesexec/{ALL_LEADS.name}",
                            "--partition",
                            str(day),
                            "--config-json",
                            json.dumps(IN_PROCESS),
                        ),
                        env=env,
                        cwd=tmp_path,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    )
                )
        wait_until_both_wait_for_the_lock(logs, processes)
    finally:
        holder.close()
        for process in processes:
            try:
                process.wait(timeout=CLI_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                raise

    outputs = [log.read_text(errors="replace") for log in logs]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-5000:]
        assert LOCKED_MESSAGE in output
        assert SANDBOX_PASSWORD not in output
    lead_types = sorted(lt["LeadTypeUID"] for lt in sandbox.data.lead_types())
    expected = [row for day in days for row in expected_day(sandbox, ALL_LEADS, lead_types, day)]
    key = [snake_case(name) for name in ALL_LEADS.key]
    assert_rows_match(stored_rows(warehouse_path, ALL_LEADS.name), expected, key)


def test_a_cli_run_without_partition_is_refused_before_any_table_is_touched(
    sandbox: SandboxServer,
    tmp_path: Path,
    dagster_home: Path,
    warehouse_path: Path,
    salesexec_env: dict[str, str],
    run_assets: RunAssets,
) -> None:
    key = AssetKey(["salesexec", ALL_LEADS.name])
    assert run_assets(build_definitions(load_settings()), [key], partition="2025-06-10").success
    before = sorted_rows(stored_rows(warehouse_path, ALL_LEADS.name, with_metadata=True))
    assert before

    completed = run_cli(
        cli_environment(sandbox, warehouse_path, dagster_home),
        tmp_path,
        "--select",
        f"key:salesexec/{ALL_LEADS.name}",
    )
    assert completed.returncode != 0
    assert "no '--partition' option was provided" in completed.stderr
    after = sorted_rows(stored_rows(warehouse_path, ALL_LEADS.name, with_metadata=True))
    assert after == before


README = Path(__file__).resolve().parents[1] / "README.md"
RUNNING_DOC = Path(__file__).resolve().parents[1] / "docs" / "running.md"
# The selections of the README and docs/running.md, run here as written there.
README_ALL_REPORTS = "group:salesexec"
README_ALL_BUT_NOW_REPORT = "group:salesexec and not key:salesexec/leads_awaiting_import_count"


def test_the_readme_selections_for_past_days_exit_zero_and_write_every_dated_report(
    sandbox: SandboxServer, tmp_path: Path, dagster_home: Path, warehouse_path: Path
) -> None:
    """``--select 'group:salesexec' --partition <past day>`` (the now-only report skips the
    day and says so), and the README's range example that leaves the now-only report out."""
    documented = README.read_text() + RUNNING_DOC.read_text()
    for selection in (README_ALL_REPORTS, README_ALL_BUT_NOW_REPORT):
        assert f"--select '{selection}'" in documented, selection
    env = cli_environment(sandbox, warehouse_path, dagster_home)
    config = json.dumps(IN_PROCESS)
    one_day = date(2025, 6, 9)
    days = [one_day, *(date(2025, 6, 10) + timedelta(days=n) for n in range(2))]

    single = run_cli(
        env, tmp_path, "--select", README_ALL_REPORTS, "--partition", str(one_day),
        "--config-json", config,
    )  # fmt: skip
    output = single.stdout + single.stderr
    assert single.returncode == 0, output[-5000:]
    assert f"nothing was written for {one_day}" in output
    ranged = run_cli(
        env, tmp_path, "--select", README_ALL_BUT_NOW_REPORT,
        "--partition-range", f"{days[1]}...{days[-1]}", "--config-json", config,
    )  # fmt: skip
    output = ranged.stdout + ranged.stderr
    assert ranged.returncode == 0, output[-5000:]
    assert "leads_awaiting_import_count" not in output

    lead_types = sorted(lt["LeadTypeUID"] for lt in sandbox.data.lead_types())
    for report in DAY_REPORTS:
        expected = [row for day in days for row in expected_day(sandbox, report, lead_types, day)]
        key = [snake_case(name) for name in report.key]
        assert_rows_match(stored_rows(warehouse_path, report.name), expected, key)
    awaiting = REPORTS_BY_NAME["leads_awaiting_import_count"]
    assert stored_rows(warehouse_path, awaiting.name) == []
