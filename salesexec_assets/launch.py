"""When a run was launched: the instant that decides which day is "today" for the report
that only knows "now" (Count for Leads Awaiting Import).

A run can wait in the queue past midnight, or be retried (as a new run) the next day.
Its partition was chosen when it was launched, so "today" is the day of that instant,
not of the moment its step starts: the earliest of the run's creation, its root run's
creation (a retry or re-execution) and its backfill's creation, all read from the
Dagster instance's records.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from dagster import AssetExecutionContext, DagsterInstance, DagsterRun

from salesexec_assets.partitions import today_in

ROOT_RUN_ID_TAG = "dagster/root_run_id"
BACKFILL_ID_TAG = "dagster/backfill"


def run_created_at(instance: DagsterInstance, run_id: str) -> datetime | None:
    record = instance.get_run_record_by_id(run_id)
    return record.create_timestamp if record else None


def launched_at(instance: DagsterInstance, run: DagsterRun) -> datetime:
    """The earliest creation instant of the run, its root run and its backfill (UTC)."""
    instants = [datetime.now(timezone.utc)]
    for run_id in {run.run_id, run.root_run_id or run.tags.get(ROOT_RUN_ID_TAG)} - {None}:
        created = run_created_at(instance, run_id)  # type: ignore[arg-type]
        if created is not None:
            instants.append(created)
    backfill_id = run.tags.get(BACKFILL_ID_TAG)
    backfill = instance.get_backfill(backfill_id) if backfill_id else None
    if backfill is not None:
        instants.append(datetime.fromtimestamp(backfill.backfill_timestamp, timezone.utc))
    return min(
        instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc) for instant in instants
    )


def launch_day(context: AssetExecutionContext, zone: str) -> date:
    """The calendar day in ``zone`` on which the run was launched."""
    return today_in(zone, launched_at(context.instance, context.run))
