"""The scheduling file: the shipped example, the defaults, and every named validation error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from salesexec_assets.scheduling import ConfigError, load_scheduling_config
from salesexec_assets.scheduling.config import (
    LEAD_REPORTS,
    SchedulingConfig,
    Target,
    UpdateMethod,
    parse_scheduling_config,
)
from salesexec_assets.scheduling.presets import parse_cadence
from salesexec_assets.settings import CONFIG_VAR
from salesexec_assets_tests.scheduling_support import EXAMPLE_FILE, REPO_ROOT


def test_example_file_is_valid_and_uses_every_option() -> None:
    config = load_scheduling_config(EXAMPLE_FILE)
    leads = config.for_report("all_leads")
    assert leads.cadence is not None and leads.cadence.cron == "0 6 * * *"
    assert leads.timezone == "America/Chicago"
    assert leads.target == Target(1, 1)
    assert leads.retry.max_retries == 3 and leads.retry.delay == timedelta(minutes=5)
    assert leads.retry.notify is not None
    assert leads.retry.notify.webhook_url_env == "SALESEXEC_ALERT_WEBHOOK_URL"
    assert config.for_report("closed_leads").target == Target(10, 5)
    assert config.for_report("closed_leads").cadence.cron == "0 6 * * 0#2,0#4"  # type: ignore[union-attr]
    assert config.for_report("last_updated_leads").target == Target(0, 0, latest=True)
    assert config.for_report("all_actions").retention_days == 90
    assert config.for_report("branch_lead_count").alert_if_stale_after == timedelta(days=2)
    assert not config.for_report("branch_lead_count").scheduled
    assert {s.update_method for s in config.reports.values()} == set(UpdateMethod)
    assert config.late_changes.enabled
    assert config.late_changes.reports == LEAD_REPORTS


def test_without_a_file_every_report_is_manual_replace_and_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_VAR, raising=False)
    config = load_scheduling_config()
    assert config == SchedulingConfig()
    for name in ("all_leads", "leads_awaiting_import_count"):
        settings = config.for_report(name)
        assert not settings.scheduled
        assert settings.update_method is UpdateMethod.REPLACE
        assert not settings.retry.retries
    assert not config.late_changes.enabled


def test_salesexec_config_names_the_file_and_a_missing_one_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "elsewhere.yaml"
    file.write_text("reports:\n  all_leads:\n    schedule: daily at 05:00\n")
    monkeypatch.setenv(CONFIG_VAR, str(file))
    assert load_scheduling_config().for_report("all_leads").cadence.cron == "0 5 * * *"  # type: ignore[union-attr]
    monkeypatch.setenv(CONFIG_VAR, str(tmp_path / "typo.yaml"))
    with pytest.raises(ConfigError) as raised:
        load_scheduling_config()
    assert raised.value.key == CONFIG_VAR and "does not exist" in str(raised.value)


def test_default_file_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_VAR, raising=False)
    (tmp_path / "salesexec.yaml").write_text("reports:\n  closed_leads:\n    schedule: manual\n")
    assert "closed_leads" in load_scheduling_config().reports


INVALID = [
    # (yaml, key named in the error, words of the problem)
    ("reprots: {}", "reprots", "unknown key (did you mean 'reports'?)"),
    ("reports: {all_lead: {}}", "reports.all_lead", "unknown report (did you mean 'all_leads'?)"),
    ("reports: {all_leads: {schedul: daily at 06:00}}", "reports.all_leads.schedul", "unknown key"),
    (
        "reports: {all_leads: {schedule: '61 * * * *'}}",
        "reports.all_leads.schedule",
        "nor a valid cron expression",
    ),
    (
        "reports: {all_leads: {schedule: '0 6 * *'}}",
        "reports.all_leads.schedule",
        "nor a valid cron expression",
    ),
    (
        "reports: {all_leads: {schedule: daily at 25:00}}",
        "reports.all_leads.schedule",
        "not a time of day",
    ),
    (
        "reports: {all_leads: {schedule: dayly at 06:00}}",
        "reports.all_leads.schedule",
        "nor a valid cron expression",
    ),
    (
        "reports: {all_leads: {schedule: every 5 hours}}",
        "reports.all_leads.schedule",
        "does not repeat the same way each day",
    ),
    (
        "reports: {all_leads: {schedule: weekly on funday at 06:00}}",
        "reports.all_leads.schedule",
        "funday is not a day of the week",
    ),
    (
        "reports: {all_leads: {schedule: monthly on day 32 at 06:00}}",
        "reports.all_leads.schedule",
        "not a day of the month",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, timezone: Mars/Olympus}}",
        "reports.all_leads.timezone",
        "not an IANA time zone",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, target: {days_back: -1}}}",
        "reports.all_leads.target.days_back",
        "must not be negative",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, target: {days_back: two}}}",
        "reports.all_leads.target.days_back",
        "must be a whole number",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, "
        "target: {days_back_start: 5, days_back_end: 10}}}",
        "reports.all_leads.target.days_back_start",
        "smaller than days_back_end",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, target: {days_back_start: 5}}}",
        "reports.all_leads.target.days_back_end",
        "is required",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, "
        "target: {days_back: 1, days_back_start: 5, days_back_end: 1}}}",
        "reports.all_leads.target",
        "not both",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, target: yesterday}}",
        "reports.all_leads.target",
        "is not a target",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, target: {day_back: 1}}}",
        "reports.all_leads.target.day_back",
        "did you mean 'days_back'",
    ),
    (
        "reports: {all_leads: {target: {days_back: 1}}}",
        "reports.all_leads.target",
        "schedule is manual",
    ),
    (
        "reports: {all_leads: {retry: {max_retries: 2}}}",
        "reports.all_leads.retry",
        "manual runs are not retried",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: {max_retries: -2}}}",
        "reports.all_leads.retry.max_retries",
        "must not be negative",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: {max_retries: 2, delay: -5m}}}",
        "reports.all_leads.retry.delay",
        "must not be negative",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: {max_retries: 2, delay: soon}}}",
        "reports.all_leads.retry.delay",
        "is not a duration",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: {delay: 5m}}}",
        "reports.all_leads.retry.max_retries",
        "is required",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: always}}",
        "reports.all_leads.retry",
        "write never",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: {max_retries: 1, notify: "
        "{webhook_url: 'https://x.test/a', webhook_url_env: HOOK}}}}",
        "reports.all_leads.retry.notify",
        "exactly one",
    ),
    (
        "reports: {all_leads: {schedule: daily at 06:00, retry: {max_retries: 1, notify: "
        "{webhook_url: 'ftp://x.test/a'}}}}",
        "reports.all_leads.retry.notify.webhook_url",
        "http(s) URL",
    ),
    (
        "reports: {all_leads: {update_method: upsert}}",
        "reports.all_leads.update_method",
        "is not one of replace, append, merge, partition",
    ),
    (
        "reports: {all_actions: {update_method: merge}}",
        "reports.all_actions.update_method",
        "all_actions has no leads",
    ),
    (
        "reports: {all_leads: {update_method: partition}}",
        "reports.all_leads.retention_days",
        "is required with update_method: partition",
    ),
    (
        "reports: {all_leads: {update_method: partition, retention_days: -3}}",
        "reports.all_leads.retention_days",
        "must not be negative",
    ),
    (
        "reports: {all_leads: {update_method: partition, retention_days: 0}}",
        "reports.all_leads.retention_days",
        "at least 1",
    ),
    (
        "reports: {all_leads: {retention_days: 30}}",
        "reports.all_leads.retention_days",
        "only applies with update_method: partition",
    ),
    (
        "reports: {all_leads: {alert_if_stale_after: -2h}}",
        "reports.all_leads.alert_if_stale_after",
        "must not be negative",
    ),
    (
        "reports: {all_leads: {alert_if_stale_after: 0}}",
        "reports.all_leads.alert_if_stale_after",
        "longer than zero",
    ),
    (
        "reports: {leads_awaiting_import_count: {schedule: daily at 06:00, "
        "target: {days_back: 1}}}",
        "reports.leads_awaiting_import_count.target",
        "use target: latest",
    ),
    ("late_changes: {reports: [all_actions]}", "late_changes.reports[0]", "not a lead report"),
    ("late_changes: {poll_every: 10s}", "late_changes.poll_every", "at least 30s"),
    ("late_changes: {enabled: yes please}", "late_changes.enabled", "true or false"),
    ("late_changes: {polling: 1m}", "late_changes.polling", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "problem"), INVALID, ids=[case[1] for case in INVALID])
def test_invalid_config_names_the_key_and_the_problem(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_scheduling_config(yaml.safe_load(text), "salesexec.yaml")
    assert raised.value.key == key
    assert problem in str(raised.value)
    assert str(raised.value).startswith(f"salesexec.yaml: {key}: ")


def test_a_file_that_is_not_yaml_is_named(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("reports: {all_leads: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML") as raised:
        load_scheduling_config(file)
    assert str(file) in str(raised.value)


def test_an_invalid_file_stops_the_code_location_from_loading(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(
        textwrap.dedent(
            """\
            reports:
              closed_leads:
                schedule: daily at 06:00
                target: {days_back_start: 3, days_back_end: 7}
            """
        )
    )
    completed = subprocess.run(
        [sys.executable, "-c", "import salesexec_assets.definitions"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            CONFIG_VAR: str(file),
            "SALESEXEC_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
            "PYTHONPATH": str(REPO_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "reports.closed_leads.target.days_back_start" in completed.stderr
    assert "smaller than days_back_end" in completed.stderr


@pytest.mark.parametrize(
    ("text", "cron", "slug"),
    [
        ("daily at 06:00", "0 6 * * *", "daily_0600"),
        ("Daily  at 6:05", "5 6 * * *", "daily_0605"),
        ("weekdays at 07:30", "30 7 * * 1-5", "weekdays_0730"),
        ("weekly on mon, thu at 07:15", "15 7 * * 1,4", "weekly_mon_thu_0715"),
        ("weekly on Sunday and Wednesday at 23:00", "0 23 * * 0,3", "weekly_sun_wed_2300"),
        ("monthly on day 1 at 05:00", "0 5 1 * *", "monthly_day1_0500"),
        ("every hour", "0 0-23/1 * * *", "every_1h_from_0000"),
        ("every 4 hours from 01:30", "30 1-23/4 * * *", "every_4h_from_0130"),
        ("every 6 hours from 09:15", "15 3-23/6 * * *", "every_6h_from_0915"),
        ("every 24 hours from 13:00", "0 13 * * *", "every_24h_from_1300"),
        ("0 6 * * 0#2,0#4", "0 6 * * 0#2,0#4", "cron_0_6_x_x_0nth2_0nth4"),
        ("*/30 8-17 * * 1-5", "*/30 8-17 * * 1-5", "cron_xevery30_8to17_x_x_1to5"),
    ],
)
def test_presets_and_cron_become_one_cron_expression(text: str, cron: str, slug: str) -> None:
    cadence = parse_cadence(text)
    assert cadence is not None
    assert (cadence.cron, cadence.slug) == (cron, slug)


def test_manual_has_no_cadence() -> None:
    assert parse_cadence(" Manual ") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        (45, timedelta(seconds=45)),
    ],
)
def test_durations_are_read_in_the_files_notation(text: object, expected: timedelta) -> None:
    config = parse_scheduling_config({"reports": {"all_leads": {"alert_if_stale_after": text}}})
    assert config.for_report("all_leads").alert_if_stale_after == expected


def test_a_key_given_twice_is_an_error_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "salesexec.yaml"
    file.write_text("reports:\n  all_leads:\n    schedule: daily at 06:00\n    schedule: manual\n")
    with pytest.raises(
        ConfigError, match=r"reports\.all_leads\.schedule: is given twice"
    ) as raised:
        load_scheduling_config(file)
    assert "lines 3 and 4" in str(raised.value) and str(file) in str(raised.value)
    file.write_text("reports:\n  all_leads: {}\nreports:\n  closed_leads: {}\n")
    with pytest.raises(ConfigError, match=r"reports: is given twice \(lines 1 and 3\)"):
        load_scheduling_config(file)
    # YAML merge keys are not duplicates: a report overrides what it merges
    file.write_text(
        "reports:\n  all_leads: &common {schedule: daily at 06:00}\n"
        "  closed_leads:\n    <<: *common\n    schedule: daily at 07:00\n"
    )
    merged = load_scheduling_config(file).for_report("closed_leads").cadence
    assert merged is not None and merged.cron == "0 7 * * *"
