"""The instant a run was launched, read from a real Dagster instance's records: the
run's own creation (a run that waited in the queue), its root run's (a retry) and its
backfill's, whichever is earliest. It decides "today" for the now-only report."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from dagster import DagsterRun, instance_for_test
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from salesexec_assets.launch import BACKFILL_ID_TAG, ROOT_RUN_ID_TAG, launched_at

YESTERDAY_EVENING = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=20)


def run(**tags: str) -> DagsterRun:
    return DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), tags=tags)


def test_a_run_that_waited_in_the_queue_was_launched_when_it_was_created() -> None:
    with instance_for_test() as instance:
        queued = instance.run_storage.add_historical_run(run(), YESTERDAY_EVENING)
        assert launched_at(instance, queued) == YESTERDAY_EVENING


def test_a_retry_was_launched_when_its_root_run_was() -> None:
    with instance_for_test() as instance:
        root = instance.run_storage.add_historical_run(run(), YESTERDAY_EVENING)
        retry = instance.add_run(run(**{ROOT_RUN_ID_TAG: root.run_id}))
        assert launched_at(instance, retry) == YESTERDAY_EVENING


def test_a_backfill_run_was_launched_when_its_backfill_was() -> None:
    with instance_for_test() as instance:
        backfill_id = "bkfl"
        instance.add_backfill(
            PartitionBackfill(
                backfill_id=backfill_id,
                status=BulkActionStatus.REQUESTED,
                from_failure=False,
                tags={},
                backfill_timestamp=YESTERDAY_EVENING.timestamp(),
            )
        )
        created = instance.add_run(run(**{BACKFILL_ID_TAG: backfill_id}))
        assert launched_at(instance, created) == YESTERDAY_EVENING


def test_a_run_launched_now_was_launched_now() -> None:
    with instance_for_test() as instance:
        before = datetime.now(timezone.utc) - timedelta(seconds=1)
        fresh = instance.add_run(run())
        assert before <= launched_at(instance, fresh) <= datetime.now(timezone.utc)
