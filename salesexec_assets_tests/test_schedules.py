"""Schedules evaluated at fixed instants with a real instance and repository.

Ticks come from Dagster's own cron iteration (what the daemon uses), so daylight-saving
days are ticked exactly as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    RunRequest,
    SkipReason,
    instance_for_test,
)
from dagster._utils.schedules import cron_string_iterator

from salesexec_assets.resources import SalesExecResource
from salesexec_assets.scheduling import ConfigError, parse_scheduling_config
from salesexec_assets.scheduling.schedules import (
    MAX_RETRIES_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    RETRY_TAGS,
)
from salesexec_assets_tests.scheduling_support import (
    DAGSTER_YAML,
    EXAMPLE_FILE,
    build_test_definitions,
    evaluate_schedule,
    make_settings,
    partition_keys_at,
    requested_keys,
    run_assets,
    sandbox_account,
    with_resource,
)

EXAMPLE = yaml.safe_load(EXAMPLE_FILE.read_text())
ALL_LEADS = "all_leads_daily_0600_america_chicago_days_back_1"
CLOSED_LEADS = "closed_leads_cron_0_6_x_x_0nth2_0nth4_utc_days_back_10_to_5"
LAST_UPDATED = "last_updated_leads_every_4h_from_0030_utc_latest"
ALL_ACTIONS = "all_actions_weekly_mon_thu_0715_europe_paris_days_back_1"
AWAITING = "leads_awaiting_import_count_weekdays_0900_utc_latest"
UTC = timezone.utc


@pytest.fixture(scope="module")
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def ticks(defs, name: str, start: datetime, count: int) -> list[datetime]:
    """The schedule's next ``count`` ticks from ``start``, as the daemon computes them."""
    schedule = defs.resolve_schedule_def(name)
    iterator = cron_string_iterator(
        start.timestamp(), schedule.cron_schedule, schedule.execution_timezone
    )
    return [next(iterator) for _ in range(count)]


def only_keys(defs, name: str, tick: datetime, instance: DagsterInstance) -> list[str]:
    """The partitions one tick requests, asserting it is exactly one run."""
    results = evaluate_schedule(defs, name, tick, instance)
    assert len(results) == 1 and isinstance(results[0], RunRequest), results
    return requested_keys(results[0], partition_keys_at(defs, tick))


def test_the_example_file_makes_one_named_schedule_per_scheduled_report(
    tmp_path: Path,
) -> None:
    defs = build_test_definitions(make_settings(tmp_path), EXAMPLE)
    schedules = {s.name: s for s in defs.get_repository_def().schedule_defs}
    assert set(schedules) == {ALL_LEADS, CLOSED_LEADS, LAST_UPDATED, ALL_ACTIONS, AWAITING}
    assert schedules[ALL_LEADS].execution_timezone == "America/Chicago"
    assert schedules[ALL_ACTIONS].cron_schedule == "15 7 * * 1,4"
    for schedule in schedules.values():
        assert schedule.description and "Pulls" in schedule.description
        assert schedule.job_name == f"{schedule.name}_job"


def test_reports_with_the_same_settings_share_one_schedule(tmp_path: Path) -> None:
    same = {"schedule": "daily at 06:00", "target": {"days_back": 2}}
    config = {
        "reports": {
            "closed_leads": same,
            "all_leads": same,
            "all_actions": {**same, "timezone": "Europe/Paris"},
        }
    }
    defs = build_test_definitions(make_settings(tmp_path), config)
    names = sorted(s.name for s in defs.get_repository_def().schedule_defs)
    assert names == [
        "all_actions_daily_0600_europe_paris_days_back_2",
        "all_leads_and_closed_leads_daily_0600_utc_days_back_2",
    ]
    job = defs.resolve_job_def("all_leads_and_closed_leads_daily_0600_utc_days_back_2_job")
    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == {
        "salesexec/all_leads",
        "salesexec/closed_leads",
    }


@pytest.mark.parametrize(
    ("schedule", "tick", "expected"),
    [
        # 06:00 in Chicago is 12:00 UTC: the tick's date is the 10th, one day back the 9th
        (
            ALL_LEADS,
            datetime(2026, 3, 10, 6, 0, tzinfo=ZoneInfo("America/Chicago")),
            ["2026-03-09"],
        ),
        # 2nd Sunday of March 2026 is the 8th: from 10 days back (Feb 26) to 5 (Mar 3)
        (
            CLOSED_LEADS,
            datetime(2026, 3, 8, 6, 0, tzinfo=UTC),
            ["2026-02-26", "2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03"],
        ),
        (LAST_UPDATED, datetime(2026, 3, 8, 20, 30, tzinfo=UTC), ["2026-03-08"]),
        (LAST_UPDATED, datetime(2026, 3, 8, 0, 30, tzinfo=UTC), ["2026-03-08"]),
        # 07:15 in Paris is 06:15 UTC: still the 9th in the (UTC) partitions' calendar
        (ALL_ACTIONS, datetime(2026, 3, 9, 7, 15, tzinfo=ZoneInfo("Europe/Paris")), ["2026-03-08"]),
        (AWAITING, datetime(2026, 3, 9, 9, 0, tzinfo=UTC), ["2026-03-09"]),
    ],
)
def test_each_schedule_requests_exactly_the_configured_partitions(
    tmp_path: Path,
    instance: DagsterInstance,
    schedule: str,
    tick: datetime,
    expected: list[str],
) -> None:
    defs = build_test_definitions(make_settings(tmp_path), EXAMPLE)
    assert only_keys(defs, schedule, tick, instance) == expected


def test_a_relative_range_is_one_run_with_a_partition_range(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    defs = build_test_definitions(make_settings(tmp_path), EXAMPLE)
    [request] = evaluate_schedule(
        defs, CLOSED_LEADS, datetime(2026, 3, 22, 6, tzinfo=UTC), instance
    )
    assert isinstance(request, RunRequest)
    assert request.partition_key is None
    assert request.tags[PARTITION_RANGE_START_TAG] == "2026-03-12"
    assert request.tags[PARTITION_RANGE_END_TAG] == "2026-03-17"


def test_no_schedule_ever_yields_a_partition_less_request(tmp_path: Path) -> None:
    """Every tick over two months, from before the first partition exists.

    An in-memory instance: a SQLite one is re-opened at each evaluation (~0.1 s).
    """
    instance = DagsterInstance.ephemeral()
    defs = build_test_definitions(make_settings(tmp_path, start_date=date(2026, 1, 1)), EXAMPLE)
    start = datetime(2025, 12, 25, tzinfo=UTC)
    evaluated = skipped = 0
    for schedule in defs.get_repository_def().schedule_defs:
        for tick in ticks(defs, schedule.name, start, 60):
            for result in evaluate_schedule(defs, schedule.name, tick, instance):
                evaluated += 1
                if isinstance(result, SkipReason):
                    skipped += 1
                    continue
                keys = requested_keys(result, partition_keys_at(defs, tick))
                assert keys, f"{schedule.name} at {tick} requested a run without a partition"
    assert evaluated > 250
    assert skipped > 0  # ticks whose days are before the start date are skipped, not run


def test_targets_are_clamped_to_the_partitions_that_exist(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    settings = make_settings(tmp_path, start_date=date(2026, 3, 1))
    defs = build_test_definitions(settings, EXAMPLE)
    tick = datetime(2026, 3, 8, 6, tzinfo=UTC)
    assert only_keys(defs, CLOSED_LEADS, tick, instance) == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
    ]
    [skip] = evaluate_schedule(defs, CLOSED_LEADS, datetime(2026, 3, 5, 6, tzinfo=UTC), instance)
    assert isinstance(skip, SkipReason)


@pytest.mark.parametrize(
    ("schedule_text", "target", "first_tick", "expected"),
    [
        # spring forward on 2026-03-08: 02:30 does not exist, Dagster ticks at 03:00
        (
            "daily at 02:30",
            {"days_back": 1},
            datetime(2026, 3, 5, tzinfo=UTC),
            ["2026-03-04", "2026-03-05", "2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"],
        ),
        # fall back on 2026-11-01: 23:30 local is already the next day in UTC
        (
            "daily at 23:30",
            "latest",
            datetime(2026, 10, 29, 12, tzinfo=UTC),
            ["2026-10-29", "2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03"],
        ),
        # 01:30 happens twice on 2026-11-01: still one tick, one partition
        (
            "daily at 01:30",
            {"days_back": 1},
            datetime(2026, 10, 30, 12, tzinfo=UTC),
            ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"],
        ),
    ],
)
def test_daylight_saving_changes_request_each_day_once(
    tmp_path: Path,
    instance: DagsterInstance,
    schedule_text: str,
    target: object,
    first_tick: datetime,
    expected: list[str],
) -> None:
    settings = make_settings(tmp_path, zone="America/Chicago")
    config = {
        "reports": {
            "all_leads": {
                "schedule": schedule_text,
                "timezone": "America/Chicago",
                "target": target,
            }
        }
    }
    defs = build_test_definitions(settings, config)
    [schedule] = defs.get_repository_def().schedule_defs
    requested = [
        key
        for tick in ticks(defs, schedule.name, first_tick, len(expected))
        for key in only_keys(defs, schedule.name, tick, instance)
    ]
    assert requested == expected


def test_days_back_counts_days_of_the_partitions_calendar(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    """A Tokyo 08:00 tick is 23:00 UTC the day before: UTC partitions count from that day."""
    config = {"reports": {"all_leads": {"schedule": "daily at 08:00", "timezone": "Asia/Tokyo"}}}
    defs = build_test_definitions(make_settings(tmp_path), config)
    tick = datetime(2026, 3, 10, 8, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert only_keys(defs, "all_leads_daily_0800_asia_tokyo_days_back_1", tick, instance) == [
        "2026-03-08"
    ]


def test_only_scheduled_runs_carry_retry_settings(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    defs = build_test_definitions(make_settings(tmp_path), EXAMPLE)
    tick = datetime(2026, 3, 10, 12, tzinfo=UTC)
    [retried] = evaluate_schedule(defs, ALL_LEADS, tick, instance)
    [not_retried] = evaluate_schedule(defs, LAST_UPDATED, tick, instance)
    assert isinstance(retried, RunRequest) and isinstance(not_retried, RunRequest)
    assert {tag: retried.tags[tag] for tag in RETRY_TAGS} == {
        "dagster/max_retries": "3",
        "dagster/retry_strategy": "FROM_FAILURE",
        "dagster/retry_on_asset_or_op_failure": "false",
    }
    assert not set(RETRY_TAGS) & set(not_retried.tags)
    policy = defs.resolve_job_def(f"{ALL_LEADS}_job").op_retry_policy
    assert policy is not None and (policy.max_retries, policy.delay) == (3, 300)
    assert defs.resolve_job_def(f"{LAST_UPDATED}_job").op_retry_policy is None
    # manual runs: the implicit asset job and the all-reports job retry nothing
    for job in (
        defs.resolve_implicit_global_asset_job_def(),
        defs.resolve_job_def("all_salesexec_reports"),
    ):
        assert job.op_retry_policy is None
        assert MAX_RETRIES_TAG not in job.run_tags
    for assets_def in defs.resolve_asset_graph().assets_defs:
        for node in assets_def.node_def.iterate_op_defs():
            assert node.retry_policy is None


def test_a_failing_scheduled_run_is_retried_and_a_manual_one_is_not(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    config = {
        "reports": {
            "all_leads": {"schedule": "daily at 06:00", "retry": {"max_retries": 2, "delay": "0s"}}
        }
    }
    settings = make_settings(tmp_path, base_url="http://127.0.0.1:9")  # nothing listens
    unreachable = SalesExecResource(
        base_url=settings.base_url, username="user", password="secret", max_attempts=1
    )
    defs = with_resource(build_test_definitions(settings, config), "salesexec", unreachable)
    name = "all_leads_daily_0600_utc_days_back_1"
    [request] = evaluate_schedule(defs, name, datetime(2026, 3, 10, 6, tzinfo=UTC), instance)
    assert isinstance(request, RunRequest)
    scheduled = defs.resolve_job_def(f"{name}_job").execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )
    manual = run_assets(
        defs,
        [AssetKey(["salesexec", "all_leads"])],
        instance,
        partition_key="2026-03-09",
        raise_on_error=False,
    )

    def step_retries(run_id: str) -> int:
        return len(
            instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY).records
        )

    assert not scheduled.success and not manual.success
    assert step_retries(scheduled.run_id) == 2
    assert step_retries(manual.run_id) == 0


def test_a_range_run_materializes_every_day_of_the_range_in_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: DagsterInstance
) -> None:
    config = {
        "reports": {
            "closed_leads": EXAMPLE["reports"]["closed_leads"] | {"update_method": "replace"}
        }
    }
    with sandbox_account(monkeypatch) as server:
        defs = build_test_definitions(make_settings(tmp_path, base_url=server.base_url), config)
        [request] = evaluate_schedule(
            defs, CLOSED_LEADS, datetime(2026, 3, 8, 6, tzinfo=UTC), instance
        )
        assert isinstance(request, RunRequest)
        result = defs.resolve_job_def(f"{CLOSED_LEADS}_job").execute_in_process(
            instance=instance, tags=request.tags
        )
    assert result.success
    days = sorted(event.partition for event in result.get_asset_materialization_events())
    assert days == [str(date(2026, 2, 26) + timedelta(days=n)) for n in range(6)]


def test_shipped_instance_settings_enable_run_retries_and_limit_pools() -> None:
    overrides = yaml.safe_load(DAGSTER_YAML.read_text())
    with instance_for_test(overrides=overrides) as configured:
        assert configured.run_retries_enabled
        assert configured.run_retries_max_retries == 0  # untagged (manual) runs: no retry
        assert not configured.run_retries_retry_on_asset_or_op_failure
        pools = configured.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1


def instigator_statuses(defs: Definitions) -> dict[str, str]:
    """Each schedule's and sensor's default status: what the daemon goes by when
    ``dagster dev`` first starts (before anyone turns one on or off in the UI)."""
    repository = defs.get_repository_def()
    instigators = [*repository.schedule_defs, *repository.sensor_defs]
    return {i.name: i.default_status.value for i in instigators}


def test_the_example_file_starts_every_schedule_and_sensor_stopped(tmp_path: Path) -> None:
    """Copying the example must not launch runs when ``dagster dev`` starts."""
    assert "default_status" not in EXAMPLE  # the example leaves the default (commented)
    assert "# default_status: running" in EXAMPLE_FILE.read_text()
    statuses = instigator_statuses(build_test_definitions(make_settings(tmp_path), EXAMPLE))
    assert len(statuses) >= 8  # five schedules, the failure, late-change, freshness sensors
    assert set(statuses.values()) == {"STOPPED"}, statuses


def test_default_status_running_in_the_file_or_for_one_report_starts_them_running(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    everything = instigator_statuses(
        build_test_definitions(settings, {**EXAMPLE, "default_status": "running"})
    )
    assert set(everything.values()) == {"RUNNING"}, everything

    one = {
        "reports": {
            **EXAMPLE["reports"],
            "all_actions": {**EXAMPLE["reports"]["all_actions"], "default_status": "running"},
        },
        "late_changes": EXAMPLE["late_changes"],
    }
    statuses = instigator_statuses(build_test_definitions(settings, one))
    running = {name for name, status in statuses.items() if status == "RUNNING"}
    assert running == {ALL_ACTIONS}, statuses

    late = {**EXAMPLE, "late_changes": {**EXAMPLE["late_changes"], "default_status": "running"}}
    statuses = instigator_statuses(build_test_definitions(settings, late))
    assert {name for name, status in statuses.items() if status == "RUNNING"} == {
        "salesexec_late_changes"
    }


def test_a_default_status_that_is_neither_running_nor_stopped_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"reports\.all_leads\.default_status: must be running"):
        parse_scheduling_config({"reports": {"all_leads": {"default_status": "on"}}}, "test")
