"""The six report assets (issue 3), run in process by real Dagster against a real sandbox
on loopback, writing real DuckDB files; what they write is compared with the sandbox's
ground truth. Nothing of ours is mocked."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    Definitions,
    ExecuteInProcessResult,
    build_asset_check_context,
    serialize_value,
)

from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract import REPORTS, REPORTS_BY_NAME, Pull, Report
from salesexec_assets.assets import preview_markdown, report_asset_key
from salesexec_assets.checks import (
    build_branch_count_check,
    evaluate_report_checks,
    report_check_specs,
)
from salesexec_assets.definitions import build_definitions
from salesexec_assets.loading import WriteMode, load_report
from salesexec_assets.naming import snake_case
from salesexec_assets.records import table_spec
from salesexec_assets.resources import WarehouseResource
from salesexec_assets.sandbox import Faults, SandboxServer
from salesexec_assets.sandbox.catalog import USERS
from salesexec_assets.settings import load_settings
from salesexec_assets.warehouse import ColumnType, DuckDBWarehouse
from salesexec_assets_tests.conftest import (
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    PointEnv,
    RunAssets,
    StartSandbox,
)
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.truth import (
    assert_rows_match,
    expected_day,
    retyped_columns,
    sorted_rows,
    stored_rows,
    stored_types,
)

PAST_DAY = date(2025, 6, 10)
ALL_LEADS = REPORTS_BY_NAME["all_leads"]
ALL_ACTIONS = REPORTS_BY_NAME["all_actions"]
BRANCH_LEAD_COUNT = REPORTS_BY_NAME["branch_lead_count"]
AWAITING_IMPORT = REPORTS_BY_NAME["leads_awaiting_import_count"]
DAY_REPORTS = tuple(report for report in REPORTS if report.pull is not Pull.NOW)
LEAD_REPORTS = tuple(report for report in DAY_REPORTS if report.record is ALL_LEADS.record)
PERSONAL_COLUMNS = {"fields", "assigned_user_name", "user_name", "notes"}
CHICAGO = "America/Chicago"


# --- helpers ------------------------------------------------------------------------------


def definitions() -> Definitions:
    """The code location as ``defs`` would build it from the current environment."""
    return build_definitions(load_settings())


def keys(*reports: Report) -> list[AssetKey]:
    return [report_asset_key(report) for report in reports]


def key_columns(report: Report) -> list[str]:
    return [snake_case(name) for name in report.key]


def lead_type_uids(server: SandboxServer) -> list[int]:
    return sorted(lead_type["LeadTypeUID"] for lead_type in server.data.lead_types())


def failure_text(result: ExecuteInProcessResult) -> str:
    """Every error message of the run's failed steps, causes included."""
    texts = []
    for event in result.all_events:
        if event.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
            error = getattr(event.event_specific_data, "error", None)
            texts.append(error.to_string() if error else str(event.message))
    return "\n".join(texts)


def metadata_of(result: ExecuteInProcessResult, report: Report) -> dict[str, Any]:
    """The plain metadata values of the report's materialization (a range run records one
    event per partition, all with the run's metadata)."""
    events = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == report_asset_key(report)
    ]
    assert events, f"{report.name} was not materialized"
    assert all(event.metadata == events[0].metadata for event in events)
    return {name: getattr(value, "value", value) for name, value in events[0].metadata.items()}


def whole_table(path: Path | Destination, report: Report) -> list[dict[str, Any]]:
    """Every row with its load stamps, in a stable order (to prove nothing changed)."""
    return sorted_rows(stored_rows(path, report.name, with_metadata=True))


def assert_day_matches_truth(
    path: Path | Destination,
    server: SandboxServer,
    report: Report,
    days: Iterable[date],
    zone: str = "UTC",
) -> None:
    lead_types = lead_type_uids(server)
    expected = [row for day in days for row in expected_day(server, report, lead_types, day, zone)]
    actual = stored_rows(path, report.name)
    assert expected, f"{report.name}: the sandbox has no rows; the comparison proves nothing"
    assert_rows_match(actual, expected, key_columns(report))


def assert_succeeded(result: ExecuteInProcessResult) -> None:
    assert result.success, failure_text(result)


# --- ground truth -------------------------------------------------------------------------


def test_each_report_for_a_past_day_equals_the_sandbox_truth(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
) -> None:
    result = run_assets(definitions(), keys(*DAY_REPORTS), partition=str(PAST_DAY))
    assert_succeeded(result)
    for report in DAY_REPORTS:
        assert_day_matches_truth(destination, sandbox, report, [PAST_DAY])
    # every configured lead type (all of the account's, by default) was pulled
    pulled = {row["lead_type_uid"] for row in stored_rows(destination, ALL_LEADS.name)}
    assert pulled == set(lead_type_uids(sandbox)) == {1, 2, 3}


def test_leads_awaiting_import_count_snapshots_the_sandbox_count_of_the_moment(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
) -> None:
    defs = definitions()
    lead_types = lead_type_uids(sandbox)
    pulls: list[tuple[datetime, datetime]] = []
    for _ in range(2):  # each pull of today's partition adds a snapshot
        today = datetime.now(timezone.utc).date()
        before = datetime.now(timezone.utc).replace(tzinfo=None)
        assert_succeeded(run_assets(defs, keys(AWAITING_IMPORT), partition=str(today)))
        pulls.append((before, datetime.now(timezone.utc).replace(tzinfo=None)))

    rows = sorted(stored_rows(destination, AWAITING_IMPORT.name), key=lambda r: r["as_of_utc"])
    assert len(rows) == 2 * len(lead_types)
    for pull, (before, after) in enumerate(pulls):
        snapshot = rows[pull * len(lead_types) : (pull + 1) * len(lead_types)]
        assert sorted(row["lead_type_uid"] for row in snapshot) == lead_types
        for row in snapshot:
            assert before <= row["as_of_utc"] <= after
            assert row["partition_date"] == row["as_of_utc"].date()
            # the count is the sandbox's for the minute of AsOfUtc, which lies in the pull
            # (so it is the count at `before` or at `after`, across a minute boundary)
            truth = sandbox.data.awaiting_import_count(row["lead_type_uid"], now=row["as_of_utc"])
            possible = {
                sandbox.data.awaiting_import_count(row["lead_type_uid"], now=at)["Count"]
                for at in (before, after)
            }
            assert row["count"] == truth["Count"]
            assert row["count"] in possible


def test_rerunning_a_day_leaves_every_table_identical(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
) -> None:
    defs = definitions()
    assert_succeeded(run_assets(defs, keys(*DAY_REPORTS), partition=str(PAST_DAY)))
    first = {r.name: sorted_rows(stored_rows(destination, r.name)) for r in DAY_REPORTS}
    second_run = run_assets(defs, keys(*DAY_REPORTS), partition=str(PAST_DAY))
    assert_succeeded(second_run)

    for report in DAY_REPORTS:
        assert first[report.name], report.name
        assert sorted_rows(stored_rows(destination, report.name)) == first[report.name]
        # every row is the second run's: the first run's rows were replaced, not kept
        stamped = stored_rows(destination, report.name, with_metadata=True)
        assert {row["_run_id"] for row in stamped} == {second_run.run_id}


def range_tags(first: date, last: date) -> dict[str, str]:
    """The tags of a single-run range (as a backfill or ``--partition-range`` sets them)."""
    return {
        "dagster/asset_partition_range_start": str(first),
        "dagster/asset_partition_range_end": str(last),
    }


def test_an_overlapping_range_rerun_into_the_same_file_keeps_one_copy_of_every_value(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    warehouse_path: Path,
    run_assets: RunAssets,
) -> None:
    """Promise 2: days 1-4, then days 3-6 into the SAME file (small chunks, so the two
    ranges' chunk boundaries differ): every day holds exactly the truth, value for value,
    the overlap once, written by the second run; the days only the first run wrote are
    untouched."""
    defs = definitions()
    days = [PAST_DAY + timedelta(days=n) for n in range(6)]
    config = {"resources": {"warehouse": {"config": {"path": str(warehouse_path),
                                                     "chunk_days": 3}}}}  # fmt: skip

    def run_range(first: date, last: date) -> str:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=DagsterInstance.ephemeral(),
            asset_selection=keys(*DAY_REPORTS),
            tags={
                "dagster/asset_partition_range_start": str(first),
                "dagster/asset_partition_range_end": str(last),
            },
            run_config=config,
            raise_on_error=False,
        )
        assert_succeeded(result)
        return result.run_id

    run_range(days[0], days[3])
    before = {r.name: whole_table(warehouse_path, r) for r in DAY_REPORTS}
    second = run_range(days[2], days[5])
    for report in DAY_REPORTS:
        assert_day_matches_truth(warehouse_path, sandbox, report, days)
        stamped = whole_table(warehouse_path, report)
        for row in stamped:
            overlap_or_later = row["partition_date"] >= days[2]
            assert (row["_run_id"] == second) == overlap_or_later, (report.name, row)
        untouched = [row for row in before[report.name] if row["partition_date"] < days[2]]
        assert untouched and [r for r in stamped if r["partition_date"] < days[2]] == untouched


# --- time zones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "window_utc"),
    [
        # the 25-hour day: CDT (UTC-5) at its start, CST (UTC-6) at its end
        (date(2025, 11, 2), "[2025-11-02T05:00:00Z, 2025-11-03T06:00:00Z)"),
        # the 23-hour day: CST at its start, CDT at its end
        (date(2025, 3, 9), "[2025-03-09T06:00:00Z, 2025-03-10T05:00:00Z)"),
    ],
    ids=["25-hour-day", "23-hour-day"],
)
def test_daylight_saving_days_in_chicago_hold_exactly_their_local_day(
    day: date,
    window_utc: str,
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESEXEC_TIMEZONE", CHICAGO)
    result = run_assets(definitions(), keys(*DAY_REPORTS), partition=str(day))
    assert_succeeded(result)
    for report in DAY_REPORTS:
        assert_day_matches_truth(destination, sandbox, report, [day], zone=CHICAGO)
        assert metadata_of(result, report)["window_utc"] == window_utc
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())


def test_a_chicago_range_across_the_fall_back_change_buckets_records_by_local_day(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESEXEC_TIMEZONE", CHICAGO)
    days = [date(2025, 11, 1), date(2025, 11, 2), date(2025, 11, 3)]
    # two days per transaction: the 25-hour day shares its chunk (and its API window)
    # with the day before it
    config = destination.run_config(chunk_days=2)
    reports = (ALL_LEADS, BRANCH_LEAD_COUNT, REPORTS_BY_NAME["last_updated_leads"])
    result = run_assets(
        definitions(),
        keys(*reports),
        partition_range=(str(days[0]), str(days[-1])),
        run_config=config,
    )
    assert_succeeded(result)
    for report in reports:
        assert_day_matches_truth(destination, sandbox, report, days, zone=CHICAGO)
        assert metadata_of(result, report)["window_utc"] == (
            "[2025-11-01T05:00:00Z, 2025-11-04T06:00:00Z)"
        )


# --- schema drift -------------------------------------------------------------------------


def test_schema_drift_in_the_middle_of_a_range_loses_no_value(
    start_sandbox: StartSandbox,
    point_env_at: PointEnv,
    destination: Destination,
    run_assets: RunAssets,
) -> None:
    days = [PAST_DAY + timedelta(days=n) for n in range(4)]
    drifted = start_sandbox(schema_drift_from=days[2])
    point_env_at(drifted)
    # two days per transaction: the drift arrives in the second write, on a table that
    # already holds numbers in the drifted columns
    config = destination.run_config(chunk_days=2)
    result = run_assets(
        definitions(),
        keys(*LEAD_REPORTS),
        partition_range=(str(days[0]), str(days[-1])),
        run_config=config,
    )
    assert_succeeded(result)

    lead_types = lead_type_uids(drifted)
    for report in LEAD_REPORTS:
        expected = [row for day in days for row in expected_day(drifted, report, lead_types, day)]
        # the fields the source sent as numbers before the drift and as text after it
        retyped = retyped_columns(expected)
        if report is ALL_LEADS:  # every lead type's drifted field straddles the drift here
            assert retyped == {"field_loan_amount", "field_premium", "field_roof_sq_ft"}
        assert retyped, f"{report.name}: the range does not straddle the drift"
        types = stored_types(destination, report.name)
        assert types["field_preferred_contact_time"] == "VARCHAR"  # the new field
        assert {column: types[column] for column in retyped} == dict.fromkeys(retyped, "VARCHAR")
        assert types["field_credit_score"] == "BIGINT"  # an untouched number stays a number
        # every value is kept (old numbers as text) and `fields` equals the source
        assert_rows_match(
            stored_rows(destination, report.name),
            expected,
            key_columns(report),
            text_columns=retyped,
        )

    metadata = metadata_of(result, ALL_LEADS)
    assert "field_preferred_contact_time" in metadata["columns_added"]
    assert ["field_loan_amount", "BIGINT", "VARCHAR"] in metadata["columns_widened"]

    # re-running a day from before the drift (numbers again, into text columns) changes
    # nothing but the load stamps
    before = {r.name: sorted_rows(stored_rows(destination, r.name)) for r in LEAD_REPORTS}
    assert_succeeded(run_assets(definitions(), keys(*LEAD_REPORTS), partition=str(days[0])))
    for report in LEAD_REPORTS:
        assert sorted_rows(stored_rows(destination, report.name)) == before[report.name]


# --- failure safety -----------------------------------------------------------------------


def test_an_exception_between_delete_and_insert_leaves_the_old_partition_intact(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
) -> None:
    days = [PAST_DAY, PAST_DAY + timedelta(days=1)]
    assert_succeeded(
        run_assets(definitions(), keys(ALL_LEADS), partition_range=(str(days[0]), str(days[1])))
    )
    before = whole_table(destination, ALL_LEADS)
    partition_rows_at_failure: list[int] = []

    def fail_on_second_chunk(con: Any) -> None:  # takes ? placeholders on both backends
        row = con.execute(
            "SELECT count(*) FROM salesexec.all_leads WHERE partition_date = ?", [days[1]]
        ).fetchone()
        partition_rows_at_failure.append(row[0] if row else -1)
        if len(partition_rows_at_failure) == 2:
            raise RuntimeError("injected between delete and insert")

    lead_types = [(uid, "") for uid in lead_type_uids(sandbox)]
    with SalesExecClient(sandbox.base_url, SANDBOX_USERNAME, SANDBOX_PASSWORD) as client:
        with pytest.raises(RuntimeError, match="injected between delete and insert"):
            load_report(
                ALL_LEADS,
                days,
                client=client,
                lead_types=lead_types,
                warehouse=destination.warehouse(),
                zone="UTC",
                mode=WriteMode.REPLACE,
                run_id="doomed-run",
                chunk_days=1,  # one transaction per day: the first commits, the second fails
                log=logging.getLogger(__name__),
                loaded_at=lambda: datetime(2030, 1, 1),
                before_insert=fail_on_second_chunk,
            )

    assert partition_rows_at_failure[1] == 0  # the failure struck after the delete
    after = whole_table(destination, ALL_LEADS)
    old_second_day = [row for row in before if row["partition_date"] == days[1]]
    assert old_second_day
    assert [row for row in after if row["partition_date"] == days[1]] == old_second_day
    first_day = [row for row in after if row["partition_date"] == days[0]]
    assert first_day and {row["_run_id"] for row in first_day} == {"doomed-run"}
    assert len(after) == len(before)


def test_a_run_without_partition_is_refused_before_any_table_is_touched(
    salesexec_env: dict[str, str], destination: Destination, run_assets: RunAssets
) -> None:
    defs = definitions()
    refused = run_assets(defs, keys(ALL_LEADS))
    assert not refused.success
    assert "partitioned by day: give a partition" in failure_text(refused)
    assert destination.untouched()

    assert_succeeded(run_assets(defs, keys(ALL_LEADS), partition=str(PAST_DAY)))
    before = whole_table(destination, ALL_LEADS)
    refused = run_assets(defs, keys(ALL_LEADS))
    assert not refused.success
    assert "partitioned by day: give a partition" in failure_text(refused)
    assert whole_table(destination, ALL_LEADS) == before


def test_a_past_day_of_every_report_succeeds_and_the_now_report_skips_it_writing_nothing(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
    dagster_instance: DagsterInstance,
) -> None:
    """The README's ``--select 'group:salesexec' --partition <past day>``, and a UI
    backfill of all six reports over past days: the five dated reports are written, the
    now-only report is materialized with ``skipped`` metadata and writes nothing."""
    defs = definitions()
    today = datetime.now(timezone.utc).date()
    assert_succeeded(run_assets(defs, keys(AWAITING_IMPORT), partition=str(today)))
    snapshot = whole_table(destination, AWAITING_IMPORT)
    assert snapshot

    requests_before = sandbox.request_count
    alone = run_assets(defs, keys(AWAITING_IMPORT), partition=str(PAST_DAY))
    assert_succeeded(alone)
    assert sandbox.request_count == requests_before  # not even asked
    metadata = metadata_of(alone, AWAITING_IMPORT)
    assert metadata["skipped"] == "past partition"
    assert metadata["skipped_partitions"] == [str(PAST_DAY)]
    assert metadata["rows_written"] == 0
    logged = "\n".join(entry.user_message for entry in dagster_instance.all_logs(alone.run_id))
    assert f"nothing was written for {PAST_DAY}" in logged

    everything = run_assets(
        defs, keys(*REPORTS), partition_range=(str(PAST_DAY), str(PAST_DAY + timedelta(days=2)))
    )
    assert_succeeded(everything)
    assert metadata_of(everything, AWAITING_IMPORT)["skipped"] == "past partition"
    assert whole_table(destination, AWAITING_IMPORT) == snapshot
    for report in DAY_REPORTS:
        assert_day_matches_truth(
            destination, sandbox, report, [PAST_DAY + timedelta(days=n) for n in range(3)]
        )


def test_a_run_launched_before_midnight_still_writes_the_now_report_for_its_launch_day(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    warehouse_path: Path,
    dagster_instance: DagsterInstance,
) -> None:
    """A run for "today" that waited in the queue past midnight, or is retried after it,
    writes that day's partition; ``as_of_utc`` stays the true instant of the pull."""
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    launched = datetime.combine(yesterday, datetime.max.time(), timezone.utc) - timedelta(minutes=1)
    root = DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()))
    dagster_instance.run_storage.add_historical_run(root, launched)
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    retry = (
        definitions()
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=dagster_instance,
            asset_selection=keys(AWAITING_IMPORT),
            partition_key=str(yesterday),
            tags={"dagster/root_run_id": root.run_id, "dagster/parent_run_id": root.run_id},
            raise_on_error=False,
        )
    )
    assert_succeeded(retry)
    assert "skipped" not in metadata_of(retry, AWAITING_IMPORT)
    rows = stored_rows(warehouse_path, AWAITING_IMPORT.name)
    assert sorted(row["lead_type_uid"] for row in rows) == lead_type_uids(sandbox)
    for row in rows:
        assert row["partition_date"] == yesterday
        assert before <= row["as_of_utc"] <= datetime.now(timezone.utc).replace(tzinfo=None)


def test_an_unknown_lead_type_fails_listing_the_account_lead_types_and_keeps_the_data(
    salesexec_env: dict[str, str],
    warehouse_path: Path,
    run_assets: RunAssets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert_succeeded(run_assets(definitions(), keys(ALL_LEADS), partition=str(PAST_DAY)))
    before = whole_table(warehouse_path, ALL_LEADS)

    monkeypatch.setenv("SALESEXEC_LEAD_TYPE_UIDS", "999")
    result = run_assets(definitions(), keys(ALL_LEADS), partition=str(PAST_DAY))
    assert not result.success
    message = failure_text(result)
    assert "999" in message
    assert "1 (Mortgage), 2 (Insurance), 3 (Solar)" in message
    assert whole_table(warehouse_path, ALL_LEADS) == before


# --- checks ---------------------------------------------------------------------------


def report_checks(path: Path, report: Report, days: Sequence[date]) -> dict[str, bool]:
    """The report's checks, evaluated afresh on the file."""
    results = evaluate_report_checks(
        report, report_asset_key(report), DuckDBWarehouse(path), days, "UTC", per_pull=False
    )
    return {str(result.check_name): result.passed for result in results}


def branch_check_passes(path: Path) -> bool:
    check = build_branch_count_check(report_asset_key(BRANCH_LEAD_COUNT), keys(ALL_LEADS)[0])
    context = build_asset_check_context(resources={"warehouse": WarehouseResource(path=str(path))})
    return bool(check(context).passed)


def tampered_copy(path: Path, name: str, sql: str) -> Path:
    """A copy of the warehouse with ``sql`` applied to it."""
    copy = path.with_name(f"{name}.duckdb")
    shutil.copy(path, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute(sql)
    finally:
        con.close()
    return copy


FIRST_LEAD = "(SELECT min(lead_uid) FROM salesexec.all_leads)"


@pytest.mark.parametrize(
    ("tampering", "failing_check"),
    [
        (
            "INSERT INTO salesexec.all_leads SELECT * FROM salesexec.all_leads LIMIT 1",
            "unique_key_per_partition",
        ),
        (
            f"UPDATE salesexec.all_leads SET lead_uid = NULL WHERE lead_uid = {FIRST_LEAD}",
            "no_null_keys",
        ),
        (
            "UPDATE salesexec.all_leads SET date_added_utc = date_added_utc + INTERVAL 1 DAY "
            f"WHERE lead_uid = {FIRST_LEAD}",
            "window_field_in_partition",
        ),
        (
            "INSERT INTO salesexec.all_leads__quarantine BY NAME SELECT 1 AS lead_type_uid, "
            "'LeadUID is missing' AS reason, '{}' AS record, "
            f"DATE '{PAST_DAY}' AS partition_date",
            "no_quarantined_records",
        ),
    ],
    ids=["duplicate-row", "null-key", "out-of-window-row", "quarantined-record"],
)
def test_report_checks_pass_on_good_data_and_fail_on_tampered_data(
    tampering: str,
    failing_check: str,
    salesexec_env: dict[str, str],
    warehouse_path: Path,
    run_assets: RunAssets,
) -> None:
    result = run_assets(definitions(), keys(ALL_LEADS), partition=str(PAST_DAY))
    assert_succeeded(result)
    evaluations = result.get_asset_check_evaluations()
    specs = report_check_specs(ALL_LEADS, report_asset_key(ALL_LEADS))
    assert {e.check_name for e in evaluations} == {spec.name for spec in specs}
    assert all(evaluation.passed for evaluation in evaluations)
    assert all(report_checks(warehouse_path, ALL_LEADS, [PAST_DAY]).values())

    bad = tampered_copy(warehouse_path, failing_check, tampering)
    outcome = report_checks(bad, ALL_LEADS, [PAST_DAY])
    assert {name for name, passed in outcome.items() if not passed} == {failing_check}


@pytest.mark.parametrize(
    "tampering",
    [
        "UPDATE salesexec.branch_lead_count SET lead_count = lead_count + 1 "
        "WHERE branch_uid = (SELECT min(branch_uid) FROM salesexec.branch_lead_count)",
        f"DELETE FROM salesexec.all_leads WHERE lead_uid = {FIRST_LEAD}",
    ],
    ids=["branch-count-off-by-one", "lead-missing"],
)
def test_branch_counts_check_passes_on_good_data_and_fails_when_they_disagree(
    tampering: str, salesexec_env: dict[str, str], warehouse_path: Path, run_assets: RunAssets
) -> None:
    result = run_assets(definitions(), keys(ALL_LEADS, BRANCH_LEAD_COUNT), partition=str(PAST_DAY))
    assert_succeeded(result)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["branch_counts_match_all_leads"] is True
    assert branch_check_passes(warehouse_path)
    assert not branch_check_passes(tampered_copy(warehouse_path, "tampered", tampering))


# --- metadata and secrets -----------------------------------------------------------------


def preview_header(markdown: str) -> list[str]:
    return [cell.strip() for cell in markdown.splitlines()[0].strip("|").split("|")]


def preview_cells(markdown: str) -> list[dict[str, str]]:
    header = preview_header(markdown)
    return [
        dict(zip(header, (cell.strip() for cell in line.strip()[1:-1].split("|")), strict=True))
        for line in markdown.splitlines()[2:]
    ]


def test_the_preview_shows_nulls_as_empty_cells_and_dates_as_plain_dates() -> None:
    frame = duckdb.sql(
        "SELECT * FROM (VALUES (1::BIGINT, NULL::BIGINT, NULL::DOUBLE, NULL::TIMESTAMP, "
        "'2025-06-10'::DATE, 'x'), (2, 7, 1.5, '2025-06-10 12:00:00'::TIMESTAMP, "
        "'2025-06-11'::DATE, NULL)) AS t(a, b, c, d, partition_date, e)"
    ).df()
    types = {"a": ColumnType.BIGINT, "b": ColumnType.BIGINT, "c": ColumnType.DOUBLE,
             "d": ColumnType.TIMESTAMP, "partition_date": ColumnType.DATE,
             "e": ColumnType.VARCHAR}  # fmt: skip
    cells = preview_cells(preview_markdown(frame, types))
    assert cells == [
        {"a": "1", "b": "", "c": "", "d": "", "partition_date": "2025-06-10", "e": "x"},
        {"a": "2", "b": "7", "c": "1.5", "d": "2025-06-10 12:00:00",
         "partition_date": "2025-06-11", "e": ""},
    ]  # fmt: skip


def test_materialization_metadata_describes_the_pull_without_personal_data_or_secrets(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    destination: Destination,
    run_assets: RunAssets,
    dagster_instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SALESEXEC_LEAD_TYPE_UIDS", "3,1")
    sandbox.set_faults(Faults(seed=5, p5xx=0.3))  # some calls fail and are retried
    requests_before = sandbox.request_count
    caplog.set_level(logging.DEBUG)
    result = run_assets(definitions(), keys(ALL_LEADS, ALL_ACTIONS), partition=str(PAST_DAY))
    assert_succeeded(result)

    api_requests = api_retries = 0
    for report in (ALL_LEADS, ALL_ACTIONS):
        metadata = metadata_of(result, report)
        rows = stored_rows(destination, report.name)
        truth = {uid: len(expected_day(sandbox, report, [uid], PAST_DAY)) for uid in (1, 3)}
        assert metadata["dagster/row_count"] == len(rows) == sum(truth.values())
        assert metadata["dagster/partition_row_count"] == len(rows)
        assert metadata["rows_by_lead_type"] == {"1 (Mortgage)": truth[1], "3 (Solar)": truth[3]}
        assert metadata["window_utc"] == "[2025-06-10T00:00:00Z, 2025-06-11T00:00:00Z)"
        assert metadata["dagster/table_name"] == destination.location.table_name(table_spec(report))
        assert metadata["warehouse"] == destination.location.display
        schema = metadata["dagster/column_schema"]
        assert [column.name for column in schema.columns] == list(
            stored_types(destination, report.name)
        )
        assert metadata["from_sandbox"] is False  # a SalesExec URL was given
        assert metadata["api_pages"] >= 2  # one page per lead type at least
        assert metadata["api_requests"] > metadata["api_pages"]  # + login, lead types, retries
        api_requests += metadata["api_requests"]
        api_retries += metadata["api_retries"]

        preview = metadata["preview"]
        header = preview_header(preview)
        assert "partition_date" in header
        assert not PERSONAL_COLUMNS & set(header)
        assert not [column for column in header if column.startswith("field_")]
        assert "@example.com" not in preview and "555-" not in preview
        assert not [name for _, name in USERS if name in preview]
        cells = preview_cells(preview)
        assert cells and {row["partition_date"] for row in cells} == {str(PAST_DAY)}
        assert not {"<NA>", "nan", "NaT", "None"} & {v for row in cells for v in row.values()}
    # every request and every retry the sandbox saw is accounted for
    assert api_requests == sandbox.request_count - requests_before
    assert api_retries == sandbox.fault_counts["5xx"] > 0

    run = dagster_instance.get_run_by_id(result.run_id)
    logs = [serialize_value(entry) for entry in dagster_instance.all_logs(result.run_id)]
    captured = capfd.readouterr()
    assert any("retry" in entry for entry in logs)  # the logs that could leak were captured
    for text in (*logs, serialize_value(run), captured.out, captured.err, caplog.text):
        for secret in (SANDBOX_PASSWORD, *destination.secrets):
            assert secret not in text


def test_a_run_on_the_embedded_sandbox_says_so_in_its_metadata(
    tmp_path: Path, run_assets: RunAssets, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("SALESEXEC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SALESEXEC_DUCKDB_PATH", str(tmp_path / "embedded.duckdb"))
    result = run_assets(definitions(), keys(BRANCH_LEAD_COUNT), partition=str(PAST_DAY))
    assert_succeeded(result)
    metadata = metadata_of(result, BRANCH_LEAD_COUNT)
    assert metadata["from_sandbox"] is True
    assert "sandbox" in metadata["source"]
