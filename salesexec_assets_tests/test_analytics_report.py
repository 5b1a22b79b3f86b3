"""The daily HTML report: written by the asset from the analytics tables of each
destination (DuckDB and Postgres), one self-contained file that headless Chromium opens
with no console error and no request other than the file itself, and prints on a few
pages. Its screenshot goes to ``test-artifacts/`` (and to ``docs/img/`` with
``SALESEXEC_UPDATE_SCREENSHOT=1``)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import statistics
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions

from salesexec_assets.analytics.report_asset import REPORT_ASSET_KEY
from salesexec_assets_tests.analytics_truth import days_between, speed_to_lead, truth_records
from salesexec_assets_tests.conftest import RunAssets
from salesexec_assets_tests.destinations import DUCKDB, Destination
from salesexec_assets_tests.e2e_browser import headless_chromium, require_browser
from salesexec_assets_tests.e2e_dagster import REPO_ROOT
from salesexec_assets_tests.test_analytics import ANALYTICS, RAW
from salesexec_assets_tests.test_analytics import defs as defs  # the fixture
from salesexec_assets_tests.test_ui_e2e import UPDATE_SCREENSHOT_VAR

REPORT_DAY = date(2026, 11, 14)
FIRST_DAY = date(2026, 11, 1)
LAST_ACTION_DAY = REPORT_DAY + timedelta(days=10)  # most first contacts come days later
SCREENSHOT = REPO_ROOT / "docs" / "img" / "salesexec_report.png"
ARTIFACTS = REPO_ROOT / "test-artifacts"
# Read before the fixtures clear every SALESEXEC_* variable of the environment.
UPDATE_SCREENSHOT = os.environ.get(UPDATE_SCREENSHOT_VAR) == "1"


@pytest.fixture
def report_file(
    sandbox,
    destination: Destination,
    defs: Definitions,
    run_assets: RunAssets,
    tmp_path: Path,
) -> tuple[Path, object]:
    """The reports of FIRST_DAY..LAST_ACTION_DAY, then the models and the HTML report of
    FIRST_DAY..REPORT_DAY, written into tmp; the tables go to ``destination``."""
    raw = run_assets(defs, RAW, partition_range=(str(FIRST_DAY), str(LAST_ACTION_DAY)))
    assert raw.success
    config = {"resources": {"reports": {"config": {"directory": str(tmp_path / "reports")}}}}
    result = run_assets(
        defs,
        [*ANALYTICS, REPORT_ASSET_KEY],
        partition_range=(str(FIRST_DAY), str(REPORT_DAY)),
        run_config=config,
    )
    assert result.success
    return tmp_path / "reports" / f"salesexec-{REPORT_DAY}.html", result


def test_the_report_asset_writes_one_self_contained_file_per_day_with_its_figures(
    sandbox, report_file: tuple[Path, object], dagster_instance: DagsterInstance
) -> None:
    path, _ = report_file
    reports = sorted(path.parent.glob("salesexec-*.html"))
    assert [p.name for p in reports] == [
        f"salesexec-{d}.html" for d in days_between(FIRST_DAY, REPORT_DAY)
    ]
    html = path.read_text(encoding="utf-8")
    # nothing to fetch: no script, no stylesheet or image link, no URL but the SVG namespace
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(", html, re.IGNORECASE)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert html.count("<svg") == 4 and "<table>" in html  # four charts and the leaderboard
    assert len(html.encode()) < 200_000

    leads = truth_records(sandbox, "all_leads", [REPORT_DAY])
    actions = truth_records(sandbox, "all_actions", days_between(REPORT_DAY, LAST_ACTION_DAY))
    minutes = [
        row["minutes_to_first_contact"]
        for row in speed_to_lead(leads, actions)
        if row["minutes_to_first_contact"] is not None
    ]
    event = dagster_instance.get_latest_materialization_event(REPORT_ASSET_KEY)
    assert event is not None
    events = dagster_instance.fetch_materializations(REPORT_ASSET_KEY, limit=100).records
    by_day = {
        record.asset_materialization.partition: record.asset_materialization.metadata
        for record in events
    }
    metadata = by_day[str(REPORT_DAY)]
    assert metadata["leads_added"].value == len(leads)
    won = sum(lead["LifeCycleStageName"] == "Closed Won" for lead in leads)
    lost = sum(lead["LifeCycleStageName"] == "Closed Lost" for lead in leads)
    if won + lost:
        assert metadata["win_rate"].value == pytest.approx(won / (won + lost), abs=1e-4)
    assert metadata["median_minutes_to_first_contact"].value == pytest.approx(
        statistics.median(minutes), abs=1e-4
    )
    assert Path(metadata["path"].value) == path.resolve()
    assert "leads added" in metadata["summary"].value
    # each day's event carries its own day's figures
    assert by_day[str(FIRST_DAY)]["leads_added"].value == len(
        truth_records(sandbox, "all_leads", [FIRST_DAY])
    )


# The browser tests the HTML, which does not depend on where the tables are: DuckDB only.
@pytest.mark.parametrize("destination", [DUCKDB], indirect=True)
def test_the_report_opens_offline_in_chromium_without_errors_or_requests(
    report_file: tuple[Path, object], tmp_path: Path
) -> None:
    require_browser()
    path, _ = report_file
    url = path.resolve().as_uri()
    with headless_chromium(tmp_path / "profile", logs=True) as driver:
        driver.set_window_size(900, 2400)
        driver.get("about:blank")
        driver.get_log("performance")  # drop what the browser's start page loaded
        driver.get_log("browser")
        driver.get(url)
        assert driver.title.startswith("SalesExec lead report")
        assert len(driver.find_elements("css selector", "svg.chart")) == 4
        console = [entry for entry in driver.get_log("browser") if entry["level"] != "DEBUG"]
        requests = [
            json.loads(entry["message"])["message"] for entry in driver.get_log("performance")
        ]
        urls = {
            event["params"]["request"]["url"]
            for event in requests
            if event["method"] == "Network.requestWillBeSent"
        }
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / SCREENSHOT.name
        assert driver.save_screenshot(str(shot))
        pdf = base64.b64decode(driver.print_page())  # printed: A4/Letter, as a user would
        (ARTIFACTS / "salesexec_report.pdf").write_bytes(pdf)
    assert console == [], console
    assert urls == {url}, urls
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert 1 <= pages <= 4, f"the printed report has {pages} pages"
    assert shot.stat().st_size > 20_000
    if UPDATE_SCREENSHOT:
        shutil.copyfile(shot, SCREENSHOT)
