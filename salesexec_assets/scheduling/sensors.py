"""Sensors: failure notifications, late changes, and staleness (freshness checks).

- ``salesexec_run_failure_notifications`` (a run-failure sensor): when a run fails for
  good (not while Dagster will still retry it), it logs what failed, always, and POSTs a
  JSON message to the webhook configured for the schedule that launched the run.
- ``salesexec_late_changes``: SalesExec leads change after the day they were pulled. The
  sensor polls Last Updated Leads since its cursor and asks for the partitions whose rows
  changed (the All Leads partition of the day an updated lead was added, the Closed Leads
  partition of the day it closed, ...). Run keys make each change request a run once; the
  cursor lives in Dagster's instance storage, so it survives restarts.
- ``salesexec_freshness_checks``: ``alert_if_stale_after`` becomes a last-update freshness
  check on the report's asset, evaluated by this sensor (the connector's "alert me if the
  data has not updated for X" of manually run reports).

No ``from __future__ import annotations`` here: Dagster reads the sensors' annotations
at definition time to find their resources.
"""

import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    SupersessionWarning,
    TimeWindowPartitionsDefinition,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    define_asset_job,
    run_failure_sensor,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from salesexec_assets.api.contract import REPORTS_BY_NAME, Report
from salesexec_assets.api.timestamps import TimestampError, parse_api_timestamp
from salesexec_assets.instance import DEFAULT_INSTANCE, Instance
from salesexec_assets.partitions import PARTITION_DATE_FORMAT, local_day, today_in
from salesexec_assets.resources import SalesExecResource
from salesexec_assets.scheduling.config import LateChanges, Notify, SchedulingConfig
from salesexec_assets.scheduling.notify import NotificationError, post_json
from salesexec_assets.scheduling.schedules import (
    MAX_RETRIES_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    REPORTS_TAG,
    SCHEDULE_NAME_TAG,
    TRIGGER_TAG,
    schedule_groups,
)

FAILURE_SENSOR_NAME = "salesexec_run_failure_notifications"
LATE_CHANGES_SENSOR_NAME = "salesexec_late_changes"
LATE_CHANGES_JOB_NAME = "salesexec_late_changes_job"
FRESHNESS_SENSOR_NAME = "salesexec_freshness_checks"

WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
PARTITION_TAG = "dagster/partition"
LAST_UPDATED_REPORT = REPORTS_BY_NAME["last_updated_leads"]
# Each poll re-reads this much before its cursor: a change stamped just before the last
# poll but served just after it is still seen. Run keys absorb the repeats.
POLL_OVERLAP = timedelta(minutes=10)
ERROR_TEXT_LIMIT = 1000


def sensor_status(running: bool) -> DefaultSensorStatus:
    """A sensor starts stopped unless the scheduling file says ``default_status: running``."""
    return DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- failures


def _run_partitions(run: DagsterRun) -> str | None:
    if PARTITION_TAG in run.tags:
        return run.tags[PARTITION_TAG]
    if PARTITION_RANGE_START_TAG in run.tags:
        return f"{run.tags[PARTITION_RANGE_START_TAG]}...{run.tags.get(PARTITION_RANGE_END_TAG)}"
    return None


def _run_reports(run: DagsterRun) -> list[str]:
    if run.tags.get(REPORTS_TAG):
        return run.tags[REPORTS_TAG].split(",")
    return sorted(key.path[-1] for key in run.asset_selection or ())


def failure_payload(
    run: DagsterRun, step_errors: Sequence[str], run_message: str
) -> dict[str, Any]:
    """The JSON message of a final failure: what failed, for which days, and why."""
    schedule = run.tags.get(SCHEDULE_NAME_TAG)
    trigger = run.tags.get(TRIGGER_TAG, "manual")
    reports = _run_reports(run)
    partitions = _run_partitions(run)
    max_retries = int(run.tags.get(MAX_RETRIES_TAG, 0))
    attempt = int(run.tags.get(RETRY_NUMBER_TAG, 0)) + 1
    error = "; ".join(step_errors) or run_message
    what = ", ".join(reports) or run.job_name
    how = f"scheduled run ({schedule})" if schedule else f"{trigger} run"
    retried = (
        f"after its retries (up to {max_retries} per step, run attempt {attempt})"
        if max_retries
        else "(not retried)"
    )
    text = (
        f"SalesExec: {how} of {what}"
        + (f" for {partitions}" if partitions else "")
        + f" failed {retried}: {error}"
    )
    return {
        "text": text[: ERROR_TEXT_LIMIT * 2],
        "status": "FAILURE",
        "run_id": run.run_id,
        "job": run.job_name,
        "schedule": schedule,
        "trigger": trigger,
        "reports": reports,
        "partitions": partitions,
        "max_retries": max_retries,
        "run_attempt": attempt,
        "error": error[:ERROR_TEXT_LIMIT],
    }


def _step_errors(context: RunFailureSensorContext) -> list[str]:
    """The failed steps' own error messages (the run failure only names the steps)."""
    errors = []
    records = context.instance.get_records_for_run(
        context.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = getattr(event, "step_failure_data", None) if event else None
        if data is not None and data.error is not None:
            error = data.error
            while error.cause is not None:  # "Exceeded max_retries" wraps the real cause
                error = error.cause
            errors.append(f"{event.step_key}: {error.message.strip()}")
    return errors


def build_failure_sensor(
    config: SchedulingConfig, instance: Instance = DEFAULT_INSTANCE
) -> SensorDefinition:
    """Notify when a run of this code location fails and no retry is left.

    Runs Dagster will still retry (``dagster/will_retry``) are only noted; the retry's
    own failure is reported when it comes. Scheduled runs go to their schedule's webhook.
    """
    webhooks: dict[str, Notify] = {
        instance.scoped(group.name): group.retry.notify
        for group in schedule_groups(config)
        if group.retry.notify is not None
    }

    @run_failure_sensor(
        name=instance.scoped(FAILURE_SENSOR_NAME),
        description="When a SalesExec run fails for good (retries exhausted, or a manual run, "
        "which is never retried), log it and POST a JSON message to the webhook configured "
        "under the schedule's retry.notify.",
        # running when the file says so, or when a running schedule has a webhook to notify
        default_status=sensor_status(
            config.running or any(g.running and g.retry.notify for g in schedule_groups(config))
        ),
    )
    def salesexec_run_failure_notifications(context: RunFailureSensorContext) -> None:
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            context.log.info("run %s failed and will be retried; no notification yet", run.run_id)
            return
        payload = failure_payload(run, _step_errors(context), context.failure_event.message or "")
        context.log.error(payload["text"])
        notify = webhooks.get(run.tags.get(SCHEDULE_NAME_TAG, ""))
        if notify is None:
            return
        url = notify.resolve_url()
        if url is None:
            context.log.warning(
                "the webhook variable %s is empty: notification not sent", notify.webhook_url_env
            )
            return
        try:
            post_json(url, payload, logger=context.log)
        except NotificationError as error:
            context.log.error("notification failed: %s", error)

    return salesexec_run_failure_notifications


# --------------------------------------------------------------------------- late changes


@dataclass
class PartitionChanges:
    """The reports of one partition whose rows changed, and the newest change seen."""

    reports: set[str] = field(default_factory=set)
    newest: datetime = datetime.min


def read_cursor(cursor: str | None) -> datetime | None:
    """The instant polled up to (aware UTC), or None for a first poll / unreadable cursor."""
    if not cursor:
        return None
    try:
        value = datetime.fromisoformat(json.loads(cursor)["polled_until"])
    except (ValueError, KeyError, TypeError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def write_cursor(polled_until: datetime) -> str:
    return json.dumps({"polled_until": polled_until.astimezone(timezone.utc).isoformat()})


def _instant(record: Mapping[str, Any], name: str | None) -> datetime | None:
    value = record.get(name) if name else None
    if value is None:
        return None
    try:
        return parse_api_timestamp(value)
    except (TimestampError, TypeError):
        return None


def changed_partitions(
    records: Iterable[Mapping[str, Any]],
    reports: Sequence[Report],
    zone: str,
    keep: Callable[[str, str], bool],
) -> dict[str, PartitionChanges]:
    """Partition key -> the reports whose rows in it changed, for changed lead records.

    A lead sits in one partition per report: the day of that report's window field
    (All Leads: DateAddedUtc; Closed Leads: ClosedUtc; Last Updated Leads:
    LastUpdatedUtc). ``keep(report, key)`` filters out partitions not worth a run.
    """
    changes: dict[str, PartitionChanges] = {}
    for record in records:
        updated = _instant(record, LAST_UPDATED_REPORT.window_field)
        if updated is None:
            continue
        for report in reports:
            instant = _instant(record, report.window_field)
            if instant is None:
                continue
            key = local_day(instant, zone).strftime(PARTITION_DATE_FORMAT)
            if not keep(report.name, key):
                continue
            entry = changes.setdefault(key, PartitionChanges())
            entry.reports.add(report.name)
            entry.newest = max(entry.newest, updated)
    return changes


def late_change_run_requests(
    changes: Mapping[str, PartitionChanges],
    report_keys: Mapping[str, AssetKey],
    merge_reports: Sequence[str],
    leads_key: AssetKey | None,
) -> list[RunRequest]:
    """One run per changed partition; its run key is the partition and its newest change.

    A later poll that sees the same newest change (the overlap) makes the same run key,
    which Dagster launches only once; a newer change makes a new key, hence a new run.
    """
    requests = []
    for key in sorted(changes):
        entry = changes[key]
        names = sorted(entry.reports)
        assets = [report_keys[name] for name in names]
        if leads_key is not None and any(name in merge_reports for name in names):
            assets.append(leads_key)
        requests.append(
            RunRequest(
                run_key=f"late_changes:{key}:{entry.newest.isoformat()}",
                partition_key=key,
                asset_selection=assets,
                tags={TRIGGER_TAG: "late_changes", REPORTS_TAG: ",".join(names)},
            )
        )
    return requests


@dataclass(frozen=True)
class LateChangePlan:
    """What the late-change sensor needs to know about the deployment."""

    settings: LateChanges
    report_keys: Mapping[str, AssetKey]
    partitions_def: TimeWindowPartitionsDefinition
    merge_reports: tuple[str, ...] = ()
    leads_key: AssetKey | None = None
    retention_days: Mapping[str, int] = field(default_factory=dict)

    @property
    def reports(self) -> list[Report]:
        return [REPORTS_BY_NAME[name] for name in self.settings.reports]

    def keeper(self, loaded: Mapping[str, set[str]], now: datetime) -> Callable[[str, str], bool]:
        """Keep a partition that exists, was loaded before, and is inside retention."""
        zone = self.partitions_def.timezone
        existing = self.partitions_def.get_partition_keys(current_time=now)
        first, last = (existing[0], existing[-1]) if existing else ("9999", "")
        today = today_in(zone, now)

        def keep(report: str, key: str) -> bool:
            if not first <= key <= last or key not in loaded.get(report, set()):
                return False
            retention = self.retention_days.get(report)
            cutoff: date | None = today - timedelta(days=retention - 1) if retention else None
            return cutoff is None or key >= cutoff.strftime(PARTITION_DATE_FORMAT)

        return keep


def build_late_change_job(
    plan: LateChangePlan, instance: Instance = DEFAULT_INSTANCE
) -> UnresolvedAssetJobDefinition:
    """The job late-change runs go to: the configured lead reports (and the merge asset)."""
    keys = [plan.report_keys[name] for name in plan.settings.reports]
    if plan.leads_key is not None and any(n in plan.merge_reports for n in plan.settings.reports):
        keys.append(plan.leads_key)
    return define_asset_job(
        instance.scoped(LATE_CHANGES_JOB_NAME),
        selection=AssetSelection.assets(*keys),
        description="Re-pulls the partitions of lead reports whose rows changed after they "
        "were loaded (launched by the salesexec_late_changes sensor).",
    )


def build_late_change_sensor(
    plan: LateChangePlan,
    job: UnresolvedAssetJobDefinition,
    instance: Instance = DEFAULT_INSTANCE,
) -> SensorDefinition:
    """The late-change sensor; RUNNING when ``late_changes`` is enabled and says (or the
    file says) ``default_status: running``."""
    settings = plan.settings
    salesexec_key = instance.salesexec_resource_key

    @sensor(
        name=instance.scoped(LATE_CHANGES_SENSOR_NAME),
        required_resource_keys={salesexec_key},
        job=job,
        minimum_interval_seconds=int(settings.poll_every.total_seconds()),
        default_status=sensor_status(settings.starts_running),
        description=(
            "Polls Last Updated Leads since its cursor and re-pulls the already loaded "
            f"partitions of {', '.join(settings.reports)} whose leads changed. Cursor: the "
            "instant polled up to."
        ),
    )
    def salesexec_late_changes(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        salesexec: SalesExecResource = getattr(context.resources, salesexec_key)
        now = utc_now()
        since = read_cursor(context.cursor) or now - settings.lookback
        start = since - POLL_OVERLAP
        records: list[Mapping[str, Any]] = []
        with salesexec.get_client(context.log) as client:
            for uid, _name in salesexec.resolve_lead_types(client):
                for page in client.iter_report_pages(LAST_UPDATED_REPORT, uid, start, now):
                    records.extend(page)
        loaded = {
            name: context.instance.get_materialized_partitions(plan.report_keys[name])
            for name in settings.reports
        }
        changes = changed_partitions(
            records, plan.reports, plan.partitions_def.timezone, plan.keeper(loaded, now)
        )
        requests = late_change_run_requests(
            changes, plan.report_keys, plan.merge_reports, plan.leads_key
        )
        context.log.info(
            "%d lead change(s) in [%s, %s): %d partition(s) to re-pull",
            len(records),
            start.isoformat(),
            now.isoformat(),
            len(requests),
        )
        return SensorResult(run_requests=requests, cursor=write_cursor(now))

    return salesexec_late_changes


# --------------------------------------------------------------------------- staleness


def build_freshness(
    config: SchedulingConfig,
    report_keys: Mapping[str, AssetKey],
    instance: Instance = DEFAULT_INSTANCE,
) -> tuple[list[AssetChecksDefinition], list[SensorDefinition]]:
    """A last-update freshness check per report with ``alert_if_stale_after``, and the
    sensor that evaluates them (none when no report asks for one)."""
    by_age: dict[timedelta, list[AssetKey]] = {}
    running = False
    for name, settings in config.reports.items():
        if settings.alert_if_stale_after is not None:
            by_age.setdefault(settings.alert_if_stale_after, []).append(report_keys[name])
            running = running or settings.running
    if not by_age:
        return [], []
    # Dagster 1.13 marks these factories "superseded" by FreshnessPolicy on the asset
    # (evaluated by the instance's freshness daemon). A check plus a sensor is what the
    # connector's alert maps to, and it shows pass/fail history in the UI; keep it quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        checks = [
            check
            for age, keys in sorted(by_age.items())
            for check in build_last_update_freshness_checks(assets=keys, lower_bound_delta=age)
        ]
        sensor_def = build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=instance.scoped(FRESHNESS_SENSOR_NAME),
            default_status=sensor_status(running),
        )
    return checks, [sensor_def]
