"""The sensor ``salesexec_webhook_events`` against a real Dagster instance, a real inbox
and a real warehouse: quiet period, exactly the touched partitions, run keys, cursor. The
stored-day lookup reads a DuckDB file and a Postgres database (``destination``)."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DefaultSensorStatus, instance_for_test

from salesexec_assets.api import contract
from salesexec_assets.partitions import build_daily_partitions
from salesexec_assets.sandbox.webhooks import webhook_payload
from salesexec_assets.scheduling import ConfigError, parse_scheduling_config
from salesexec_assets.scheduling.config import Webhooks
from salesexec_assets.scheduling.schedules import (
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    REPORTS_TAG,
)
from salesexec_assets.webhooks.inbox import InboxReader, InboxWriter
from salesexec_assets.webhooks.mapping import TOUCHED_REPORTS
from salesexec_assets.webhooks.payloads import classify
from salesexec_assets.webhooks.sensor import (
    EVENTS_TAG,
    WEBHOOK_SENSOR_NAME,
    WebhookPlan,
    evaluate,
    read_cursor,
)
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.scheduling_support import (
    build_test_definitions,
    make_settings,
    partition_keys_at,
    run_assets,
    sandbox_account,
)
from salesexec_assets_tests.truth import stored_rows
from salesexec_assets_tests.webhook_support import requested_partitions, tick, webhook_defs

TODAY = datetime.now(UTC).date()


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12)


def event(number: int, day: date, guid: str | None = None, **values: object) -> dict:
    return webhook_payload(
        number,
        {
            contract.WEBHOOK_ACCOUNT_GUID: str(uuid.UUID(int=1)),
            contract.WEBHOOK_LEAD_GUID: guid or str(uuid.uuid4()),
            contract.WEBHOOK_LEAD_TYPE_GUID: str(uuid.UUID(int=2)),
            contract.WEBHOOK_TYPES_BY_NUMBER[number].instant_field: noon(day),
            **values,
        },
    )


def store(inbox: Path, *payloads: dict) -> None:
    writer = InboxWriter(inbox)
    try:
        writer.store([classify(p) for p in payloads])
    finally:
        writer.close()


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as test_instance:
        yield test_instance


def test_the_sensor_exists_only_when_enabled_and_runs_only_when_the_file_says_so(
    tmp_path: Path,
) -> None:
    off = build_test_definitions(make_settings(tmp_path), {})
    assert WEBHOOK_SENSOR_NAME not in {s.name for s in off.sensors}
    on = build_test_definitions(make_settings(tmp_path), {"webhooks": {"enabled": True}})
    assert on.resolve_sensor_def(WEBHOOK_SENSOR_NAME).default_status is DefaultSensorStatus.STOPPED
    for running in (
        {"webhooks": {"enabled": True, "default_status": "running"}},
        {"webhooks": {"enabled": True}, "default_status": "running"},
    ):
        defs = build_test_definitions(make_settings(tmp_path), running)
        sensor = defs.resolve_sensor_def(WEBHOOK_SENSOR_NAME)
        assert sensor.default_status is DefaultSensorStatus.RUNNING, running


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"quiet_period": "soon"}, "webhooks.quiet_period"),
        ({"quiet_period": "2h"}, "webhooks.quiet_period"),
        ({"enabled": "yes"}, "webhooks.enabled"),
        ({"quiet": "60s"}, "webhooks.quiet"),
    ],
)
def test_a_bad_webhooks_section_names_the_key(section: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_scheduling_config({"webhooks": section})
    assert raised.value.key == problem


def test_a_burst_waits_for_the_quiet_period_then_asks_once_per_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: DagsterInstance
) -> None:
    settings, waiting, inbox = webhook_defs(
        tmp_path, monkeypatch, quiet="1h", start_date=TODAY - timedelta(days=30)
    )
    days = [TODAY - timedelta(days=n) for n in (1, 2, 3, 6)]
    store(inbox, *[event(100, day) for day in days for _ in range(3)])
    requests, cursor, skipped = tick(waiting, instance, None)
    assert requests == [] and cursor is None and skipped and "waiting" in skipped
    # the same inbox once the burst has settled (a deployment with no quiet period)
    defs = build_test_definitions(settings, {"webhooks": {"quiet_period": "0s"}})
    requests, cursor, _ = tick(defs, instance, None)
    assert read_cursor(cursor) == 12
    keys = partition_keys_at(defs, datetime.now(UTC))
    assert requested_partitions(requests, keys) == {
        (report, str(day)) for report in ("all_leads", "branch_lead_count") for day in days
    }
    assert len(requests) == 2  # days 3..1 as one range run, day 6 alone; both reports each
    ranged = next(r for r in requests if r.partition_key is None)
    assert ranged.tags[PARTITION_RANGE_START_TAG] == str(days[2])
    assert ranged.tags[PARTITION_RANGE_END_TAG] == str(days[0])
    assert ranged.tags[EVENTS_TAG] == "9"
    assert set(ranged.asset_selection or []) == {
        AssetKey(["salesexec", "all_leads"]),
        AssetKey(["salesexec", "branch_lead_count"]),
    }
    # nothing new: the next tick asks for nothing
    again, _, skipped = tick(defs, instance, cursor)
    assert again == [] and skipped == "no new webhook events"


def test_waiting_ends_after_the_quiet_period_or_five_of_them_during_a_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, inbox = webhook_defs(tmp_path, monkeypatch, quiet="60s")
    store(inbox, event(100, TODAY), event(100, TODAY - timedelta(days=1)))
    received = InboxReader(inbox).events_after(0)[-1].received_at.timestamp()
    plan = WebhookPlan(
        Webhooks(enabled=True, quiet_period=timedelta(seconds=60)),
        {name: AssetKey(["salesexec", name]) for name in TOUCHED_REPORTS},
        build_daily_partitions(make_settings(tmp_path)),
        inbox,
    )

    def runs_at(now: float) -> bool:
        result, _, _, _ = evaluate(plan, None, lambda *_: None, now)
        return result is not None

    assert not runs_at(received + 59) and runs_at(received + 61)
    # a stream: the newest event is 30 s old, the oldest waits since 200 s, then 320 s
    with closing(sqlite3.connect(inbox)) as con, con:
        con.execute("UPDATE events SET received_at = ? WHERE id = 1", (received - 170,))
    assert not runs_at(received + 30)
    with closing(sqlite3.connect(inbox)) as con, con:
        con.execute("UPDATE events SET received_at = ? WHERE id = 1", (received - 290,))
    assert runs_at(received + 30)  # five quiet periods after the oldest: no more waiting


def test_a_change_to_a_stored_lead_asks_for_the_days_its_rows_sit_in(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: DagsterInstance,
    destination: Destination,
) -> None:
    with sandbox_account(monkeypatch) as server:
        _, defs, inbox = webhook_defs(
            tmp_path,
            monkeypatch,
            base_url=server.base_url,
            start_date=TODAY - timedelta(days=30),
            destination=destination,
        )
        stored_day = TODAY - timedelta(days=4)
        run_assets(
            defs, [AssetKey(["salesexec", "all_leads"])], instance, partition_key=str(stored_day)
        )
    guid = stored_rows(destination, "all_leads")[0]["lead_guid"]
    store(
        inbox,
        event(102, TODAY, guid.upper()),  # GUIDs compare case-insensitively
        event(103, TODAY - timedelta(days=1), guid, NewLifeCycleStageName="Closed Won"),
        event(101, TODAY, str(uuid.uuid4())),  # a lead that is not stored
        {"WebHookType": 555, "Something": "new"},  # unknown: stored, counted, no run
    )
    requests, _, _ = tick(defs, instance, None)
    keys = partition_keys_at(defs, datetime.now(UTC))
    assert requested_partitions(requests, keys) == {
        ("last_updated_leads", str(TODAY)),
        ("last_updated_leads", str(TODAY - timedelta(days=1))),
        ("closed_leads", str(TODAY - timedelta(days=1))),
        ("all_leads", str(stored_day)),
    }
    assert sum(int(r.tags[EVENTS_TAG]) for r in requests if "all_leads" in r.tags[REPORTS_TAG]) == 2


def test_a_retried_tick_asks_for_the_same_runs_and_a_restart_goes_on_from_the_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: DagsterInstance
) -> None:
    settings, defs, inbox = webhook_defs(
        tmp_path, monkeypatch, start_date=TODAY - timedelta(days=30)
    )
    store(inbox, event(100, TODAY), event(100, TODAY - timedelta(days=2)))
    first, cursor, _ = tick(defs, instance, None)
    retried, retried_cursor, _ = tick(defs, instance, None)  # the tick's commit was lost
    assert [r.run_key for r in retried] == [r.run_key for r in first]
    assert retried_cursor == cursor
    store(inbox, event(100, TODAY - timedelta(days=9)))
    # a restart: new definitions (a new process) and the cursor the instance kept
    restarted = build_test_definitions(settings, {"webhooks": {"quiet_period": "0s"}})
    later, later_cursor, _ = tick(restarted, instance, cursor)
    keys = partition_keys_at(defs, datetime.now(UTC))
    assert requested_partitions(later, keys) == {
        ("all_leads", str(TODAY - timedelta(days=9))),
        ("branch_lead_count", str(TODAY - timedelta(days=9))),
    }
    assert read_cursor(later_cursor) == 3
    assert not {r.run_key for r in later} & {r.run_key for r in first}


def test_events_for_days_that_are_not_partitions_ask_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: DagsterInstance
) -> None:
    _, defs, inbox = webhook_defs(tmp_path, monkeypatch, start_date=TODAY - timedelta(days=5))
    store(inbox, event(100, TODAY - timedelta(days=40)), event(100, TODAY + timedelta(days=3)))
    requests, cursor, _ = tick(defs, instance, None)
    assert requests == [] and read_cursor(cursor) == 2
