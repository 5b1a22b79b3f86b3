"""The sensor ``salesexec_webhook_events``: inbox events in, runs of exactly the touched
partitions out.

Each tick reads the events after its cursor (the last inbox id it handled; the cursor
lives in Dagster's instance storage, so it survives daemon restarts). While deliveries
keep coming it waits until none arrived for ``quiet_period`` (a burst settles into one
run), but never longer than five quiet periods after the oldest waiting event. Then it
maps the events to partitions (:mod:`salesexec_assets.webhooks.mapping`), looking up the
days of already stored leads read-only through the warehouse's ``query``, and asks for
one run per contiguous block of days and the reports touched on them. A run's key is the
inbox slice and the block, so a retried tick asks for nothing twice; its tags say how
many events asked for it.

No ``from __future__ import annotations`` here: Dagster reads the sensor's annotations
at definition time to find its resources.
"""

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TimeWindowPartitionsDefinition,
    define_asset_job,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from salesexec_assets.api.contract import REPORTS_BY_NAME
from salesexec_assets.assets import report_asset_key
from salesexec_assets.partitions import PARTITION_DATE_FORMAT, partition_date
from salesexec_assets.records import table_spec
from salesexec_assets.resources import WarehouseResource
from salesexec_assets.scheduling.config import SchedulingConfig, Webhooks, format_duration
from salesexec_assets.scheduling.schedules import (
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    REPORTS_TAG,
    TRIGGER_TAG,
)
from salesexec_assets.webhooks.inbox import InboxReader, StoredEvent, inbox_path
from salesexec_assets.webhooks.mapping import (
    STORED_DAY_REPORTS,
    TOUCHED_REPORTS,
    Event,
    Plan,
    PlannedRun,
    needs_stored_days,
    plan_runs,
)

WEBHOOK_SENSOR_NAME = "salesexec_webhook_events"
WEBHOOK_JOB_NAME = "salesexec_webhook_events_job"
EVENTS_TAG = "salesexec/webhook_events"  # how many events asked for the run
TRIGGER = "webhooks"
SETTLE_LIMIT = 5  # quiet periods after which waiting events are handled even mid-burst
MAX_EVENTS_PER_TICK = 20_000
SENSOR_INTERVAL_SECONDS = 15
GUIDS_PER_QUERY = 500

Query = Callable[[str, Sequence[Any]], Any]  # the warehouse's query(sql, params) -> DataFrame


def read_cursor(cursor: str | None) -> int:
    """The last inbox id handled (0 before the first tick or for an unreadable cursor)."""
    if not cursor:
        return 0
    try:
        return int(json.loads(cursor)["last_event_id"])
    except (ValueError, KeyError, TypeError):
        return 0


def write_cursor(last_event_id: int) -> str:
    return json.dumps({"last_event_id": last_event_id})


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if hasattr(value, "date"):  # pandas Timestamp
        return value.date()
    return partition_date(str(value)[:10])


def stored_days(query: Query, guids: Collection[str]) -> dict[tuple[str, str], set[date]]:
    """(report, lead GUID) -> the partition days its rows sit in, read-only.

    Tables not written yet have no rows. A warehouse that cannot be read at all (no file
    yet) holds no lead; any other failure raises, so the tick fails and is retried with
    its cursor unchanged.
    """
    specs = [table_spec(REPORTS_BY_NAME[name]) for name in STORED_DAY_REPORTS]
    try:
        tables = query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [specs[0].schema],
        )
        existing = set(tables["table_name"])
    except Exception as error:
        if "does not exist" in str(error):  # no warehouse file yet: nothing is stored
            return {}
        raise
    found: dict[tuple[str, str], set[date]] = {}
    ordered = sorted({guid.lower() for guid in guids})
    for spec in specs:
        if spec.name not in existing:
            continue
        for start in range(0, len(ordered), GUIDS_PER_QUERY):
            chunk = ordered[start : start + GUIDS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            frame = query(
                f"SELECT DISTINCT lower(lead_guid) AS guid, partition_date "
                f"FROM {spec.qualified_name} WHERE lower(lead_guid) IN ({marks})",
                chunk,
            )
            for guid, day in zip(frame["guid"], frame["partition_date"], strict=True):
                found.setdefault((spec.name, guid), set()).add(_as_date(day))
    return found


@dataclass(frozen=True)
class WebhookPlan:
    """What the webhook sensor needs to know about the deployment."""

    settings: Webhooks
    report_keys: Mapping[str, AssetKey]
    partitions_def: TimeWindowPartitionsDefinition
    inbox: Path
    merge_reports: tuple[str, ...] = ()
    leads_key: AssetKey | None = None

    def asset_keys(self, reports: Sequence[str]) -> list[AssetKey]:
        keys = [self.report_keys[name] for name in reports]
        if self.leads_key is not None and any(name in self.merge_reports for name in reports):
            keys.append(self.leads_key)
        return keys


def run_request(plan: WebhookPlan, run: PlannedRun, first_id: int, last_id: int) -> RunRequest:
    """One run over ``run``'s reports and days; its key names the inbox slice and days."""
    first = run.first.strftime(PARTITION_DATE_FORMAT)
    last = run.last.strftime(PARTITION_DATE_FORMAT)
    tags = {
        TRIGGER_TAG: TRIGGER,
        REPORTS_TAG: ",".join(run.reports),
        EVENTS_TAG: str(len(run.event_ids)),
    }
    if first != last:
        tags.update({PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last})
    return RunRequest(
        run_key=f"webhooks:{first_id}-{last_id}:{','.join(run.reports)}:{first}...{last}",
        partition_key=first if first == last else None,
        asset_selection=plan.asset_keys(run.reports),
        tags=tags,
    )


class PlanMemory:
    """The runs planned for each inbox slice, kept in the Dagster instance's key-value
    store. A tick that is retried (its cursor was not saved) replays the plan it made the
    first time instead of planning again: the runs that plan launched may have changed the
    stored days it looks up, and a new plan would ask for partitions twice."""

    PREFIX = "salesexec/webhook_plan/"

    def __init__(self, instance: DagsterInstance) -> None:
        self._storage = instance.run_storage

    def _key(self, first_id: int, last_id: int) -> str:
        return f"{self.PREFIX}{first_id}-{last_id}"

    def recall(self, first_id: int, last_id: int) -> list[PlannedRun] | None:
        key = self._key(first_id, last_id)
        text = self._storage.get_cursor_values({key}).get(key)
        if not text:
            return None
        return [
            PlannedRun(
                tuple(run["reports"]),
                date.fromisoformat(run["first"]),
                date.fromisoformat(run["last"]),
                frozenset(run["event_ids"]),
            )
            for run in json.loads(text)
        ]

    def remember(self, first_id: int, last_id: int, runs: Sequence[PlannedRun]) -> None:
        text = json.dumps(
            [
                {
                    "reports": list(run.reports),
                    "first": run.first.isoformat(),
                    "last": run.last.isoformat(),
                    "event_ids": sorted(run.event_ids),
                }
                for run in runs
            ]
        )
        self._storage.set_cursor_values({self._key(first_id, last_id): text})


def _event(stored: StoredEvent) -> Event:
    return Event(stored.id, stored.kind, stored.lead_guid, stored.instant, stored.stage)


def evaluate(
    plan: WebhookPlan,
    cursor: str | None,
    query: Query,
    now: float | None = None,
    memory: PlanMemory | None = None,
) -> tuple[Plan | None, list[RunRequest], str | None, str]:
    """One tick: (the plan, its run requests, the new cursor, a summary), or no plan and
    the reason to skip. Separate from the sensor so the daemon-free path is the same.
    ``memory``: where the plan of each inbox slice is kept, so a retried tick replays it."""
    now = time.time() if now is None else now
    last_id = read_cursor(cursor)
    reader = InboxReader(plan.inbox)
    count, oldest, newest = reader.pending(last_id)
    if count == 0 or oldest is None or newest is None:
        return None, [], None, "no new webhook events"
    quiet = plan.settings.quiet_period.total_seconds()
    if now - newest < quiet and now - oldest < quiet * SETTLE_LIMIT:
        return (
            None,
            [],
            None,
            (
                f"{count} new webhook event(s); waiting until none arrived for "
                f"{format_duration(plan.settings.quiet_period)}"
            ),
        )
    stored_events = reader.events_after(last_id, limit=MAX_EVENTS_PER_TICK)
    events = [_event(e) for e in stored_events]
    guids = {e.lead_guid for e in events if e.lead_guid and needs_stored_days(e)}
    known = stored_days(query, guids) if guids else {}
    moment = datetime.fromtimestamp(now, timezone.utc)
    keys = plan.partitions_def.get_partition_keys(current_time=moment)
    if not keys:
        return None, [], None, "no partition exists yet"
    result = plan_runs(
        events,
        plan.partitions_def.timezone,
        known,
        partition_date(keys[0]),
        partition_date(keys[-1]),
    )
    first_id, last_event_id = stored_events[0].id, stored_events[-1].id
    if memory is not None:
        recalled = memory.recall(first_id, last_event_id)
        if recalled is None:
            memory.remember(first_id, last_event_id, result.runs)
        else:
            result.runs[:] = recalled
    requests = [run_request(plan, run, first_id, last_event_id) for run in result.runs]
    summary = (
        f"{result.events} webhook event(s) (ids {first_id}..{last_event_id}, "
        f"{result.unknown_events} unknown): {len(requests)} run(s)"
        + (
            f"; {len(result.days_out_of_range)} touched day(s) are not partitions and were left out"
            if result.days_out_of_range
            else ""
        )
    )
    return result, requests, write_cursor(last_event_id), summary


def build_webhook_job(plan: WebhookPlan) -> UnresolvedAssetJobDefinition:
    """The job webhook runs go to: every report an event can touch (and the merge asset)."""
    return define_asset_job(
        WEBHOOK_JOB_NAME,
        selection=AssetSelection.assets(*plan.asset_keys(TOUCHED_REPORTS)),
        description="Re-pulls the partitions that SalesExec webhook events touched "
        "(launched by the salesexec_webhook_events sensor).",
    )


def build_webhook_sensor(plan: WebhookPlan, job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    """The webhook sensor; RUNNING when the file says ``default_status: running`` (for
    ``webhooks:`` or the whole file), stopped otherwise, like every schedule and sensor."""

    @sensor(
        name=WEBHOOK_SENSOR_NAME,
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING
        if plan.settings.starts_running
        else DefaultSensorStatus.STOPPED,
        description=(
            f"Reads the webhook inbox ({plan.inbox}) from its cursor and re-pulls exactly "
            f"the partitions of {', '.join(TOUCHED_REPORTS)} that the events touch, once no "
            f"event arrived for {format_duration(plan.settings.quiet_period)}. Cursor: the "
            "last inbox id handled."
        ),
    )
    def salesexec_webhook_events(
        context: SensorEvaluationContext, warehouse: WarehouseResource
    ) -> SensorResult | SkipReason:
        store = warehouse.get_warehouse(context.log)
        result, requests, cursor, summary = evaluate(
            plan, context.cursor, store.query, memory=PlanMemory(context.instance)
        )
        context.log.info(summary)
        if result is None:
            return SkipReason(summary)
        return SensorResult(run_requests=requests, cursor=cursor)

    return salesexec_webhook_events


def webhook_definitions(
    scheduling: SchedulingConfig,
    partitions_def: TimeWindowPartitionsDefinition,
    leads_key: AssetKey | None = None,
) -> list[Definitions]:
    """The webhook job and sensor when ``webhooks.enabled`` (else none); the inbox is
    ``SALESEXEC_WEBHOOK_INBOX``."""
    if not scheduling.webhooks.enabled:
        return []
    plan = WebhookPlan(
        settings=scheduling.webhooks,
        report_keys={name: report_asset_key(REPORTS_BY_NAME[name]) for name in TOUCHED_REPORTS},
        partitions_def=partitions_def,
        inbox=inbox_path().resolve(),
        merge_reports=scheduling.merge_reports,
        leads_key=leads_key,
    )
    job = build_webhook_job(plan)
    return [Definitions(jobs=[job], sensors=[build_webhook_sensor(plan, job)])]
