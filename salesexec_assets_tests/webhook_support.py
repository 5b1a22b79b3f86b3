"""What the webhook tests share: definitions with the sensor on, one sensor tick against a
real instance, and launching its run requests the way the daemon does (once per run key)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    RunsFilter,
    build_sensor_context,
)

from salesexec_assets.scheduling.schedules import REPORTS_TAG
from salesexec_assets.settings import Settings
from salesexec_assets.webhooks.inbox import INBOX_VAR
from salesexec_assets.webhooks.sensor import WEBHOOK_JOB_NAME, WEBHOOK_SENSOR_NAME
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.scheduling_support import (
    build_test_definitions,
    make_settings,
    requested_keys,
)

RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"


def webhook_defs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    base_url: str = "",
    quiet: str = "0s",
    start_date: date | None = None,
    destination: Destination | None = None,
) -> tuple[Settings, Definitions, Path]:
    """Settings, definitions with ``webhooks: {enabled: true}``, and the inbox path; the
    tables go to ``destination`` when given (its variables set), else a DuckDB file."""
    inbox = tmp_path / "inbox" / "webhooks.sqlite"
    monkeypatch.setenv(INBOX_VAR, str(inbox))
    kwargs = {"start_date": start_date} if start_date else {}
    settings = make_settings(tmp_path, base_url=base_url, **kwargs)
    if destination is not None:
        for name, value in destination.env.items():
            monkeypatch.setenv(name, value)
        settings = writing_to(settings, destination)
    defs = build_test_definitions(settings, {"webhooks": {"quiet_period": quiet}})
    return settings, defs, inbox


def writing_to(settings: Settings, destination: Destination) -> Settings:
    """The settings with their tables going to ``destination``, as its variables say."""
    if destination.path is not None:
        return replace(settings, duckdb_path=destination.path)
    return replace(
        settings, warehouse=destination.location, has_warehouse_password=bool(destination.password)
    )


def tick(
    defs: Definitions, instance: DagsterInstance, cursor: str | None
) -> tuple[list[RunRequest], str | None, str | None]:
    """One evaluation of the webhook sensor: (run requests, new cursor, skip message)."""
    sensor = defs.resolve_sensor_def(WEBHOOK_SENSOR_NAME)
    with build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        result = sensor.evaluate_tick(context)
    return list(result.run_requests or []), result.cursor, result.skip_message


def launch(
    defs: Definitions, instance: DagsterInstance, request: RunRequest
) -> ExecuteInProcessResult | None:
    """Execute a run request unless a run with its run key exists (the daemon's rule)."""
    assert request.run_key
    existing = instance.get_runs(filters=RunsFilter(tags={RUN_KEY_TAG: request.run_key}))
    if existing:
        return None
    return defs.resolve_job_def(WEBHOOK_JOB_NAME).execute_in_process(
        instance=instance,
        asset_selection=list(request.asset_selection or []),
        partition_key=request.partition_key,
        tags={**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: WEBHOOK_SENSOR_NAME},
    )


def requested_partitions(requests: list[RunRequest], all_keys: list[str]) -> set[tuple[str, str]]:
    """(report, partition key) pairs the requests ask for."""
    return {
        (report, key)
        for request in requests
        for report in request.tags[REPORTS_TAG].split(",")
        for key in requested_keys(request, all_keys)
    }


def loads_by_partition(duckdb_path: Path, table: str) -> dict[str, set[str]]:
    """Partition key -> the run ids that wrote its rows (to tell re-pulled from untouched)."""
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rows = con.execute(
            f'SELECT DISTINCT CAST(partition_date AS VARCHAR), _run_id FROM "salesexec"."{table}"'
        ).fetchall()
    loads: dict[str, set[str]] = {}
    for key, run_id in rows:
        loads.setdefault(key, set()).add(run_id)
    return loads
