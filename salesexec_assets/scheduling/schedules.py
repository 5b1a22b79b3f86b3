"""Partition-aware schedules: one per report, or per group of reports with the same settings.

Why not ``ScheduleDefinition(job=...)``: on a partitioned asset job it emits runs with NO
partition key, and a partition-less run would rewrite a whole table. Why not
``build_schedule_from_partitioned_job``: it only ever asks for the last complete day. So
each schedule is a ``@schedule`` that turns its tick into partition keys itself:

- the tick's date is taken in the PARTITIONS' time zone (``SALESEXEC_TIMEZONE``), so
  "days back" counts the same calendar days the partitions are made of, whatever zone
  the schedule ticks in;
- the target's days are clamped to the partitions that exist at the tick (not before
  the start date, not after today); if none is left the tick is skipped, never run
  without a partition;
- one day is requested with ``partition_key``; a relative range (``days_back_start`` ..
  ``days_back_end``) is ONE run over the range, via the ``dagster/asset_partition_range_*``
  tags that single-run backfill-policy assets read as ``context.partition_key_range``.

Retries (the connector's "retry" pane) belong to scheduled runs only. Each schedule
targets its own job; when retry is configured the job carries ``op_retry_policy`` (step
retries with the configured delay, exponential backoff and full jitter) and the run
requests carry the run-retry tags (``dagster/max_retries``: re-launch a run whose worker
crashed). Manual materializations go through Dagster's implicit asset job or
``all_salesexec_reports``, which have neither, so manual runs are never retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dagster import (
    AssetKey,
    AssetSelection,
    Backoff,
    DefaultScheduleStatus,
    Jitter,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    define_asset_job,
    schedule,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from salesexec_assets.instance import DEFAULT_INSTANCE, Instance
from salesexec_assets.scheduling.config import (
    ReportScheduling,
    Retry,
    SchedulingConfig,
    Target,
    UpdateMethod,
)
from salesexec_assets.scheduling.presets import Cadence

# Dagster's run tags (dagster._core.storage.tags); spelled out so the contract is visible.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
MAX_RETRIES_TAG = "dagster/max_retries"
RETRY_STRATEGY_TAG = "dagster/retry_strategy"
RETRY_ON_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
RETRY_TAGS = (MAX_RETRIES_TAG, RETRY_STRATEGY_TAG, RETRY_ON_FAILURE_TAG)

# Set by Dagster on every scheduled run; retried runs inherit their parent's tags.
SCHEDULE_NAME_TAG = "dagster/schedule_name"
# Our own: what triggered a run (schedule, late_changes) and which reports it pulls.
REPORTS_TAG = "salesexec/reports"
TRIGGER_TAG = "salesexec/trigger"


@dataclass(frozen=True)
class ScheduleGroup:
    """Reports pulled together: same cadence, zone, target and retry settings."""

    reports: tuple[str, ...]
    cadence: Cadence
    timezone: str
    target: Target
    retry: Retry
    running: bool = False  # the reports' default_status

    @property
    def name(self) -> str:
        """Named after what it does: ``all_leads_daily_0600_utc_days_back_1``."""
        zone = self.timezone.lower().replace("/", "_").replace("-", "_").replace("+", "plus")
        return f"{'_and_'.join(self.reports)}_{self.cadence.slug}_{zone}_{self.target.slug}"

    @property
    def job_name(self) -> str:
        return f"{self.name}_job"

    def description(self) -> str:
        return (
            f"Pulls {', '.join(self.reports)} on '{self.cadence.text}' (cron "
            f"`{self.cadence.cron}`, {self.timezone}): {self.target.describe()}. Failed "
            f"runs are {self.retry.describe()}."
        )


def schedule_groups(config: SchedulingConfig) -> list[ScheduleGroup]:
    """Scheduled reports grouped by identical settings, sorted by schedule name."""
    groups: dict[tuple[object, ...], list[ReportScheduling]] = {}
    for settings in config.reports.values():
        if settings.cadence is None or settings.target is None:
            continue
        key = (
            settings.cadence.cron,
            settings.timezone,
            settings.target,
            settings.retry,
            settings.running,
        )
        groups.setdefault(key, []).append(settings)
    result = []
    for members in groups.values():
        first = members[0]
        assert first.cadence is not None and first.target is not None
        result.append(
            ScheduleGroup(
                reports=tuple(sorted(m.report for m in members)),
                cadence=first.cadence,
                timezone=first.timezone,
                target=first.target,
                retry=first.retry,
                running=first.running,
            )
        )
    return sorted(result, key=lambda group: group.name)


def target_days(target: Target, tick: datetime, zone: str) -> list[date]:
    """The days a tick asks for, oldest first, before clamping to existing partitions."""
    today = tick.astimezone(ZoneInfo(zone)).date()
    return [
        today - timedelta(days=back)
        for back in range(target.start_days_back, target.end_days_back - 1, -1)
    ]


def target_partition_keys(
    target: Target, partitions_def: TimeWindowPartitionsDefinition, tick: datetime
) -> list[str]:
    """The partition keys a tick at ``tick`` pulls: the target's days that exist then."""
    existing = partitions_def.get_partition_keys(current_time=tick)
    if not existing:
        return []
    first, last = existing[0], existing[-1]
    keys = [
        day.strftime(partitions_def.fmt)
        for day in target_days(target, tick, partitions_def.timezone)
    ]
    return [key for key in keys if first <= key <= last]


def retry_run_tags(retry: Retry) -> dict[str, str]:
    """Run-level retry tags for a scheduled run; empty when the report is not retried.

    Step failures are retried inside the run by the job's RetryPolicy (with the delay);
    run retries cover what a RetryPolicy cannot: a run worker that crashed or was killed.
    """
    if not retry.retries:
        return {}
    return {
        MAX_RETRIES_TAG: str(retry.max_retries),
        RETRY_STRATEGY_TAG: "FROM_FAILURE",
        RETRY_ON_FAILURE_TAG: "false",
    }


def retry_policy(retry: Retry) -> RetryPolicy | None:
    """Step retries of a scheduled job: the delay, doubled each time, with full jitter."""
    if not retry.retries:
        return None
    return RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay.total_seconds(),
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.FULL,
    )


def partition_run_request(
    keys: Sequence[str], tags: Mapping[str, str], **kwargs: object
) -> RunRequest:
    """One run for ``keys`` (consecutive, oldest first): a key, or a single-run range."""
    if not keys:
        raise ValueError("a run of partitioned assets needs at least one partition")
    if len(keys) == 1:
        return RunRequest(partition_key=keys[0], tags=dict(tags), **kwargs)  # type: ignore[arg-type]
    range_tags = {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}
    return RunRequest(tags={**tags, **range_tags}, **kwargs)  # type: ignore[arg-type]


def build_schedule_job(
    group: ScheduleGroup, asset_keys: Sequence[AssetKey], instance: Instance = DEFAULT_INSTANCE
) -> UnresolvedAssetJobDefinition:
    """The job a schedule runs: its reports (and salesexec/leads when they merge)."""
    return define_asset_job(
        instance.scoped(group.job_name),
        selection=AssetSelection.assets(*asset_keys),
        op_retry_policy=retry_policy(group.retry),
        description=group.description(),
    )


def build_report_schedule(
    group: ScheduleGroup,
    job: UnresolvedAssetJobDefinition,
    partitions_def: TimeWindowPartitionsDefinition,
    instance: Instance = DEFAULT_INSTANCE,
) -> ScheduleDefinition:
    """The schedule of one group; STOPPED unless its reports say ``default_status: running``."""
    tags = {
        REPORTS_TAG: ",".join(group.reports),
        TRIGGER_TAG: "schedule",
        **retry_run_tags(group.retry),
    }

    @schedule(
        name=instance.scoped(group.name),
        cron_schedule=group.cadence.cron,
        execution_timezone=group.timezone,
        job=job,
        default_status=DefaultScheduleStatus.RUNNING
        if group.running
        else DefaultScheduleStatus.STOPPED,
        description=group.description(),
        tags={"source": "salesexec"},
    )
    def _report_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        tick = context.scheduled_execution_time or datetime.now(timezone.utc)
        keys = target_partition_keys(group.target, partitions_def, tick)
        if not keys:
            return SkipReason(
                f"{group.target.describe()} at {tick.isoformat()} falls outside the existing "
                "partitions (before the start date?): nothing to pull"
            )
        return partition_run_request(keys, tags)

    return _report_schedule


def build_schedules(
    config: SchedulingConfig,
    report_keys: Mapping[str, AssetKey],
    partitions_def: TimeWindowPartitionsDefinition,
    leads_key: AssetKey | None,
    instance: Instance = DEFAULT_INSTANCE,
) -> tuple[list[UnresolvedAssetJobDefinition], list[ScheduleDefinition]]:
    """A job and a schedule per group of scheduled reports."""
    jobs, schedules = [], []
    for group in schedule_groups(config):
        keys = [report_keys[name] for name in group.reports]
        if leads_key is not None and any(
            config.for_report(name).update_method is UpdateMethod.MERGE for name in group.reports
        ):
            keys.append(leads_key)
        job = build_schedule_job(group, keys, instance)
        jobs.append(job)
        schedules.append(build_report_schedule(group, job, partitions_def, instance))
    return jobs, schedules
