"""The analytics models, computed by the pipeline from sandbox data, against the same
figures computed independently from the sandbox's ground truth (``analytics_truth``).

The raw report assets are materialized from a real sandbox, then the analytics assets,
in process, into a real DuckDB file; the models' SQL also runs on the real PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    evaluate_automation_conditions,
)

from salesexec_assets.analytics import queries
from salesexec_assets.analytics.assets import (
    ANALYTICS_GROUP,
    FUNNEL_LEADS_ADDED,
    NO_NEGATIVE_MINUTES,
    ONE_ROW_PER_LEAD,
    model_asset_key,
)
from salesexec_assets.analytics.models import (
    ANALYTICS_SCHEMA,
    LEAD_FUNNEL_DAILY,
    MODELS,
    REP_ACTIVITY_DAILY,
    SPEED_TO_LEAD,
    Model,
)
from salesexec_assets.api.contract import REPORTS_BY_NAME
from salesexec_assets.assets import report_asset_key
from salesexec_assets.definitions import build_definitions
from salesexec_assets.partitions import today_in
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.settings import load_settings
from salesexec_assets.warehouse import DuckDBWarehouse
from salesexec_assets_tests import analytics_truth as truth
from salesexec_assets_tests.conftest import PointEnv, RunAssets
from salesexec_assets_tests.postgres_server import PostgresServer
from salesexec_assets_tests.scheduling_support import build_test_definitions
from salesexec_assets_tests.truth import stored_rows

FIRST_DAY = date(2026, 11, 2)
LAST_DAY = date(2026, 11, 5)
RAW = [report_asset_key(REPORTS_BY_NAME[name]) for name in ("all_leads", "all_actions")]
ANALYTICS = [model_asset_key(model) for model in MODELS]


@pytest.fixture
def defs(sandbox: SandboxServer, point_env_at: PointEnv) -> Definitions:
    point_env_at(sandbox)
    return build_definitions(load_settings())


def run_range(
    run_assets: RunAssets, defs: Definitions, keys: Sequence[AssetKey], first: date, last: date
) -> ExecuteInProcessResult:
    result = run_assets(defs, keys, partition_range=(str(first), str(last)))
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return result


def model_rows(path: Path, model: Model) -> list[dict[str, Any]]:
    return stored_rows(path, model.name, schema=ANALYTICS_SCHEMA)


def keyed(rows: Iterable[dict[str, Any]], model: Model) -> dict[tuple[Any, ...], dict[str, Any]]:
    indexed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["partition_date"], *(row[name] for name in model.grain))
        assert key not in indexed, f"{model.name}: two rows for {key}"
        indexed[key] = {name: row[name] for name in model.columns}
    return indexed


def same_value(have: Any, want: Any) -> bool:
    if isinstance(want, float) and have is not None:
        return math.isclose(have, want, rel_tol=1e-12, abs_tol=1e-9)
    return have == want


def assert_model_equals(
    have: Iterable[dict[str, Any]], want: Iterable[dict[str, Any]], model: Model
) -> None:
    """Row for row (on the model's grain) and value for value."""
    got, expected = keyed(have, model), keyed(want, model)
    missing, extra = (
        sorted(set(expected) - set(got), key=str),
        sorted(set(got) - set(expected), key=str),
    )
    assert not missing and not extra, (
        f"{model.name}: missing {missing[:3]}, not in truth {extra[:3]}"
    )
    for key, row in expected.items():
        for column, value in row.items():
            assert same_value(got[key][column], value), (
                f"{model.name} {key} {column}: table {got[key][column]!r}, truth {value!r}"
            )


def expected_models(
    server: SandboxServer, lead_days: Sequence[date], action_days: Sequence[date]
) -> dict[str, list[dict[str, Any]]]:
    """The three models' rows for ``lead_days`` when the actions of ``action_days`` are stored."""
    leads = truth.truth_records(server, "all_leads", lead_days)
    actions = truth.truth_records(server, "all_actions", action_days)
    speed = truth.speed_to_lead(leads, actions)
    return {
        SPEED_TO_LEAD.name: speed,
        LEAD_FUNNEL_DAILY.name: truth.lead_funnel_daily(leads, speed),
        REP_ACTIVITY_DAILY.name: truth.rep_activity_daily(
            [a for a in actions if a["_day"] in set(lead_days)]
        ),
    }


def analytics_check_results(result: ExecuteInProcessResult) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.asset_key in ANALYTICS
    }


def test_every_model_equals_the_figures_computed_from_the_sandbox_truth(
    sandbox: SandboxServer,
    defs: Definitions,
    run_assets: RunAssets,
    warehouse_path: Path,
    dagster_instance: DagsterInstance,
) -> None:
    result = run_range(run_assets, defs, [*RAW, *ANALYTICS], FIRST_DAY, LAST_DAY)
    days = truth.days_between(FIRST_DAY, LAST_DAY)
    expected = expected_models(sandbox, days, days)
    for model in MODELS:
        assert_model_equals(model_rows(warehouse_path, model), expected[model.name], model)
    # the data holds the cases the definitions single out
    funnel = expected[LEAD_FUNNEL_DAILY.name]
    assert any(row["lead_source_name"] is None for row in funnel), "no lead without a source"
    assert any(row["campaign_name"] is None for row in funnel), "no lead without a campaign"
    assert any(row["branch_name"] is None for row in funnel), "no lead without a branch"
    assert any(row["first_contact_utc"] is None for row in expected[SPEED_TO_LEAD.name])
    assert any(row["win_rate"] is None for row in funnel)
    assert analytics_check_results(result) == {
        FUNNEL_LEADS_ADDED: True,
        ONE_ROW_PER_LEAD: True,
        NO_NEGATIVE_MINUTES: True,
    }
    # one range run, yet each day's materialization carries that day's figures (UI plots)
    events = dagster_instance.fetch_materializations(model_asset_key(LEAD_FUNNEL_DAILY), limit=10)
    plotted = {
        record.asset_materialization.partition: record.asset_materialization.metadata
        for record in events.records
    }
    for day in days:
        want = [row for row in funnel if row["partition_date"] == day]
        got = plotted[str(day)]
        assert got["leads_added"].value == sum(row["leads_added"] for row in want)
        assert got["leads_contacted"].value == sum(row["leads_contacted"] for row in want)


def test_a_model_run_before_its_reports_fails_naming_them_and_writes_nothing(
    defs: Definitions, run_assets: RunAssets, warehouse_path: Path
) -> None:
    result = run_assets(defs, [model_asset_key(SPEED_TO_LEAD)], partition=str(FIRST_DAY))
    assert not result.success
    failures = " ".join(
        str(event.step_failure_data.error.message)
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error
    )
    assert "salesexec/all_leads" in failures and "salesexec/all_actions" in failures, failures
    assert model_rows(warehouse_path, SPEED_TO_LEAD) == []


def without_stamps(path: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        model.name: sorted(model_rows(path, model), key=lambda row: str(sorted(row.items())))
        for model in MODELS
    }


def test_rerunning_a_day_changes_no_model_row(
    defs: Definitions, run_assets: RunAssets, warehouse_path: Path
) -> None:
    run_range(run_assets, defs, [*RAW, *ANALYTICS], FIRST_DAY, LAST_DAY)
    before = without_stamps(warehouse_path)
    assert all(before.values())
    result = run_assets(defs, ANALYTICS, partition=str(FIRST_DAY + timedelta(days=1)))
    assert result.success
    assert without_stamps(warehouse_path) == before


def test_a_later_pull_of_actions_updates_an_earlier_days_speed_to_lead(
    sandbox: SandboxServer, defs: Definitions, run_assets: RunAssets, warehouse_path: Path
) -> None:
    day = FIRST_DAY
    later = truth.days_between(day + timedelta(days=1), day + timedelta(days=6))
    run_range(run_assets, defs, [*RAW, *ANALYTICS], day, day)
    first = model_rows(warehouse_path, SPEED_TO_LEAD)
    assert_model_equals(
        first, expected_models(sandbox, [day], [day])[SPEED_TO_LEAD.name], SPEED_TO_LEAD
    )

    run_range(run_assets, defs, [RAW[1]], later[0], later[-1])  # the actions of later days
    run_range(run_assets, defs, ANALYTICS, day, day)
    expected = expected_models(sandbox, [day], [day, *later])
    for model in (SPEED_TO_LEAD, LEAD_FUNNEL_DAILY):
        assert_model_equals(model_rows(warehouse_path, model), expected[model.name], model)
    contacted = {
        row["lead_uid"]
        for row in model_rows(warehouse_path, SPEED_TO_LEAD)
        if row["first_contact_utc"]
    }
    contacted_before = {row["lead_uid"] for row in first if row["first_contact_utc"]}
    assert contacted > contacted_before, "no lead got its first contact on a later day"


# --- the same SQL on PostgreSQL ----------------------------------------------------------

RAW_COLUMNS = {
    "all_leads": {
        "partition_date": "date",
        "lead_uid": "bigint",
        "lead_type_uid": "bigint",
        "date_added_utc": "timestamp",
        "lead_source_name": "text",
        "campaign_name": "text",
        "branch_name": "text",
        "life_cycle_stage_name": "text",
        "_loaded_at": "timestamp",
    },
    "all_actions": {
        "partition_date": "date",
        "action_uid": "bigint",
        "lead_uid": "bigint",
        "action_type_name": "text",
        "action_date_utc": "timestamp",
        "user_uid": "bigint",
        "user_name": "text",
        "_loaded_at": "timestamp",
    },
}
PG_TYPES = {
    "DATE": "date",
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "TIMESTAMP": "timestamp",
    "DOUBLE": "double precision",
}


def postgres_sql(sql: str) -> str:
    """The model's positional ``?`` parameters in psycopg's ``%s`` style."""
    return sql.replace("%", "%%").replace("?", "%s")


def create_table(
    cursor: Any, schema: str, table: str, columns: dict[str, str], rows: list[dict[str, Any]]
) -> None:
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    cursor.execute(
        f"CREATE TABLE {schema}.{table} ({', '.join(f'{n} {t}' for n, t in columns.items())})"
    )
    names = list(columns)
    placeholders = ", ".join("%s" for _ in names)
    cursor.executemany(
        f"INSERT INTO {schema}.{table} ({', '.join(names)}) VALUES ({placeholders})",
        [[row[name] for name in names] for row in rows],
    )


def test_every_model_gives_the_same_rows_on_postgres_as_on_duckdb(
    defs: Definitions,
    run_assets: RunAssets,
    warehouse_path: Path,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> None:
    run_range(run_assets, defs, [*RAW, *ANALYTICS], FIRST_DAY, LAST_DAY)
    with postgres_server.connect(postgres_database) as connection, connection.cursor() as cursor:
        for table, columns in RAW_COLUMNS.items():
            create_table(
                cursor,
                "salesexec",
                table,
                columns,
                stored_rows(warehouse_path, table, with_metadata=True),
            )
        for model in MODELS:  # in dependency order: the funnel reads speed_to_lead
            cursor.execute(postgres_sql(model.sql), [FIRST_DAY, LAST_DAY])
            names = [column.name for column in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
            assert rows, f"{model.name}: no rows on PostgreSQL"
            assert_model_equals(rows, model_rows(warehouse_path, model), model)
            create_table(
                cursor,
                ANALYTICS_SCHEMA,
                model.name,
                {name: PG_TYPES[kind.value] for name, kind in model.columns.items()},
                rows,
            )
        duckdb_store = DuckDBWarehouse(warehouse_path)
        for name, query in analytics_queries().items():  # checks, metadata and the report
            cursor.execute(postgres_sql(query), [FIRST_DAY, LAST_DAY])
            on_postgres = [tuple(row) for row in cursor.fetchall()]
            on_duckdb = [
                tuple(None if value is None or value != value else value for value in row)
                for row in duckdb_store.query(query, [FIRST_DAY, LAST_DAY]).itertuples(index=False)
            ]
            assert len(on_postgres) == len(on_duckdb), name
            for pg_row, duck_row in zip(on_postgres, on_duckdb, strict=True):
                assert all(map(same_value, pg_row, duck_row)), (name, pg_row, duck_row)
        for query in documented_queries():  # the docs promise they run on both
            cursor.execute(postgres_sql(query))
            assert len(cursor.fetchall()) == len(duckdb_store.query(query))


def analytics_queries() -> dict[str, str]:
    """Every query of ``salesexec_assets.analytics.queries`` (each takes the two days)."""
    return {
        name: value
        for name, value in vars(queries).items()
        if name.isupper()
        and not name.startswith("_")
        and isinstance(value, str)
        and value.startswith("WITH days")
    }


DOCS = Path(__file__).resolve().parent.parent / "docs" / "analytics.md"


def documented_queries() -> list[str]:
    """The example queries of ``docs/analytics.md`` (its sql block)."""
    block = DOCS.read_text(encoding="utf-8").split("```sql", 1)[1].split("```", 1)[0]
    return [query for query in block.split(";") if query.strip()]


# --- keeping up ---------------------------------------------------------------------------


def test_automation_recomputes_the_earlier_days_whose_leads_got_actions_today(
    defs: Definitions, run_assets: RunAssets, dagster_instance: DagsterInstance
) -> None:
    """New actions of today may be the first contact of a lead added days ago: the eager
    condition asks for speed_to_lead (and the funnel) of the days before, not only today."""
    today = today_in("UTC")
    first = today - timedelta(days=3)
    run_range(run_assets, defs, [*RAW, *ANALYTICS], first, today)
    selection = AssetSelection.groups(ANALYTICS_GROUP)
    settled = evaluate_automation_conditions(defs, dagster_instance, asset_selection=selection)
    assert settled.total_requested == 0, "nothing changed since the analytics ran"

    run_range(run_assets, defs, [RAW[1]], today, today)  # today's actions, pulled again
    result = evaluate_automation_conditions(
        defs, dagster_instance, asset_selection=selection, cursor=settled.cursor
    )
    requested = {
        key.to_user_string(): sorted(result.get_requested_partitions(key)) for key in ANALYTICS
    }
    days = [str(day) for day in truth.days_between(first, today)]
    assert requested == {
        model_asset_key(SPEED_TO_LEAD).to_user_string(): days,
        model_asset_key(LEAD_FUNNEL_DAILY).to_user_string(): days,
        model_asset_key(REP_ACTIVITY_DAILY).to_user_string(): [str(today)],
    }


def test_the_all_reports_job_runs_the_analytics_after_the_reports(defs: Definitions) -> None:
    job = defs.resolve_job_def("all_salesexec_reports")
    keys = job.asset_layer.executable_asset_keys
    assert set(ANALYTICS) <= set(keys)
    assert set(RAW) <= set(keys)


def test_append_mode_reports_pulled_twice_are_counted_once(
    sandbox: SandboxServer,
    point_env_at: PointEnv,
    run_assets: RunAssets,
    warehouse_path: Path,
) -> None:
    """With the ``append`` update method a raw table keeps every pull; the models use the
    newest pull of each lead and action, so nothing is counted twice."""
    point_env_at(sandbox)
    append = {"update_method": "append"}
    defs = build_test_definitions(
        load_settings(), {"reports": {"all_leads": append, "all_actions": append}}
    )
    for _ in range(2):
        run_range(run_assets, defs, RAW, FIRST_DAY, FIRST_DAY)
    run_range(run_assets, defs, ANALYTICS, FIRST_DAY, FIRST_DAY)
    expected = expected_models(sandbox, [FIRST_DAY], [FIRST_DAY])
    for model in MODELS:
        assert_model_equals(model_rows(warehouse_path, model), expected[model.name], model)
