"""With ``dagster dev`` (webserver and daemon) and the receiver running, a lead that
changes in the sandbox is in the tables about a quiet period plus a sensor interval plus
the run's own time later; and the sensor's cursor survives a restart of the daemon: the
events handled before it are not asked for again."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from salesexec_assets.api import contract
from salesexec_assets.partitions import day_window_utc
from salesexec_assets.sandbox import run_sandbox
from salesexec_assets.scheduling.schedules import REPORTS_TAG, TRIGGER_TAG
from salesexec_assets.webhooks.inbox import INBOX_VAR
from salesexec_assets.webhooks.receiver import run_receiver
from salesexec_assets.webhooks.sensor import EVENTS_TAG, TRIGGER
from salesexec_assets.webhooks.settings import WEBHOOK_PATH
from salesexec_assets_tests.e2e_dagster import DagsterDev, dagster_dev
from salesexec_assets_tests.e2e_truth import read_only

SECRET = "whsec-daemon-canary-" + uuid.uuid4().hex
RUN_TIMEOUT = float(os.environ.get("SALESEXEC_WEBHOOK_DAEMON_TIMEOUT", "300"))
WEBHOOK_RUNS = """
query WebhookRuns($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def webhook_runs(dev: DagsterDev) -> list[dict[str, Any]]:
    answer = dev.graphql(
        WEBHOOK_RUNS, {"filter": {"tags": [{"key": TRIGGER_TAG, "value": TRIGGER}]}}
    )["runsOrError"]
    assert answer["__typename"] == "Runs", answer
    return [
        {**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}
        for run in answer["results"]
    ]


def wait_for_successful_runs(dev: DagsterDev, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = webhook_runs(dev)
        failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
        assert not failed, f"{failed}\n{dev.log_tail()}"
        if len(runs) >= count and all(r["status"] == "SUCCESS" for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"no {count} successful webhook run(s) in time:\n{dev.log_tail()}")


def stored_in(path: Path, table: str, guid: str) -> list[tuple[Any, ...]]:
    with read_only(path) as con:
        return con.execute(
            f"SELECT partition_date, field_state FROM salesexec.{table} WHERE lead_guid = ?",
            [guid],
        ).fetchall()


@pytest.mark.e2e
def test_the_daemon_brings_a_changed_lead_into_the_tables_and_keeps_its_cursor(
    tmp_path: Path,
) -> None:
    today = datetime.now(UTC).date()
    inbox, warehouse = tmp_path / "inbox.sqlite", tmp_path / "warehouse.duckdb"
    config = tmp_path / "salesexec.yaml"
    config.write_text(
        "webhooks: {enabled: true, default_status: running, quiet_period: 5s}\n", encoding="utf-8"
    )
    with run_sandbox(leads_per_day=5) as server, run_receiver(inbox, SECRET) as receiver:
        server.webhooks.subscribe(f"{receiver.base_url}{WEBHOOK_PATH}/{SECRET}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESEXEC_", "DAGSTER_"))}
        env.update(
            {
                "SALESEXEC_BASE_URL": server.base_url,
                "SALESEXEC_USERNAME": server.config.username,
                "SALESEXEC_PASSWORD": server.config.password,
                "SALESEXEC_START_DATE": str(today - timedelta(days=20)),
                "SALESEXEC_DUCKDB_PATH": str(warehouse),
                "SALESEXEC_CONFIG": str(config),
                INBOX_VAR: str(inbox),
            }
        )
        home = tmp_path / "dagster_home"
        figures = []
        with dagster_dev(home, env, tmp_path / "dagster-dev-1.log") as dev:
            started = time.monotonic()
            created = server.webhooks.lead_event("create", lead_type_uid=1)
            assert server.webhooks.flush()
            (first,) = wait_for_successful_runs(dev, 1)
            figures.append(time.monotonic() - started)
            assert first["tags"][REPORTS_TAG] == "all_leads,branch_lead_count"
            assert first["tags"][EVENTS_TAG] == "1"
            assert stored_in(warehouse, "all_leads", created[contract.WEBHOOK_LEAD_GUID])
            log_1 = dev.log_text()

        # the daemon restarts with the same instance: the cursor is where it was left
        start, end = day_window_utc(today - timedelta(days=1), today - timedelta(days=1), "UTC")
        lead = server.truth("all_leads", 2, start, end)[0]
        with dagster_dev(home, env, tmp_path / "dagster-dev-2.log") as dev:
            started = time.monotonic()
            server.webhooks.lead_event("change", lead_uid=lead[contract.LEAD_UID], value="QQ")
            assert server.webhooks.flush()
            runs = wait_for_successful_runs(dev, 2)
            figures.append(time.monotonic() - started)
            time.sleep(20)  # more sensor ticks: the first event is not asked for again
            runs = webhook_runs(dev)
            log_2 = dev.log_text()
        assert len(runs) == 2, runs
        second = next(r for r in runs if r["runId"] != first["runId"])
        assert second["tags"][REPORTS_TAG] == "last_updated_leads"
        assert [row[1] for row in stored_in(warehouse, "last_updated_leads", lead["LeadGuid"])] == [
            "QQ"
        ]
    print(f"event -> rows in the table: {figures[0]:.0f} s, after the restart {figures[1]:.0f} s")
    assert SECRET not in log_1 + log_2
