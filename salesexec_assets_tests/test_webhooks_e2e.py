"""End to end: the sandbox changes leads and sends webhooks -> the receiver (real uvicorn on
loopback) -> the SQLite inbox -> the sensor, evaluated against a real Dagster instance ->
the runs it asks for -> the tables. The touched partitions end equal to the sandbox's new
truth, the untouched ones are not pulled again, and lost, duplicated and reordered
deliveries still end with the right partitions requested."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, instance_for_test

from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import parse_api_timestamp
from salesexec_assets.partitions import day_window_utc
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.sandbox.webhooks import LEAD_EVENTS_PATH, WebhookFaults
from salesexec_assets.scheduling.schedules import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from salesexec_assets.webhooks.inbox import InboxReader
from salesexec_assets.webhooks.payloads import canonical_json
from salesexec_assets.webhooks.receiver import run_receiver
from salesexec_assets.webhooks.settings import WEBHOOK_PATH
from salesexec_assets_tests.e2e_truth import compare_windowed_report, last_days, read_only
from salesexec_assets_tests.scheduling_support import (
    MANUAL_JOB,
    partition_keys_at,
    sandbox_account,
)
from salesexec_assets_tests.webhook_support import (
    launch,
    requested_partitions,
    tick,
    webhook_defs,
)

SECRET = "whsec-e2e-canary-" + uuid.uuid4().hex
LOADED_REPORTS = ("all_leads", "branch_lead_count", "closed_leads", "last_updated_leads")
STORED_TABLES = ("all_leads", "closed_leads", "last_updated_leads")
ZONE = "UTC"


def key(report: str) -> AssetKey:
    return AssetKey(["salesexec", report])


@contextmanager
def loaded_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SandboxServer, Any, DagsterInstance, Path, list[date]]]:
    """A sandbox, definitions with the webhook sensor, an instance, and the four lead and
    branch reports loaded for the last four days (one range run)."""
    today = datetime.now(UTC).date()
    days = last_days(4, today)
    with sandbox_account(monkeypatch) as server, instance_for_test() as instance:
        settings, defs, inbox = webhook_defs(
            tmp_path, monkeypatch, base_url=server.base_url, start_date=today - timedelta(days=30)
        )
        result = defs.resolve_job_def(MANUAL_JOB).execute_in_process(
            instance=instance,
            asset_selection=[key(r) for r in LOADED_REPORTS],
            tags={PARTITION_RANGE_START_TAG: str(days[0]), PARTITION_RANGE_END_TAG: str(days[-1])},
        )
        assert result.success
        yield server, (settings, defs, inbox), instance, settings.duckdb_path, days


def some_leads(server: SandboxServer, days: Iterable[date]) -> list[int]:
    """One lead UID per (day, lead type): leads a test may change now."""
    uids = []
    for day in days:
        start, end = day_window_utc(day, day, ZONE)
        for lead_type in server.data.lead_types():
            truth = server.truth("all_leads", lead_type[contract.LEAD_TYPE_UID], start, end)
            now = datetime.now(UTC).replace(tzinfo=None)
            uids.extend(r[contract.LEAD_UID] for r in truth[:1] if r[contract.DATE_ADDED] < now)
    return uids


def expected_partitions(
    payloads: Iterable[dict[str, Any]], duckdb_path: Path, days: list[date]
) -> set[tuple[str, str]]:
    """The oracle, from the issue's rules and plain SQL on the tables as loaded before."""
    expected: set[tuple[str, str]] = set()
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        for payload in payloads:
            number = payload[contract.WEBHOOK_TYPE_FIELDS[0]]
            field = contract.WEBHOOK_TYPES_BY_NUMBER[number].instant_field
            day = str(parse_api_timestamp(payload[field]).date())
            if number == 100:
                expected |= {("all_leads", day), ("branch_lead_count", day)}
                continue
            expected.add(("last_updated_leads", day))
            if payload.get(contract.WEBHOOK_NEW_STAGE_NAME) in ("Closed Won", "Closed Lost"):
                expected.add(("closed_leads", day))
            for table in STORED_TABLES:
                rows = con.execute(
                    f"SELECT DISTINCT CAST(partition_date AS VARCHAR) FROM salesexec.{table} "
                    "WHERE lead_guid = ?",
                    [payload[contract.WEBHOOK_LEAD_GUID]],
                ).fetchall()
                expected |= {(table, row[0]) for row in rows}
    return {(report, day) for report, day in expected if day >= str(days[0])}


def rematerialized(instance: DagsterInstance, run_ids: set[str]) -> set[tuple[str, str]]:
    """(report, partition) materialized by the given runs."""
    found = set()
    for report in LOADED_REPORTS:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key(report)), limit=10_000
        ).records
        found |= {(report, r.partition_key) for r in records if r.run_id in run_ids}
    return found


def test_lead_changes_in_the_sandbox_reach_exactly_their_partitions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)  # the receiver's access log too
    with loaded_deployment(tmp_path, monkeypatch) as (server, built, instance, path, days):
        _, defs, inbox = built
        changed = some_leads(server, days[:-1])[:3]
        with run_receiver(inbox, SECRET) as receiver:
            server.webhooks.subscribe(f"{receiver.base_url}{WEBHOOK_PATH}/{SECRET}")
            created = requests.post(
                server.base_url + LEAD_EVENTS_PATH,
                json={"action": "create", "lead_type_uid": 1},
                timeout=30,
            )
            assert created.status_code == 200, created.text
            server.webhooks.lead_event("change", lead_uid=changed[0], value="ZZ")
            server.webhooks.lead_event("close", lead_uid=changed[1], won=False)
            server.webhooks.lead_event("return", lead_uid=changed[2])
            assert server.webhooks.flush()
        deliveries = server.webhooks.deliveries
        assert len(deliveries) == 4 and all(d.acknowledged for d in deliveries)
        expected = expected_partitions([d.payload for d in deliveries], path, days)

        run_requests, _, _ = tick(defs, instance, None)
        keys = partition_keys_at(defs, datetime.now(UTC))
        assert requested_partitions(run_requests, keys) == expected
        results = [launch(defs, instance, request) for request in run_requests]
        assert all(result is not None and result.success for result in results)
        # the daemon's rule: a request seen again (a retried tick) launches nothing
        again, _, _ = tick(defs, instance, None)
        assert [launch(defs, instance, request) for request in again] == [None] * len(again)

        run_ids = {result.run_id for result in results if result is not None}
        assert rematerialized(instance, run_ids) == expected  # untouched: not pulled again
        with read_only(path) as con:
            for report in LOADED_REPORTS:
                mismatches, _ = compare_windowed_report(
                    con, [server.data], contract.REPORTS_BY_NAME[report], days, ZONE
                )
                assert not mismatches, [str(m) for m in mismatches]
    captured = capfd.readouterr()
    assert "/webhooks/salesexec/*** 202" in caplog.text
    assert SECRET not in caplog.text + captured.out + captured.err  # the secret scan


def test_lost_duplicated_and_reordered_deliveries_still_ask_for_the_right_partitions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)  # the receiver's access log too
    with loaded_deployment(tmp_path, monkeypatch) as (server, built, instance, path, days):
        _, defs, inbox = built
        leads = some_leads(server, days[:-1])
        server.webhooks.set_faults(
            WebhookFaults(
                p_lost=0.25, p_duplicate=0.5, reorder=True, reorder_window_seconds=1.0, seed=3
            )
        )
        with run_receiver(inbox, SECRET) as receiver:
            server.webhooks.subscribe(f"{receiver.base_url}{WEBHOOK_PATH}/{SECRET}")
            for index, uid in enumerate(leads):
                action = ("change", "close", "return")[index % 3]
                server.webhooks.lead_event(action, lead_uid=uid, value=f"V{index}")
            for _ in range(3):
                server.webhooks.lead_event("create", lead_type_uid=2)
            assert server.webhooks.flush()
        deliveries = server.webhooks.deliveries
        delivered = [d for d in deliveries if d.acknowledged]
        assert any(d.lost for d in deliveries) and any(d.sent == 2 for d in deliveries)
        order = [d.payload for d in delivered]
        stored = [e.body for e in InboxReader(inbox).events_after(0)]
        assert len(stored) == len(delivered)  # duplicates stored once
        assert stored != [canonical_json(payload) for payload in order]  # they came reordered
        assert sorted(stored) == sorted(canonical_json(payload) for payload in order)
        run_requests, _, _ = tick(defs, instance, None)
        keys = partition_keys_at(defs, datetime.now(UTC))
        asked = requested_partitions(run_requests, keys)
        assert asked == expected_partitions(order, path, days)
        # duplicates ask once: no (report, day) is in two run requests
        pairs = [
            (report, day)
            for request in run_requests
            for report, day in requested_partitions([request], keys)
        ]
        assert len(pairs) == len(set(pairs))
        # what was lost is left to the scheduled pulls (the reconciliation): it is not asked
        lost_only = expected_partitions(
            [d.payload for d in deliveries if d.lost], path, days
        ) - expected_partitions(order, path, days)
        assert not lost_only & asked
    captured = capfd.readouterr()
    assert "/webhooks/salesexec/*** 202" in caplog.text
    assert SECRET not in caplog.text + captured.out + captured.err  # the secret scan
