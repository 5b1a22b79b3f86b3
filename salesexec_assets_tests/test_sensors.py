"""Sensors, evaluated with a real instance: failure webhook, late changes, freshness."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetMaterialization,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
)

from salesexec_assets.analytics.definitions import AUTOMATION_SENSOR
from salesexec_assets.api.contract import CLOSED, DATE_ADDED, LAST_UPDATED, LEAD_TYPE_UID
from salesexec_assets.resources import SalesExecResource
from salesexec_assets.scheduling.notify import NotificationError, post_json, redact_url
from salesexec_assets.scheduling.schedules import REPORTS_TAG
from salesexec_assets.scheduling.sensors import (
    FAILURE_SENSOR_NAME,
    FRESHNESS_SENSOR_NAME,
    LATE_CHANGES_SENSOR_NAME,
    POLL_OVERLAP,
    read_cursor,
    write_cursor,
)
from salesexec_assets_tests.scheduling_support import (
    build_test_definitions,
    evaluate_schedule,
    make_settings,
    run_assets,
    sandbox_account,
    with_resource,
)

UTC = timezone.utc
SECRET = "T0SECRET/B0SECRET/xoxb-very-secret-token"
HOOK_VAR = "SALESEXEC_TEST_WEBHOOK_URL"
SCHEDULE = "all_leads_daily_0600_utc_days_back_1"
LEADS_KEY = AssetKey(["salesexec", "leads"])


# --------------------------------------------------------------------------- webhook


@dataclass
class Webhook:
    """A real HTTP server on loopback that records what is POSTed to it."""

    server: ThreadingHTTPServer
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 204

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{SECRET}"


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append((self.path, json.loads(body)))
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = Webhook(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@dataclass(frozen=True)
class FailedRun:
    defs: Definitions
    instance: DagsterInstance
    run: DagsterRun


def failing_definitions(tmp_path: Path) -> Definitions:
    """all_leads scheduled daily with one retry and a webhook, against a dead API."""
    config = {
        "reports": {
            "all_leads": {
                "schedule": "daily at 06:00",
                "retry": {"max_retries": 1, "delay": "0s", "notify": {"webhook_url_env": HOOK_VAR}},
            }
        }
    }
    settings = make_settings(tmp_path, base_url="http://127.0.0.1:9")  # nothing listens
    dead = SalesExecResource(
        base_url=settings.base_url, username="user", password="pw", max_attempts=1
    )
    return with_resource(build_test_definitions(settings, config), "salesexec", dead)


@pytest.fixture(scope="module")
def failed_scheduled_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailedRun]:
    """A scheduled run that failed for good, in an instance with run retries enabled."""
    defs = failing_definitions(tmp_path_factory.mktemp("failed"))
    with instance_for_test(overrides={"run_retries": {"enabled": True}}) as instance:
        [request] = evaluate_schedule(
            defs, SCHEDULE, datetime(2026, 3, 10, 6, tzinfo=UTC), instance
        )
        assert isinstance(request, RunRequest)
        result = defs.resolve_job_def(f"{SCHEDULE}_job").execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            raise_on_error=False,
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        yield FailedRun(defs, instance, run)


def evaluate_failure_sensor(defs: Definitions, instance: DagsterInstance, run: DagsterRun) -> None:
    [failure] = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_FAILURE
    ).records
    context = build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR_NAME,
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()
    defs.resolve_sensor_def(FAILURE_SENSOR_NAME)(context)


def test_failure_sensor_posts_the_final_failure_to_a_webhook_on_loopback(
    failed_scheduled_run: FailedRun,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(HOOK_VAR, webhook.url)
    webhook.received.clear()
    capfd.readouterr()
    evaluate_failure_sensor(
        failed_scheduled_run.defs, failed_scheduled_run.instance, failed_scheduled_run.run
    )
    log = capfd.readouterr().err  # the sensor's log (Dagster writes it to stderr)
    [(path, message)] = webhook.received
    assert path == f"/hooks/{SECRET}"
    assert message["status"] == "FAILURE"
    assert message["schedule"] == SCHEDULE
    assert message["reports"] == ["all_leads"]
    assert message["partitions"] == "2026-03-09"
    assert message["max_retries"] == 1
    assert message["run_id"] == failed_scheduled_run.run.run_id
    assert "Connection refused" in message["error"] or "connection" in message["error"].lower()
    assert "all_leads" in message["text"] and "2026-03-09" in message["text"]
    # the log says what failed and where it was posted, never the URL's secret
    assert "failed after its retries" in log
    assert f"http://127.0.0.1:{webhook.server.server_address[1]}/…" in log
    assert "SECRET" not in log


def test_a_run_that_will_be_retried_is_not_notified_yet(
    failed_scheduled_run: FailedRun,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(HOOK_VAR, webhook.url)
    webhook.received.clear()
    instance, run = failed_scheduled_run.instance, failed_scheduled_run.run
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
    try:
        retried = instance.get_run_by_id(run.run_id)
        assert retried is not None
        evaluate_failure_sensor(failed_scheduled_run.defs, instance, retried)
    finally:
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})
    assert webhook.received == []


def test_a_manual_failure_is_logged_and_not_posted(
    failed_scheduled_run: FailedRun,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(HOOK_VAR, webhook.url)
    webhook.received.clear()
    defs, instance = failed_scheduled_run.defs, failed_scheduled_run.instance
    result = run_assets(
        defs,
        [AssetKey(["salesexec", "all_leads"])],
        instance,
        partition_key="2026-03-09",
        raise_on_error=False,
    )
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and not result.success
    capfd.readouterr()
    evaluate_failure_sensor(defs, instance, run)
    assert webhook.received == []
    log = capfd.readouterr().err
    assert "manual run of all_leads for 2026-03-09 failed (not retried)" in log


def test_webhook_failures_are_reported_without_the_secret(webhook: Webhook) -> None:
    webhook.status = 500
    try:
        with pytest.raises(NotificationError, match="answered HTTP 500") as refused:
            post_json(webhook.url, {"text": "x"})
    finally:
        webhook.status = 204
    with pytest.raises(NotificationError, match="could not be reached") as unreachable:
        post_json(f"http://127.0.0.1:9/hooks/{SECRET}", {"text": "x"})
    for error in (refused.value, unreachable.value):
        assert "SECRET" not in str(error)
        # no chained requests exception (its text quotes the full URL) travels with it
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.slack.com/services/{SECRET}", "https://hooks.slack.com/…"),
        ("https://user:pass@example.com:8443/a?token=abc", "https://example.com:8443/…"),
        ("not a url", "?://?/…"),
    ],
)
def test_redacted_urls_keep_only_scheme_and_host(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --------------------------------------------------------------------------- late changes


LATE_CONFIG = {
    "reports": {"all_leads": {"update_method": "merge"}},
    "late_changes": {"enabled": True, "lookback": "2d", "default_status": "running"},
}


def expected_changes(
    server: Any, start: datetime, end: datetime, loaded: dict[str, set[str]]
) -> dict[str, set[str]]:
    """Partition -> reports to re-pull, computed from the sandbox's ground truth."""
    fields = {"all_leads": DATE_ADDED, "closed_leads": CLOSED, "last_updated_leads": LAST_UPDATED}
    expected: dict[str, set[str]] = {}
    for lead_type in server.data.lead_types():
        for lead in server.truth("last_updated_leads", lead_type[LEAD_TYPE_UID], start, end):
            for report, name in fields.items():
                if lead[name] is not None and str(lead[name].date()) in loaded[report]:
                    expected.setdefault(str(lead[name].date()), set()).add(report)
    return expected


def requested(requests: list[RunRequest]) -> dict[str, set[str]]:
    return {r.partition_key: set(r.tags[REPORTS_TAG].split(",")) for r in requests}  # type: ignore[misc]


def mark_loaded(instance: DagsterInstance, loaded: dict[str, set[str]]) -> None:
    for report, keys in loaded.items():
        for key in keys:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key=AssetKey(["salesexec", report]), partition=key)
            )


def naive(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


def test_late_change_sensor_requests_the_partitions_whose_leads_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(UTC).date()
    days = [str(today - timedelta(days=n)) for n in range(20)]
    # every All Leads day is loaded, every other Closed Leads day, no Last Updated Leads day
    loaded = {"all_leads": set(days), "closed_leads": set(days[::2]), "last_updated_leads": set()}
    with sandbox_account(monkeypatch) as server, instance_for_test() as instance:
        settings = make_settings(
            tmp_path, base_url=server.base_url, start_date=today - timedelta(days=60)
        )
        defs = build_test_definitions(settings, LATE_CONFIG)
        sensor = defs.resolve_sensor_def(LATE_CHANGES_SENSOR_NAME)
        assert sensor.default_status is DefaultSensorStatus.RUNNING
        mark_loaded(instance, loaded)
        cursor = write_cursor(datetime.now(UTC) - timedelta(hours=12))

        def poll(current: str | None) -> tuple[list[RunRequest], str]:
            with build_sensor_context(
                instance=instance, cursor=current, definitions=defs, resources=defs.resources
            ) as context:
                result = sensor.evaluate_tick(context)
            assert result.cursor is not None
            return list(result.run_requests or []), result.cursor

        first, cursor_1 = poll(cursor)
        since, until = read_cursor(cursor), read_cursor(cursor_1)
        assert since is not None and until is not None and until > since
        assert requested(first) == expected_changes(
            server, naive(since - POLL_OVERLAP), naive(until), loaded
        )
        assert first, "twelve hours of sandbox data hold changes"
        for request in first:
            assert request.partition_key is not None
            assert request.run_key and request.run_key.startswith(
                f"late_changes:{request.partition_key}:"
            )
            assert (LEADS_KEY in request.asset_selection) == (  # type: ignore[operator]
                "all_leads" in request.tags[REPORTS_TAG]  # merge feeds salesexec/leads
            )
        # the same cursor again (a tick that failed to commit): the same run keys
        again, _ = poll(cursor)
        assert {r.run_key for r in again} == {r.run_key for r in first}

        # a restart: fresh definitions read the stored cursor and go on from there
        restarted = build_test_definitions(settings, LATE_CONFIG)
        sensor = restarted.resolve_sensor_def(LATE_CHANGES_SENSOR_NAME)
        second, cursor_2 = poll(cursor_1)
        later = read_cursor(cursor_2)
        assert later is not None and later >= until
        assert requested(second) == expected_changes(
            server, naive(until - POLL_OVERLAP), naive(later), loaded
        )


def test_first_poll_looks_back_and_partitions_never_loaded_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(UTC).date()
    loaded = {
        "all_leads": {str(today - timedelta(days=3))},
        "closed_leads": set(),
        "last_updated_leads": set(),
    }
    with sandbox_account(monkeypatch) as server, instance_for_test() as instance:
        settings = make_settings(
            tmp_path, base_url=server.base_url, start_date=today - timedelta(days=60)
        )
        defs = build_test_definitions(settings, LATE_CONFIG)
        mark_loaded(instance, loaded)
        with build_sensor_context(
            instance=instance, definitions=defs, resources=defs.resources
        ) as context:
            result = defs.resolve_sensor_def(LATE_CHANGES_SENSOR_NAME).evaluate_tick(context)
        until = read_cursor(result.cursor)
        assert until is not None
        since = until - timedelta(days=2) - POLL_OVERLAP  # lookback: 2d
        assert requested(list(result.run_requests or [])) == expected_changes(
            server, naive(since), naive(until), loaded
        )
        assert set(requested(list(result.run_requests or []))) <= loaded["all_leads"]


def test_late_change_sensor_is_stopped_unless_enabled(tmp_path: Path) -> None:
    defs = build_test_definitions(make_settings(tmp_path), {})
    sensor = defs.resolve_sensor_def(LATE_CHANGES_SENSOR_NAME)
    assert sensor.default_status is DefaultSensorStatus.STOPPED


# --------------------------------------------------------------------------- staleness


def test_alert_if_stale_after_becomes_a_freshness_check_with_its_sensor(tmp_path: Path) -> None:
    config = {
        "reports": {
            "branch_lead_count": {"alert_if_stale_after": "2d", "default_status": "running"}
        }
    }
    defs = build_test_definitions(make_settings(tmp_path), config)
    asset_key = AssetKey(["salesexec", "branch_lead_count"])
    check_key = AssetCheckKey(asset_key, "freshness_check")
    check_job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={check_key}
    )
    sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR_NAME)
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    with instance_for_test() as instance:
        tick = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))
        assert [r.asset_check_keys for r in tick.run_requests or []] == [[check_key]]

        def check_passes() -> bool:
            result = check_job.execute_in_process(instance=instance)
            [evaluation] = result.get_asset_check_evaluations()
            return evaluation.passed

        assert not check_passes()  # never materialized: stale
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=asset_key, partition=str(date.today()))
        )
        assert check_passes()  # materialized just now: fresh for two days


def test_no_freshness_sensor_without_alerts(tmp_path: Path) -> None:
    defs = build_test_definitions(make_settings(tmp_path), {})
    names = {s.name for s in defs.get_repository_def().sensor_defs}
    assert names == {FAILURE_SENSOR_NAME, LATE_CHANGES_SENSOR_NAME, AUTOMATION_SENSOR}
