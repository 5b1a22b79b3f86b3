"""The analytics models, computed by the pipeline from sandbox data, against the same
figures computed independently from the sandbox's ground truth (``analytics_truth``).

The raw report assets are materialized from a real sandbox, then the analytics assets,
in process, into each ``destination`` in turn: a real DuckDB file and a database on the
real PostgreSQL server. One test body proves each behaviour on both.
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
from salesexec_assets.warehouse import Warehouse
from salesexec_assets.warehouse.base import frame_rows
from salesexec_assets_tests import analytics_truth as truth
from salesexec_assets_tests.conftest import PointEnv, RunAssets
from salesexec_assets_tests.destinations import Destination
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


def model_rows(destination: Destination, model: Model) -> list[dict[str, Any]]:
    return stored_rows(destination, model.name, schema=ANALYTICS_SCHEMA)


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
    destination: Destination,
    dagster_instance: DagsterInstance,
) -> None:
    result = run_range(run_assets, defs, [*RAW, *ANALYTICS], FIRST_DAY, LAST_DAY)
    days = truth.days_between(FIRST_DAY, LAST_DAY)
    expected = expected_models(sandbox, days, days)
    for model in MODELS:
        assert_model_equals(model_rows(destination, model), expected[model.name], model)
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
    assert_queries_give_the_truths_figures(destination, expected, days)
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
    defs: Definitions, run_assets: RunAssets, destination: Destination
) -> None:
    result = run_assets(defs, [model_asset_key(SPEED_TO_LEAD)], partition=str(FIRST_DAY))
    assert not result.success
    failures = " ".join(
        str(event.step_failure_data.error.message)
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error
    )
    assert "salesexec/all_leads" in failures and "salesexec/all_actions" in failures, failures
    assert model_rows(destination, SPEED_TO_LEAD) == []


def without_stamps(destination: Destination) -> dict[str, list[dict[str, Any]]]:
    return {
        model.name: sorted(model_rows(destination, model), key=lambda row: str(sorted(row.items())))
        for model in MODELS
    }


def test_rerunning_a_day_changes_no_model_row(
    defs: Definitions, run_assets: RunAssets, destination: Destination
) -> None:
    run_range(run_assets, defs, [*RAW, *ANALYTICS], FIRST_DAY, LAST_DAY)
    before = without_stamps(destination)
    assert all(before.values())
    result = run_assets(defs, ANALYTICS, partition=str(FIRST_DAY + timedelta(days=1)))
    assert result.success
    assert without_stamps(destination) == before


def test_a_later_pull_of_actions_updates_an_earlier_days_speed_to_lead(
    sandbox: SandboxServer, defs: Definitions, run_assets: RunAssets, destination: Destination
) -> None:
    day = FIRST_DAY
    later = truth.days_between(day + timedelta(days=1), day + timedelta(days=6))
    run_range(run_assets, defs, [*RAW, *ANALYTICS], day, day)
    first = model_rows(destination, SPEED_TO_LEAD)
    assert_model_equals(
        first, expected_models(sandbox, [day], [day])[SPEED_TO_LEAD.name], SPEED_TO_LEAD
    )

    run_range(run_assets, defs, [RAW[1]], later[0], later[-1])  # the actions of later days
    run_range(run_assets, defs, ANALYTICS, day, day)
    expected = expected_models(sandbox, [day], [day, *later])
    for model in (SPEED_TO_LEAD, LEAD_FUNNEL_DAILY):
        assert_model_equals(model_rows(destination, model), expected[model.name], model)
    contacted = {
        row["lead_uid"]
        for row in model_rows(destination, SPEED_TO_LEAD)
        if row["first_contact_utc"]
    }
    contacted_before = {row["lead_uid"] for row in first if row["first_contact_utc"]}
    assert contacted > contacted_before, "no lead got its first contact on a later day"


# --- the queries of the checks, the metadata, the report and the docs -----------------


def query_rows(store: Warehouse, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """``sql`` through the warehouse's own ``query`` (the code path of the assets and the
    report), as plain Python values."""
    return frame_rows(store.query(sql, params))


def assert_rows_equal(have: list[dict[str, Any]], want: list[dict[str, Any]], name: str) -> None:
    """In order, value for value (floats to rounding)."""
    assert len(have) == len(want), f"{name}: {len(have)} row(s), truth {len(want)}"
    for got, expected in zip(have, want, strict=True):
        assert got.keys() == expected.keys(), (name, got, expected)
        assert all(same_value(got[k], v) for k, v in expected.items()), (name, got, expected)


def assert_queries_give_the_truths_figures(
    destination: Destination, expected: dict[str, list[dict[str, Any]]], days: Sequence[date]
) -> None:
    """Every query of ``analytics.queries`` on the destination: the checks find nothing,
    the metadata's and the report's figures are the truth's; the docs' examples run."""
    params = queries.day_params(days[0], days[-1])
    funnel, speed = expected[LEAD_FUNNEL_DAILY.name], expected[SPEED_TO_LEAD.name]
    wanted = {
        "FUNNEL_LEADS_ADDED_MISMATCHES": [],
        "SPEED_TO_LEAD_ROW_MISMATCHES": [],
        "NEGATIVE_MINUTES": [],
        "DAY_TOTALS": truth.day_totals(funnel, speed),
        "LEADS_BY_SOURCE": truth.leads_by_source(funnel),
        "MINUTES_TO_FIRST_CONTACT": truth.minutes_to_first_contact(speed),
        "REP_LEADERBOARD": truth.rep_leaderboard(expected[REP_ACTIVITY_DAILY.name]),
    }
    assert set(analytics_queries()) == set(wanted), "a query without its truth"
    store = destination.warehouse()
    with store.reading():
        for name, sql in analytics_queries().items():
            assert_rows_equal(query_rows(store, sql, params), wanted[name], name)
        for sql in documented_queries():  # the docs promise they run on both
            query_rows(store, sql)
    if hasattr(store, "close"):  # Postgres keeps one connection open
        store.close()


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
    destination: Destination,
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
        assert_model_equals(model_rows(destination, model), expected[model.name], model)
