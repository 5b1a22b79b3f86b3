"""The update methods, run for real: sandbox over HTTP, Dagster runs, each destination
(a DuckDB file, a real Postgres database)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, Definitions, instance_for_test

from salesexec_assets.api.contract import LEAD_TYPE_UID, REPORTS_BY_NAME
from salesexec_assets.records import table_spec
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.settings import Settings
from salesexec_assets.warehouse import LOADED_AT_COLUMN, RUN_ID_COLUMN, Warehouse
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.scheduling_support import (
    build_test_definitions,
    make_settings,
    run_assets,
    sandbox_account,
)

ALL_LEADS = AssetKey(["salesexec", "all_leads"])
LAST_UPDATED = AssetKey(["salesexec", "last_updated_leads"])
LEADS = AssetKey(["salesexec", "leads"])
DAY = date(2026, 2, 10)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2026-02-10",
    "dagster/asset_partition_range_end": "2026-02-12",
}


@dataclass
class Deployment:
    """A sandbox account, a Dagster instance and a destination shared by a test's runs."""

    server: SandboxServer
    instance: DagsterInstance
    settings: Settings
    destination: Destination

    def definitions(self, reports: dict[str, Any]) -> Definitions:
        return build_test_definitions(self.settings, {"reports": reports})

    @property
    def warehouse(self) -> Warehouse:
        return self.destination.warehouse()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self.warehouse.query(sql, params)

    def leads_added_on(self, day: date) -> int:
        start = datetime.combine(day, datetime.min.time())
        return sum(
            len(
                self.server.truth(
                    "all_leads", lead_type[LEAD_TYPE_UID], start, start + timedelta(days=1)
                )
            )
            for lead_type in self.server.data.lead_types()
        )


@pytest.fixture
def deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, destination: Destination
) -> Iterator[Deployment]:
    with sandbox_account(monkeypatch) as server, instance_for_test() as instance:
        settings = make_settings(tmp_path, base_url=server.base_url, start_date=date(2026, 1, 1))
        if destination.path is not None:  # the DuckDB variant: the settings' own file
            destination = Destination.duckdb_file(settings.duckdb_path)
        else:
            for name, value in destination.env.items():
                monkeypatch.setenv(name, value)
            settings = replace(
                settings, warehouse=destination.location, has_warehouse_password=True
            )
        yield Deployment(server, instance, settings, destination)


def test_replace_keeps_one_copy_of_a_day_however_often_it_runs(deployment: Deployment) -> None:
    defs = deployment.definitions({"all_leads": {"update_method": "replace"}})
    for _ in range(2):
        run_assets(defs, [ALL_LEADS], deployment.instance, partition_key=str(DAY))
    rows = deployment.query("SELECT count(*) AS n FROM salesexec.all_leads")["n"][0]
    assert rows == deployment.leads_added_on(DAY) > 0


def test_append_keeps_every_pull_stamped_with_its_load_time(deployment: Deployment) -> None:
    defs = deployment.definitions({"all_leads": {"update_method": "append"}})
    for _ in range(2):
        run_assets(defs, [ALL_LEADS], deployment.instance, partition_key=str(DAY))
    pulls = deployment.query(
        "SELECT _loaded_at, count(*) AS n, count(DISTINCT lead_uid) AS leads "
        "FROM salesexec.all_leads GROUP BY _loaded_at ORDER BY _loaded_at"
    )
    expected = deployment.leads_added_on(DAY)
    assert len(pulls) == 2
    assert list(pulls["n"]) == [expected, expected]
    assert list(pulls["leads"]) == [expected, expected]
    assert pulls["_loaded_at"].iloc[0] < pulls["_loaded_at"].iloc[1]


def current_leads(deployment: Deployment) -> pd.DataFrame:
    frame = deployment.query("SELECT * FROM salesexec.leads ORDER BY lead_uid")
    return frame.drop(columns=[LOADED_AT_COLUMN, RUN_ID_COLUMN])


def test_merge_keeps_one_row_per_lead_with_the_newest_values(deployment: Deployment) -> None:
    merge = {"update_method": "merge"}
    defs = deployment.definitions({"all_leads": merge, "last_updated_leads": merge})
    instance = deployment.instance
    run_assets(defs, [ALL_LEADS, LAST_UPDATED, LEADS], instance, tags=RANGE_TAGS)

    sources = deployment.query(
        "SELECT lead_uid, max(last_updated_utc) AS newest FROM ("
        "SELECT lead_uid, last_updated_utc FROM salesexec.all_leads UNION ALL "
        "SELECT lead_uid, last_updated_utc FROM salesexec.last_updated_leads) AS s "
        "GROUP BY lead_uid ORDER BY lead_uid"
    )
    merged = current_leads(deployment)
    assert len(merged) == len(sources) > 0
    assert merged["lead_uid"].is_unique
    assert list(merged["last_updated_utc"]) == list(sources["newest"])

    # SalesExec updates a lead later: its Last Updated Leads row is newer than the rest
    lead_uid, added_day = deployment.query(
        "SELECT lead_uid, partition_date FROM salesexec.all_leads ORDER BY lead_uid LIMIT 1"
    ).iloc[0]
    newer = merged.set_index("lead_uid").loc[lead_uid, "last_updated_utc"] + timedelta(days=30)
    changed = deployment.query(
        "SELECT * FROM salesexec.all_leads WHERE lead_uid = ?", [int(lead_uid)]
    ).drop(columns=[LOADED_AT_COLUMN, RUN_ID_COLUMN])
    changed["last_updated_utc"] = newer
    changed["lead_status_name"] = "Changed later"
    changed["partition_date"] = date(2026, 2, 12)
    deployment.warehouse.write_frame(  # appended beside that day's rows
        table_spec(REPORTS_BY_NAME["last_updated_leads"]),
        changed.dropna(axis="columns"),
        replace_partitions=None,
        run_id="changed-later",
        loaded_at=datetime(2026, 2, 12),
    )
    run_assets(defs, [LEADS], instance, partition_key="2026-02-12")
    row = current_leads(deployment).set_index("lead_uid").loc[lead_uid]
    assert (row["lead_status_name"], row["last_updated_utc"]) == ("Changed later", newer)

    # re-pulling the older snapshot (the day the lead was added) does not undo the update
    added = pd.Timestamp(added_day).date()
    run_assets(defs, [ALL_LEADS, LEADS], instance, partition_key=str(added))
    row = current_leads(deployment).set_index("lead_uid").loc[lead_uid]
    assert row["lead_status_name"] == "Changed later"

    # re-running is harmless: same rows, same values
    before = current_leads(deployment)
    run_assets(defs, [LEADS], instance, tags=RANGE_TAGS)
    pd.testing.assert_frame_equal(current_leads(deployment), before)


def test_partition_retention_drops_exactly_the_partitions_older_than_the_window(
    deployment: Deployment,
) -> None:
    today = datetime.now(timezone.utc).date()
    days = [today - timedelta(days=back) for back in range(5, -1, -1)]
    loaded = deployment.definitions({})
    run_assets(
        loaded,
        [ALL_LEADS],
        deployment.instance,
        tags={
            "dagster/asset_partition_range_start": str(days[0]),
            "dagster/asset_partition_range_end": str(days[-1]),
        },
    )
    kept = deployment.definitions(
        {"all_leads": {"update_method": "partition", "retention_days": 3}}
    )
    result = run_assets(kept, [ALL_LEADS], deployment.instance, partition_key=str(today))
    [materialization] = result.asset_materializations_for_node("salesexec__all_leads")
    assert materialization.metadata["partitions_dropped"].value == [str(d) for d in days[:3]]
    assert materialization.metadata["retention_days"].value == 3
    remaining = deployment.query(
        "SELECT DISTINCT partition_date FROM salesexec.all_leads ORDER BY 1"
    )["partition_date"]
    assert [pd.Timestamp(value).date() for value in remaining] == days[3:]
