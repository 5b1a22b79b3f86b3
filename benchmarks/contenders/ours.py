"""Ours: the real report assets, materialized through Dagster in this process.

The assets come from ``build_definitions`` as deployed; only the resources point at the
sandbox (``SalesExecResource``) and a fresh DuckDB file (``WarehouseResource``). One day
is ``partition_key``; several days are ONE run over the range via the
``dagster/asset_partition_range_*`` tags, as a single-run backfill does.

Three times are reported, so that Dagster's fixed cost and the ingest are both honest:
``load`` (the ``materialize`` call), ``run_s`` (RUN_START to RUN_SUCCESS in the event
log) and ``ingest_s``, the time spent in ``load_report`` (pull, stage, write), measured
by wrapping that function in this process only; checks and metadata queries are in the
steps but not in the ingest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetsDefinition, DagsterEventType, DagsterInstance, materialize

import salesexec_assets.assets as assets_module
from benchmarks.contenders import Load
from benchmarks.workload import LoadOutput, StoredTable, Workload, report
from salesexec_assets.definitions import build_definitions
from salesexec_assets.records import key_columns, table_spec
from salesexec_assets.resources import SalesExecResource, WarehouseResource
from salesexec_assets.settings import Settings

PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def _timed_load_report(spent: list[float]) -> bool:
    """Wrap ``load_report`` where the asset body looks it up; False if it is not there."""
    original: Callable[..., Any] | None = getattr(assets_module, "load_report", None)
    if original is None:
        return False

    @wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    assets_module.load_report = timed  # type: ignore[attr-defined]
    return True


def _run_phases(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Run and step durations from the run's event log."""
    stamps: dict[tuple[str, str | None], float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None:
            stamps[(event.event_type_value, event.step_key)] = entry.timestamp
    phases: dict[str, float] = {}
    start = stamps.get((DagsterEventType.RUN_START.value, None))
    end = stamps.get((DagsterEventType.RUN_SUCCESS.value, None))
    if start is not None and end is not None:
        phases["run_s"] = end - start
    steps = [
        stamps[(DagsterEventType.STEP_SUCCESS.value, step)] - started
        for (kind, step), started in stamps.items()
        if kind == DagsterEventType.STEP_START.value
        and (DagsterEventType.STEP_SUCCESS.value, step) in stamps
    ]
    phases["steps_s"] = sum(steps)
    return phases


def prepare(workload: Workload, name: str) -> Load:
    """Definitions and resources (untimed, as a code location loads once); then the run."""
    settings = Settings(
        base_url=workload.base_url,
        has_credentials=True,
        lead_type_uids=workload.lead_type_uids,
        timezone="UTC",
        start_date=workload.first_day,
        duckdb_path=Path(workload.db_path),
    )
    defs = build_definitions(settings)
    # the definitions' own assets, before the code location binds its resources to them
    wanted = {AssetKey([assets_module.ASSET_PREFIX, name]) for name in workload.reports}
    assets = [
        definition
        for definition in defs.assets or ()
        if isinstance(definition, AssetsDefinition) and definition.key in wanted
    ]
    if len(assets) != len(wanted):
        raise RuntimeError(f"build_definitions has no assets {sorted(map(str, wanted))}")
    salesexec_options: dict[str, Any] = {"page_size": workload.page_size}
    if workload.lead_type_uids is not None:
        salesexec_options["lead_type_uids"] = list(workload.lead_type_uids)
    if workload.concurrency is not None:
        salesexec_options["max_concurrent_requests"] = workload.concurrency
    resources = {
        "salesexec": SalesExecResource(
            base_url=workload.base_url,
            username=workload.username,
            password=workload.password,
            **salesexec_options,
        ),
        "warehouse": WarehouseResource(path=workload.db_path, chunk_days=workload.chunk_days),
    }
    first, last = workload.first_day.isoformat(), workload.last_day.isoformat()
    partition: dict[str, Any] = (
        {"partition_key": first}
        if first == last
        else {"tags": {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}}
    )
    ingest: list[float] = []
    notes = [] if _timed_load_report(ingest) else ["load_report not found: no ingest time"]
    instance = DagsterInstance.ephemeral()

    def load() -> LoadOutput:
        result = materialize(assets, resources=resources, instance=instance, **partition)
        if not result.success:
            raise RuntimeError("the Dagster run failed")
        phases = _run_phases(instance, result.run_id)
        if ingest:
            phases["ingest_s"] = sum(ingest)
        tables = []
        for name in workload.reports:
            spec = table_spec(report(name))
            tables.append(StoredTable(name, spec.qualified_name, key_columns(report(name))[0]))
        return LoadOutput(tables=tables, phases=phases, notes=notes)

    return load
