"""The connector's scheduling, update-method and retry panes, as Dagster definitions.

``config`` reads and validates the scheduling file; ``presets`` turns the connector's
schedule presets into cron; ``schedules`` builds partition-aware schedules and their jobs;
``sensors`` builds the failure-notification, late-change and freshness sensors;
``notify`` posts webhooks without logging their secrets. :func:`build_scheduling_definitions`
assembles them for ``definitions.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import AssetKey, Definitions, TimeWindowPartitionsDefinition

from salesexec_assets.instance import DEFAULT_INSTANCE, Instance
from salesexec_assets.scheduling.config import (
    ConfigError,
    SchedulingConfig,
    UpdateMethod,
    load_scheduling_config,
    parse_scheduling_config,
)
from salesexec_assets.scheduling.schedules import build_schedules
from salesexec_assets.scheduling.sensors import (
    LateChangePlan,
    build_failure_sensor,
    build_freshness,
    build_late_change_job,
    build_late_change_sensor,
)

__all__ = [
    "ConfigError",
    "SchedulingConfig",
    "build_scheduling_definitions",
    "load_scheduling_config",
    "parse_scheduling_config",
]


def build_scheduling_definitions(
    config: SchedulingConfig,
    partitions_def: TimeWindowPartitionsDefinition,
    report_keys: Mapping[str, AssetKey],
    leads_key: AssetKey | None = None,
    instance: Instance = DEFAULT_INSTANCE,
) -> Definitions:
    """Jobs, schedules, sensors and freshness checks for ``config``.

    ``leads_key`` is the merge asset's key when some report merges (it is then added to
    the jobs of those reports, so a scheduled pull also refreshes ``salesexec.leads``).
    ``instance`` scopes every job, schedule and sensor name (see :mod:`instance`).
    """
    jobs, schedules = build_schedules(config, report_keys, partitions_def, leads_key, instance)
    plan = LateChangePlan(
        settings=config.late_changes,
        report_keys=report_keys,
        partitions_def=partitions_def,
        merge_reports=config.merge_reports,
        leads_key=leads_key,
        retention_days={
            name: settings.retention_days
            for name, settings in config.reports.items()
            if settings.update_method is UpdateMethod.PARTITION and settings.retention_days
        },
    )
    late_job = build_late_change_job(plan, instance)
    checks, freshness_sensors = build_freshness(config, report_keys, instance)
    return Definitions(
        jobs=[*jobs, late_job],
        schedules=schedules,
        sensors=[
            build_failure_sensor(config, instance),
            build_late_change_sensor(plan, late_job, instance),
            *freshness_sensors,
        ],
        asset_checks=checks,
    )
