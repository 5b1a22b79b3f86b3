"""The Dagster UI end to end (GitHub issue 7): ``dagster dev``, a backfill, a browser.

One ``dagster dev`` serves the whole module: started in the repository root (so it loads
``workspace.yaml``) on a free loopback port, with a temporary ``DAGSTER_HOME`` (holding
the repository's ``dagster_home/dagster.yaml``) and DuckDB file, and no SalesExec
credentials, so every run reads the embedded sandbox. Its ground truth is a pure function
of the sandbox config, so this process recomputes it.

The backfill is launched as the UI launches one, with the GraphQL mutation
``launchPartitionBackfill`` (asset selection + partition names) against the running
webserver; the daemon of ``dagster dev`` executes it. The range is the last
:data:`BACKFILL_DAYS` UTC days, today included.

Why two backfills: ``leads_awaiting_import_count`` only knows "now", so it writes only
the partition of the day its run was launched and skips the others (materialized with
``skipped: past partition`` metadata, nothing written). The test backfills all six
reports over the range, today included (one run, thanks to
``BackfillPolicy.single_run()``: the "now" report writes today's count and skips the
past days), and, at once, the "now" report alone over the past days only (its own run,
which must complete successfully and write nothing). Both share the DuckDB file.

Then: the tables hold exactly the sandbox's rows for those days (row for row, every
contract field), the UI's GraphQL shows metadata and passing checks, and headless
Chromium renders the asset page of ``salesexec/all_leads`` with the materialized
partitions; its screenshot is saved to ``test-artifacts/`` (and to ``docs/img/`` with
``SALESEXEC_UPDATE_SCREENSHOT=1``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from salesexec_assets.api.contract import REPORTS, Pull
from salesexec_assets.assets import GROUP_NAME
from salesexec_assets.records import PARTITION_COLUMN, table_spec
from salesexec_assets.resources import SalesExecResource
from salesexec_assets.sandbox import SandboxConfig
from salesexec_assets_tests.e2e_browser import headless_chromium, require_browser
from salesexec_assets_tests.e2e_dagster import (
    LOCATION_NAME,
    REPO_ROOT,
    Backfill,
    DagsterDev,
    dagster_dev,
    definition_load_warnings,
    describe,
    launch_backfill,
    location_status,
    project_warnings,
    wait_for_backfills,
    wait_until_clear_of_midnight,
)
from salesexec_assets_tests.e2e_truth import (
    NOW_ONLY,
    asset_path,
    compare_with_truth,
    last_days,
    moments_between,
    read_only,
)

pytestmark = pytest.mark.e2e

ZONE = "UTC"
BACKFILL_DAYS = 3
LOAD_TIMEOUT_SECONDS = 120.0
BACKFILL_TIMEOUT_SECONDS = 240.0
PAGE_TIMEOUT_SECONDS = 60.0

ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOT_NAME = "all_leads_asset_page.png"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "img" / SCREENSHOT_NAME
UPDATE_SCREENSHOT_VAR = "SALESEXEC_UPDATE_SCREENSHOT"
DEFINITIONS_MODULE = "salesexec_assets.definitions"

ALL_LEADS = next(report for report in REPORTS if report.name == "all_leads")


def sandbox_config() -> SandboxConfig:
    """The embedded sandbox's data: the resource's default volume."""
    return SandboxConfig(leads_per_day=SalesExecResource().sandbox_leads_per_day)



def isolated_environment(tmp: Path) -> dict[str, str]:
    """This process's environment with every ``SALESEXEC_*`` variable set for the test:
    no credentials (the embedded sandbox), a temporary DuckDB file and scheduling file."""
    scheduling = tmp / "salesexec.yaml"
    scheduling.write_text("{}\n", encoding="utf-8")  # every report manual
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESEXEC_", "DAGSTER_"))}
    env.update(
        {
            "SALESEXEC_BASE_URL": "",
            "SALESEXEC_USERNAME": "",
            "SALESEXEC_PASSWORD": "",
            "SALESEXEC_LEAD_TYPE_UIDS": "",
            "SALESEXEC_START_DATE": "",
            "SALESEXEC_TIMEZONE": ZONE,
            "SALESEXEC_DUCKDB_PATH": str(tmp / "warehouse.duckdb"),
            "SALESEXEC_CONFIG": str(scheduling),
            # Surface DeprecationWarnings too, so that the project's own are seen.
            "PYTHONWARNINGS": "default",
        }
    )
    return env


def refuse_overriding_dotenv() -> None:
    """``dagster dev`` loads ``.env`` from its working directory OVER the environment."""
    dotenv = REPO_ROOT / ".env"
    if not dotenv.exists():
        return
    overriding = sorted(
        name for name in dotenv_values(dotenv) if name.startswith(("SALESEXEC_", "DAGSTER_"))
    )
    if overriding:
        pytest.fail(
            f"{dotenv} sets {', '.join(overriding)}; dagster dev would load them over this "
            "test's environment (credentials, DuckDB file). Move the file away to run the test.",
            pytrace=False,
        )


@dataclass(frozen=True)
class Backfilled:
    """The two backfills a user launches, once both are done."""

    dev: DagsterDev
    warehouse: Path
    days: list[date]
    today: date
    windowed: Backfill
    now_only: Backfill
    started: datetime  # naive UTC, before the backfills were launched


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    """``dagster dev`` from the repository root; stopped (whole process group) after."""
    refuse_overriding_dotenv()
    tmp = tmp_path_factory.mktemp("dagster_ui")
    log_path = tmp / "dagster-dev.log"
    try:
        with dagster_dev(
            tmp / "dagster_home",
            isolated_environment(tmp),
            log_path,
            load_timeout=LOAD_TIMEOUT_SECONDS,
        ) as dev:
            yield dev
    finally:
        if log_path.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copyfile(log_path, ARTIFACTS / "dagster-dev.log")


@pytest.fixture(scope="module")
def backfilled(dagster_ui: DagsterDev) -> Backfilled:
    wait_until_clear_of_midnight()
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    today = started.date()
    days = last_days(BACKFILL_DAYS, today)
    windowed_id = launch_backfill(
        dagster_ui,
        [asset_path(report) for report in REPORTS],
        [str(day) for day in days],
        title=f"e2e: all {len(REPORTS)} reports, {days[0]}..{days[-1]}",
    )
    now_id = launch_backfill(
        dagster_ui,
        [asset_path(report) for report in NOW_ONLY],
        [str(day) for day in days[:-1]],
        title=f"e2e: the 'now' report over past days, {days[0]}..{days[-2]}",
    )
    states = wait_for_backfills(dagster_ui, [windowed_id, now_id], BACKFILL_TIMEOUT_SECONDS)
    warehouse = Path(dagster_ui.env["SALESEXEC_DUCKDB_PATH"])
    return Backfilled(
        dagster_ui, warehouse, days, today, states[windowed_id], states[now_id], started
    )


# --- the code location ----------------------------------------------------------------


def test_dagster_dev_in_the_repository_root_loads_the_code_location_from_workspace_yaml(
    dagster_ui: DagsterDev,
) -> None:
    status, error = location_status(dagster_ui)
    assert (status, error) == ("LOADED", None)


ASSETS_QUERY = """
query Assets {
  assetNodes {
    assetKey { path }
    groupName
    description
    kinds
    isPartitioned
    partitionDefinition { type description }
    partitionKeyConnection(limit: 1, ascending: false) { results }
    backfillPolicy { policyType }
    repository { name location { name } }
  }
}
"""


def test_ui_lists_the_six_report_assets_in_their_group_with_descriptions_kinds_and_partitions(
    dagster_ui: DagsterDev,
) -> None:
    nodes = {
        tuple(node["assetKey"]["path"]): node
        for node in dagster_ui.graphql(ASSETS_QUERY)["assetNodes"]
    }
    today = str(datetime.now(timezone.utc).date())
    for report in REPORTS:
        node = nodes.get(asset_path(report))
        assert node is not None, f"{asset_path(report)} not in the UI; assets: {sorted(nodes)}"
        assert node["repository"]["location"]["name"] == LOCATION_NAME
        assert node["groupName"] == GROUP_NAME
        spec = table_spec(report)
        assert report.title in node["description"]
        assert f"{spec.schema}.{spec.name}" in node["description"]
        assert "duckdb" in node["kinds"]
        assert node["isPartitioned"]
        assert node["partitionDefinition"]["type"] == "TIME_WINDOW"
        assert node["partitionDefinition"]["description"].startswith("Daily")
        assert node["partitionKeyConnection"]["results"] == [today]
        assert node["backfillPolicy"]["policyType"] == "SINGLE_RUN"


AUTOMATION_QUERY = """
query Automation {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        schedules { name description }
        sensors { name description }
      }
    }
    ... on PythonError { message }
  }
}
"""


def test_ui_lists_schedules_and_sensors_with_names(dagster_ui: DagsterDev) -> None:
    answer = dagster_ui.graphql(AUTOMATION_QUERY)["repositoriesOrError"]
    assert answer["__typename"] == "RepositoryConnection", answer
    repositories = [r for r in answer["nodes"] if r["location"]["name"] == LOCATION_NAME]
    assert len(repositories) == 1
    for item in [*repositories[0]["schedules"], *repositories[0]["sensors"]]:
        assert item["name"].strip()


# --- the backfill ---------------------------------------------------------------------


def test_backfill_of_all_six_reports_over_a_range_completes_in_one_run(
    backfilled: Backfilled,
) -> None:
    backfill = backfilled.windowed
    assert backfill.status == "COMPLETED_SUCCESS", describe(backfill)
    assert len(backfill.runs) == 1, f"single-run policy, yet {describe(backfill)}"
    (run,) = backfill.runs
    assert run.status == "SUCCESS", describe(backfill)
    assert run.asset_keys == {asset_path(report) for report in REPORTS}
    assert run.tags.get("dagster/asset_partition_range_start") == str(backfilled.days[0])
    assert run.tags.get("dagster/asset_partition_range_end") == str(backfilled.days[-1])
    assert run.tags.get("dagster/backfill") == backfill.backfill_id


def test_backfill_of_the_now_only_report_over_past_days_succeeds_and_says_it_skipped_them(
    backfilled: Backfilled,
) -> None:
    """Nothing written (the tables test finds today's snapshot only), and the UI shows
    each past partition materialized with ``skipped: past partition``."""
    backfill = backfilled.now_only
    assert backfill.status == "COMPLETED_SUCCESS", describe(backfill)
    assert len(backfill.runs) == 1, describe(backfill)
    (run,) = backfill.runs
    assert run.status == "SUCCESS"
    assert run.asset_keys == {asset_path(report) for report in NOW_ONLY}
    keys = [{"path": list(asset_path(report))} for report in NOW_ONLY]
    (node,) = backfilled.dev.graphql(
        MATERIALIZATIONS_QUERY, {"keys": keys, "partition": str(backfilled.days[0])}
    )["assetNodes"]
    (materialization,) = node["latestMaterializationByPartition"]
    # the backfill of all six reports skips that past day too, and may have run after
    skipping_runs = {run.run_id} | {r.run_id for r in backfilled.windowed.runs}
    assert materialization is not None and materialization["runId"] in skipping_runs
    metadata = {e["label"]: entry_value(e) for e in materialization["metadataEntries"]}
    assert metadata["skipped"] == "past partition", metadata
    assert f"nothing was written for {backfilled.days[0]}" in metadata["skipped_reason"]
    if materialization["runId"] == run.run_id:  # past days only: nothing written at all
        assert metadata["rows_written"] == 0, metadata


def test_duckdb_tables_hold_exactly_the_sandbox_rows_of_the_backfilled_days(
    backfilled: Backfilled,
) -> None:
    # today fills in while the backfills run: each day equals the truth of some moment
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    moments = moments_between(sandbox_config(), backfilled.started, now)
    problems, rows = compare_with_truth(
        backfilled.warehouse, moments, backfilled.days, backfilled.today, ZONE
    )
    assert problems == [], "\n".join(problems[:20])
    assert all(rows[report.name] > 0 for report in REPORTS), rows


MATERIALIZATIONS_QUERY = """
query Materializations($keys: [AssetKeyInput!], $partition: String!) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    latestMaterializationByPartition(partitions: [$partition]) {
      runId
      metadataEntries {
        label
        ... on IntMetadataEntry { intValue }
        ... on TextMetadataEntry { text }
        ... on FloatMetadataEntry { floatValue }
      }
    }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization { status runId evaluation { success } }
        }
      }
    }
  }
}
"""
METADATA_SHOWN = (
    "dagster/row_count",
    "rows_in_partitions",
    "window_utc",
    "api_requests",
    "api_retries",
)


def entry_value(entry: dict[str, Any]) -> Any:
    for field in ("intValue", "text", "floatValue"):
        if entry.get(field) is not None:
            return entry[field]
    return None


def test_ui_shows_each_materialization_with_row_counts_window_requests_and_passing_checks(
    backfilled: Backfilled,
) -> None:
    keys = [{"path": list(asset_path(report))} for report in REPORTS]
    nodes = backfilled.dev.graphql(
        MATERIALIZATIONS_QUERY, {"keys": keys, "partition": str(backfilled.today)}
    )["assetNodes"]
    runs = {run.run_id for b in (backfilled.windowed, backfilled.now_only) for run in b.runs}
    by_name = {node["assetKey"]["path"][-1]: node for node in nodes}
    with read_only(backfilled.warehouse) as connection:
        for report in REPORTS:
            node = by_name[report.name]
            (materialization,) = node["latestMaterializationByPartition"]
            assert materialization is not None, f"{report.name}: no materialization of today"
            assert materialization["runId"] in runs
            metadata = {e["label"]: entry_value(e) for e in materialization["metadataEntries"]}
            assert set(METADATA_SHOWN) <= set(metadata), f"{report.name}: {sorted(metadata)}"
            days = [backfilled.today] if report.pull is Pull.NOW else backfilled.days
            in_table = connection.execute(
                f"SELECT count(*) FROM {table_spec(report).qualified_name} "
                f"WHERE {PARTITION_COLUMN} BETWEEN ? AND ?",
                [days[0], days[-1]],
            ).fetchone()
            assert in_table is not None
            assert metadata["rows_in_partitions"] == in_table[0], report.name
            assert metadata["api_requests"] > 0 and metadata["api_retries"] == 0
            if report.pull is Pull.RECORDS:
                assert metadata["window_utc"] == (
                    f"[{days[0]}T00:00:00Z, {days[-1] + timedelta(days=1)}T00:00:00Z)"
                )
            checks = node["assetChecksOrError"]
            assert checks["__typename"] == "AssetChecks" and checks["checks"], report.name
            for check in checks["checks"]:
                execution = check["executionForLatestMaterialization"]
                assert execution is not None, f"{report.name}: {check['name']} never ran"
                assert execution["status"] == "SUCCEEDED", f"{report.name}: {check}"
                assert execution["evaluation"]["success"], f"{report.name}: {check}"


# --- the browser ----------------------------------------------------------------------


def dismiss_dialogs(driver: WebDriver) -> None:
    """The first-visit "Join the Dagster community" dialog, should it show."""
    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        with suppress(WebDriverException):
            button.click()


def test_asset_page_of_all_leads_in_chromium_shows_the_materialized_partitions(
    backfilled: Backfilled, tmp_path: Path
) -> None:
    require_browser()
    today, days = backfilled.today, backfilled.days
    url = (
        f"{backfilled.dev.url}/assets/{'/'.join(asset_path(ALL_LEADS))}"
        f"?view=partitions&partition={today}"
    )
    expected = (f"Materialized ({len(days)})", "rows_in_partitions", "window_utc")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / SCREENSHOT_NAME
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        driver.get(url)

        def rendered(_: Any) -> bool:
            dismiss_dialogs(driver)
            text = driver.find_element(By.TAG_NAME, "body").text
            return all(piece in text for piece in expected)

        try:
            WebDriverWait(driver, PAGE_TIMEOUT_SECONDS, poll_frequency=1.0).until(rendered)
        except TimeoutException:
            driver.save_screenshot(str(ARTIFACTS / "all_leads_asset_page.failure.png"))
            text = driver.find_element(By.TAG_NAME, "body").text
            pytest.fail(f"{url} did not show {expected} in {PAGE_TIMEOUT_SECONDS:.0f} s:\n{text}")
        time.sleep(1.0)  # let the last images and fonts settle for the screenshot
        dismiss_dialogs(driver)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert driver.save_screenshot(str(screenshot))

        # Hide the missing partitions: the list then holds exactly the backfilled days.
        day_before = str(days[0] - timedelta(days=1))
        driver.find_element(By.XPATH, "//label[contains(normalize-space(), 'Missing (')]").click()
        try:
            WebDriverWait(driver, PAGE_TIMEOUT_SECONDS, poll_frequency=0.5).until(
                lambda d: day_before not in d.find_element(By.TAG_NAME, "body").text
            )
        except TimeoutException:
            driver.save_screenshot(str(ARTIFACTS / "all_leads_asset_page.failure.png"))
            raise
        listed = driver.find_element(By.TAG_NAME, "body").text

    assert "Failed (0)" in text and f"Materialized ({len(days)})" in text
    assert "embedded sandbox" in text  # the metadata says where the data came from
    assert all(str(day) in listed for day in days)
    assert screenshot.stat().st_size > 10_000
    if os.environ.get(UPDATE_SCREENSHOT_VAR) == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)


# --- warnings about the project's own code ------------------------------------------


def test_loading_the_definitions_raises_no_warnings(tmp_path: Path) -> None:
    """What the code server does at load, in a fresh interpreter, every warning recorded
    (Dagster's BetaWarnings name Dagster's own files, so the output check below misses
    them)."""
    assert definition_load_warnings(isolated_environment(tmp_path), DEFINITIONS_MODULE) == []


def test_warning_scan_finds_project_warnings_in_both_forms_dagster_dev_prints() -> None:
    log = (
        "/site-packages/click/core.py:877: SupersessionWarning: Function `dev_command` ...\n"
        "2026-11-27 - dagster - WARNING - /work/main/salesexec_assets/assets.py:30: "
        "BetaWarning: Parameter `x` is currently in beta\n"
        "/work/main/salesexec_assets/checks.py:12: DeprecationWarning: old\n"
        '  File "/work/main/salesexec_assets/assets.py", line 71, in refuse\n'
    )
    found = project_warnings(log)
    assert len(found) == 2
    assert "salesexec_assets/assets.py:30: BetaWarning" in found[0]
    assert found[1].startswith("/work/main/salesexec_assets/checks.py:12: DeprecationWarning")


def test_dagster_dev_output_has_no_warnings_from_the_projects_own_code(
    dagster_ui: DagsterDev,
) -> None:
    """Last in the module, so that the output of the runs is searched too."""
    assert dagster_ui.project_warnings() == []
