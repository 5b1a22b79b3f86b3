"""Issue 5: exactly the source's rows, once, whatever happens, proven in figures.

The scenarios live in ``fault_scenarios.py``; this module runs them at CI's small scale
(``scripts/fault_suite.py`` runs them large). Each scenario test gets a ``Lab``: at its
end, everything the test captured (stdout and stderr, log records, CLI output, Dagster
event logs, run config and metadata, exception texts, every table's values) is searched
for the sandbox password, a wrong password and every auth token the sandboxes issued.
The session ends with one line of figures (``conftest.py``, ``pytest_terminal_summary``).
The tests after the scenarios pin down the bugs the suite found, one behaviour each.

Property tests of the pieces the guarantees rest on live with those pieces:
``test_timestamps.py``, ``test_partitions.py``, ``test_naming.py``, ``test_warehouse.py``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract import LEAD_UID, PARAM_SKIP, PARAM_TAKE, TAKE_MAX
from salesexec_assets.records import QUARANTINE_SUFFIX, key_columns
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets_tests.conftest import (
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    RunAssets,
    StartSandbox,
)
from salesexec_assets_tests.destinations import DUCKDB, POSTGRES
from salesexec_assets_tests.fault_scenarios import (
    BAD_BASE_URLS,
    EXHAUSTED_ENDPOINTS,
    LEAVING,
    Exchange,
    Lab,
    RewritingProxy,
    Scale,
    SecretScan,
    all_faults_at_once,
    bad_base_url,
    bad_records,
    kill_and_rerun,
    malformed_settings,
    parallel_writers,
    resources_config,
    retries_exhausted,
    rows_leave_windows,
)
from salesexec_assets_tests.figures import Figures
from salesexec_assets_tests.test_assets import (
    ALL_LEADS,
    assert_day_matches_truth,
    assert_succeeded,
    definitions,
    failure_text,
    keys,
    metadata_of,
    whole_table,
)
from salesexec_assets_tests.truth import assert_rows_match, expected_day, stored_rows


@pytest.fixture
def lab(
    tmp_path: Path,
    fault_figures: Figures,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> Iterator[Lab]:
    """A lab at CI's scale; its figures join the session's, its captures the secret scan.
    A scenario that asks for a Postgres database gets one on the session's server."""
    caplog.set_level(logging.DEBUG)
    figures = Figures()
    try:
        with Lab(tmp_path, Scale(), figures) as started:
            started.postgres = lambda: request.getfixturevalue("postgres_server")
            yield started
            captured = capfd.readouterr()
            # shown again by pytest if the test failed
            sys.stdout.write(captured.out)
            sys.stderr.write(captured.err)
            started.secrets.add("captured stdout", captured.out)
            started.secrets.add("captured stderr", captured.err)
            started.secrets.add("captured log records", caplog.text)
    finally:
        fault_figures.add(figures)


@pytest.mark.slow
@pytest.mark.parametrize("via", ["python", "cli"])
def test_all_faults_at_once_leave_every_partition_of_the_six_reports_equal_to_the_truth(
    lab: Lab, via: str
) -> None:
    all_faults_at_once(lab, via)


@pytest.mark.parametrize("mix", LEAVING)
def test_rows_leaving_their_window_mid_read_lose_no_other_row_in_any_report(
    lab: Lab, mix: str
) -> None:
    rows_leave_windows(lab, mix)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [DUCKDB, POSTGRES])
def test_kill_9_mid_pull_or_mid_write_leaves_whole_partitions_and_a_rerun_restores_the_truth(
    lab: Lab, kind: str
) -> None:
    kill_and_rerun(lab, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [DUCKDB, POSTGRES])
def test_parallel_cli_writers_into_one_destination_all_succeed_and_lose_nothing(
    lab: Lab, kind: str
) -> None:
    parallel_writers(lab, kind)


@pytest.mark.parametrize("kind", EXHAUSTED_ENDPOINTS)
def test_retries_exhausted_fail_the_run_naming_endpoint_and_status_and_keep_the_data(
    lab: Lab, kind: str
) -> None:
    retries_exhausted(lab, kind)


def test_malformed_settings_stop_the_cli_naming_the_setting_before_the_file_is_touched(
    lab: Lab,
) -> None:
    malformed_settings(lab)


@pytest.mark.parametrize("case", BAD_BASE_URLS)
def test_a_bad_base_url_or_password_fails_the_run_naming_the_problem_and_keeps_the_data(
    lab: Lab, case: str
) -> None:
    bad_base_url(lab, case)


@pytest.mark.parametrize("kind", [DUCKDB, POSTGRES])
def test_records_breaking_the_contract_are_quarantined_counted_and_never_dropped(
    lab: Lab, kind: str
) -> None:
    bad_records(lab, kind)


def test_run_config_that_tunes_the_client_still_reads_the_configured_account(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    warehouse_path: Path,
    run_assets: RunAssets,
) -> None:
    """Run config replaces a resource's configuration whole; the account's URL and
    credentials still come from SALESEXEC_*, never silently from the embedded sandbox."""
    day = date(2025, 6, 10)
    config = resources_config(max_attempts=4, page_size=7)
    result = run_assets(definitions(), keys(ALL_LEADS), partition=str(day), run_config=config)
    assert_succeeded(result)
    assert metadata_of(result, ALL_LEADS)["from_sandbox"] is False
    assert metadata_of(result, ALL_LEADS)["api_pages"] > 3  # page_size 7 was applied
    assert_day_matches_truth(warehouse_path, sandbox, ALL_LEADS, [day])


def test_a_lead_type_given_twice_in_run_config_is_pulled_and_stored_once(
    sandbox: SandboxServer,
    salesexec_env: dict[str, str],
    warehouse_path: Path,
    run_assets: RunAssets,
) -> None:
    """``lead_type_uids: [1, 1]`` in run config means lead type 1, as
    ``SALESEXEC_LEAD_TYPE_UIDS=1,1`` does: not every row of it written twice."""
    day = date(2025, 6, 10)
    config = resources_config(lead_type_uids=[1, 1])
    result = run_assets(definitions(), keys(ALL_LEADS), partition=str(day), run_config=config)
    assert_succeeded(result)
    stored = stored_rows(warehouse_path, ALL_LEADS.name)
    expected = expected_day(sandbox, ALL_LEADS, [1], day)
    assert len(stored) == len(expected) > 0
    assert_rows_match(stored, expected, key_columns(ALL_LEADS))


def test_a_chunk_and_its_quarantined_records_are_one_transaction(
    salesexec_env: dict[str, str], warehouse_path: Path, run_assets: RunAssets
) -> None:
    """The quarantine table cannot be written (a view stands in its place): the chunk's
    rows stay as they were too, as after a crash between the two writes."""
    day = str(date(2025, 6, 10))
    assert_succeeded(run_assets(definitions(), keys(ALL_LEADS), partition=day))
    before = whole_table(warehouse_path, ALL_LEADS)
    con = duckdb.connect(str(warehouse_path))
    try:
        con.execute(f"DROP TABLE salesexec.{ALL_LEADS.name}{QUARANTINE_SUFFIX}")
        con.execute(f"CREATE VIEW salesexec.{ALL_LEADS.name}{QUARANTINE_SUFFIX} AS SELECT 1 AS x")
    finally:
        con.close()
    result = run_assets(definitions(), keys(ALL_LEADS), partition=day)
    assert not result.success
    assert "Can only modify view" in failure_text(result)  # the quarantine write failed
    assert whole_table(warehouse_path, ALL_LEADS) == before


def test_a_lead_inserted_while_a_window_is_read_again_is_not_lost(
    start_sandbox: StartSandbox,
) -> None:
    """A re-read is judged by what it read itself. Here a lead is inserted during the
    re-read, after its last page was answered (still with the old TotalCount): rows seen
    by the first pass must not hide the row this re-read missed; the middle page's new
    TotalCount and shifted boundary show the change, so one more pass reads the new lead
    instead of losing it."""
    server = start_sandbox(leads_per_day=2 * TAKE_MAX + 100)  # a re-read takes 3 pages
    window = (datetime(2025, 6, 10), datetime(2025, 6, 11))
    last_page_answered = threading.Event()
    insertions: list[str] = []
    lock = threading.Lock()

    def insert_at_moments(path: str, query: Mapping[str, list[str]]) -> None:
        skip, take = (int(query.get(name, ["0"])[0]) for name in (PARAM_SKIP, PARAM_TAKE))
        if path != ALL_LEADS.path or skip == 0:
            return
        with lock:
            first_pass = take < TAKE_MAX and not insertions
            # overlapping pages: the re-read's pages start at 0, 499 and 998
            rereads_middle = (skip, take) == (TAKE_MAX - 1, TAKE_MAX) and len(insertions) == 1
        if rereads_middle:
            assert last_page_answered.wait(timeout=30)
        if first_pass or rereads_middle:
            with lock:
                server.data.insert_lead(1, window[0], during=ALL_LEADS.name)
                insertions.append(f"skip {skip}, take {take}")

    def note_last_page(exchange: Exchange) -> None:
        if (exchange.param(PARAM_SKIP), exchange.param(PARAM_TAKE)) == (
            str(2 * (TAKE_MAX - 1)),
            str(TAKE_MAX),
        ):
            last_page_answered.set()

    with RewritingProxy(server, note_last_page, before=insert_at_moments) as proxy:
        with SalesExecClient(
            proxy.base_url, SANDBOX_USERNAME, SANDBOX_PASSWORD, page_size=100
        ) as client:
            keys_read = [
                record[LEAD_UID]
                for page in client.iter_report_pages(ALL_LEADS, 1, *window)
                for record in page
            ]
    truth = [row[LEAD_UID] for row in server.truth(ALL_LEADS.name, 1, *window)]
    assert len(insertions) == 2, insertions
    assert sorted(keys_read) == sorted(truth)
    assert client.stats.window_rereads >= 2


def test_the_secret_scan_finds_a_planted_password_and_token(sandbox: SandboxServer) -> None:
    """The scan every test ends with would catch a leak: it is not vacuous."""
    scan = SecretScan([SANDBOX_PASSWORD])
    scan.watch(sandbox)
    with SalesExecClient(sandbox.base_url, SANDBOX_USERNAME, SANDBOX_PASSWORD) as client:
        client.lead_types()  # logs in
    (token,) = sandbox.issued_tokens
    scan.add("clean", "nothing to see")
    scan.add("log", f"header AuthToken: {token}")
    scan.add("error", f"login failed for password={SANDBOX_PASSWORD}")
    assert scan.leaks() == ["token in log", "password in error"]
