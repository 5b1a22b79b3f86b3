"""What the scheduling tests share: settings, definitions per config, runs, partition keys."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    SkipReason,
    build_schedule_context,
)

from salesexec_assets.definitions import build_definitions
from salesexec_assets.sandbox import SandboxServer, run_sandbox
from salesexec_assets.scheduling import parse_scheduling_config
from salesexec_assets.scheduling.schedules import (
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
)
from salesexec_assets.settings import PASSWORD_VAR, USERNAME_VAR, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FILE = REPO_ROOT / "salesexec.example.yaml"
DAGSTER_YAML = REPO_ROOT / "dagster_home" / "dagster.yaml"
SANDBOX_LEADS_PER_DAY = 5


def make_settings(
    tmp_path: Path,
    *,
    base_url: str = "",
    zone: str = "UTC",
    start_date: date = date(2025, 1, 1),
) -> Settings:
    """Settings for a test: its own DuckDB file; credentials only with a base URL."""
    return Settings(
        base_url=base_url,
        has_credentials=bool(base_url),
        lead_type_uids=None,
        timezone=zone,
        start_date=start_date,
        duckdb_path=tmp_path / "warehouse" / "salesexec_test.duckdb",
    )


def build_test_definitions(settings: Settings, config: Mapping[str, Any] | None) -> Definitions:
    """The code location as it loads for ``config`` (the parsed YAML of a scheduling file)."""
    return build_definitions(settings, parse_scheduling_config(config or {}, "test"))


def with_resource(defs: Definitions, key: str, resource: object) -> Definitions:
    """The same definitions with one resource swapped (e.g. a client that fails fast)."""
    return Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources={**(defs.resources or {}), key: resource},
    )


def evaluate_schedule(
    defs: Definitions, name: str, tick: datetime, instance: DagsterInstance
) -> list[RunRequest | SkipReason]:
    """One tick of a schedule, evaluated as the daemon does (real instance and repository)."""
    schedule = defs.resolve_schedule_def(name)
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=tick,
        repository_def=defs.get_repository_def(),
    )
    data = schedule.evaluate_tick(context)
    if data.skip_message:
        return [SkipReason(data.skip_message)]
    return list(data.run_requests or [])


def partition_keys_at(defs: Definitions, when: datetime) -> list[str]:
    """Every partition key that exists at ``when`` (the reports share one definition)."""
    assets_def = defs.resolve_assets_def(AssetKey(["salesexec", "all_leads"]))
    assert assets_def.partitions_def is not None
    return list(assets_def.partitions_def.get_partition_keys(current_time=when))


def requested_keys(request: RunRequest, all_keys: Sequence[str]) -> list[str]:
    """The partition keys a run request covers: its key, or its range expanded."""
    if request.partition_key is not None:
        return [request.partition_key]
    start = request.tags.get(PARTITION_RANGE_START_TAG)
    end = request.tags.get(PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        return []
    return [key for key in all_keys if start <= key <= end]


MANUAL_JOB = "all_salesexec_reports"


def run_assets(
    defs: Definitions,
    keys: Sequence[AssetKey],
    instance: DagsterInstance,
    *,
    partition_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    resources: Mapping[str, object] | None = None,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    """Materialize ``keys`` as a manual run does (a job without retry policy)."""
    return defs.resolve_job_def(MANUAL_JOB).execute_in_process(
        instance=instance,
        asset_selection=list(keys),
        partition_key=partition_key,
        tags=dict(tags or {}),
        resources=resources,
        raise_on_error=raise_on_error,
    )


@contextmanager
def sandbox_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """A real HTTP sandbox on loopback, with its login in the credential variables. Its
    clock stands still at the moment it starts: the data the sensors poll and the truth
    the test asks for afterwards are the same, whenever the minute turns."""
    started = datetime.now(timezone.utc)
    with run_sandbox(leads_per_day=SANDBOX_LEADS_PER_DAY, clock=lambda: started) as server:
        monkeypatch.setenv(USERNAME_VAR, server.config.username)
        monkeypatch.setenv(PASSWORD_VAR, server.config.password)
        yield server
