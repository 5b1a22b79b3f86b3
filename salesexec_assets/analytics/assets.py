"""The analytics models as daily-partitioned Dagster assets, with their checks.

Every model asset is partitioned like the reports, downstream of the report assets it
reads (``deps``), and kept up to date by declarative automation
(:data:`ANALYTICS_AUTOMATION`: ``AutomationCondition.eager()`` over the last
``FOLLOW_UP_DAYS`` days instead of only today, because actions keep arriving after the
day a lead was added). A run computes the model for its days through
:func:`~salesexec_assets.analytics.models.run_model` and then evaluates the model's
checks on those days.

No ``from __future__ import annotations`` here: Dagster reads the asset function's
annotations at definition time (the context type, the resources).
"""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    BackfillPolicy,
    BetaWarning,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
    asset,
)

from salesexec_assets.analytics import queries
from salesexec_assets.analytics.models import (
    LEAD_FUNNEL_DAILY,
    MODELS,
    REP_ACTIVITY_DAILY,
    SPEED_TO_LEAD,
    Model,
    run_model,
)
from salesexec_assets.api.contract import REPORTS_BY_NAME
from salesexec_assets.assets import OWNERS, PERSONAL_COLUMNS, PREVIEW_ROWS, requested_days
from salesexec_assets.current_leads import WAREHOUSE_POOL
from salesexec_assets.records import table_spec
from salesexec_assets.resources import WarehouseResource
from salesexec_assets.warehouse import TableSpec, Warehouse

ANALYTICS_PREFIX = "salesexec_analytics"
ANALYTICS_GROUP = "salesexec_analytics"
# How many days after a lead was added its first contact may still arrive (the sandbox's
# leads live at most 14 days; a real account's leads mostly get their first call within
# hours). A model day depends on the actions of this many days after it, and automation
# recomputes the days this far back.
FOLLOW_UP_DAYS = 14
ANALYTICS_AUTOMATION = AutomationCondition.eager().replace(
    "in_latest_time_window",
    AutomationCondition.in_latest_time_window(timedelta(days=FOLLOW_UP_DAYS)),
)

FUNNEL_LEADS_ADDED = "leads_added_match_all_leads"
ONE_ROW_PER_LEAD = "one_row_per_lead"
NO_NEGATIVE_MINUTES = "no_negative_minutes"


def model_asset_key(model: Model) -> AssetKey:
    return AssetKey([ANALYTICS_PREFIX, model.name])


@dataclass(frozen=True)
class ModelCheck:
    """An asset check as a query that returns the offending rows of the run's days."""

    name: str
    description: str
    sql: str
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR


MODEL_CHECKS: dict[str, tuple[ModelCheck, ...]] = {
    LEAD_FUNNEL_DAILY.name: (
        ModelCheck(
            FUNNEL_LEADS_ADDED,
            "Per day, the funnel's leads_added adds up to the leads of that day in "
            "salesexec.all_leads.",
            queries.FUNNEL_LEADS_ADDED_MISMATCHES,
        ),
    ),
    SPEED_TO_LEAD.name: (
        ModelCheck(
            ONE_ROW_PER_LEAD,
            "Per day, exactly one row per lead of that day in salesexec.all_leads.",
            queries.SPEED_TO_LEAD_ROW_MISMATCHES,
        ),
        ModelCheck(
            NO_NEGATIVE_MINUTES,
            "No minutes_to_first_contact is negative (a first contact never precedes the lead).",
            queries.NEGATIVE_MINUTES,
        ),
    ),
}


# The report tables each model reads (its other input: lead_funnel_daily reads speed_to_lead).
MODEL_READS: dict[str, tuple[str, ...]] = {
    SPEED_TO_LEAD.name: ("all_leads", "all_actions"),
    LEAD_FUNNEL_DAILY.name: ("all_leads",),
    REP_ACTIVITY_DAILY.name: ("all_actions",),
}


# A speed_to_lead day reads the actions of that day and of the FOLLOW_UP_DAYS after it
# (which do not exist yet for recent days). Dagster labels the parameter beta: silence
# that one notice, nothing else.
warnings.filterwarnings(
    "ignore", message=r"Parameter `allow_nonexistent_upstream_partitions`", category=BetaWarning
)
FOLLOW_UP_MAPPING = TimeWindowPartitionMapping(
    start_offset=0, end_offset=FOLLOW_UP_DAYS, allow_nonexistent_upstream_partitions=True
)


def _model_deps(model: Model, report_keys: Mapping[str, AssetKey]) -> list[AssetDep]:
    """What each model reads, with the partition mapping of each read."""
    deps = [
        AssetDep(
            report_keys[name],
            partition_mapping=FOLLOW_UP_MAPPING
            if (model is SPEED_TO_LEAD and name == "all_actions")
            else None,
        )
        for name in MODEL_READS[model.name]
    ]
    if model is LEAD_FUNNEL_DAILY:
        deps.append(AssetDep(model_asset_key(SPEED_TO_LEAD)))
    return deps


def evaluate_model_checks(
    model: Model, store: Warehouse, days: Sequence[date]
) -> list[AssetCheckResult]:
    """Run the model's checks on ``days`` (after a write)."""
    results = []
    for check in MODEL_CHECKS.get(model.name, ()):
        offending = store.query(check.sql, queries.day_params(min(days), max(days)))
        results.append(
            AssetCheckResult(
                asset_key=model_asset_key(model),
                check_name=check.name,
                passed=offending.empty,
                severity=check.severity,
                metadata={
                    "offending_rows": len(offending),
                    "first_offending_rows": MetadataValue.json(
                        offending.head(10).astype(str).to_dict("records")
                    ),
                },
            )
        )
    return results


def model_metadata(model: Model, store: Warehouse, days: Sequence[date]) -> dict[str, Any]:
    """What the UI shows for every model materialization (no personal data)."""
    table = model.spec.qualified_name
    params = queries.day_params(min(days), max(days))
    in_days = "partition_date BETWEEN ? AND ?"
    rows_in_days = int(
        store.query(f"SELECT count(*) AS n FROM {table} WHERE {in_days}", params)["n"][0]
    )
    table_rows = int(store.query(f"SELECT count(*) AS n FROM {table}")["n"][0])
    shown = [name for name in model.columns if name not in PERSONAL_COLUMNS]
    preview = store.query(
        f"SELECT {', '.join(shown)} FROM {table} WHERE {in_days} "
        f"ORDER BY {', '.join(shown)} LIMIT {PREVIEW_ROWS}",
        params,
    )
    return {
        "dagster/row_count": table_rows,
        "dagster/table_name": model.table_name,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name, kind.value) for name, kind in model.columns.items()]
        ),
        "rows_in_partitions": rows_in_days,
        "partitions": f"{min(days)}..{max(days)} ({len(days)} day(s))",
        "model_sql": MetadataValue.path(str(model.path)),
        "preview": MetadataValue.md(
            preview.to_markdown(index=False) if not preview.empty else "(no rows)"
        ),
    }


def build_model_asset(
    model: Model,
    partitions_def: TimeWindowPartitionsDefinition,
    report_keys: Mapping[str, AssetKey],
    destination_kind: str = "duckdb",
) -> AssetsDefinition:
    """The asset of one SQL model; everything that differs between models is data.
    ``destination_kind``: ``duckdb`` or ``postgres``, shown as the asset's kind."""
    key = model_asset_key(model)

    @asset(
        key=key,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        deps=_model_deps(model, report_keys),
        group_name=ANALYTICS_GROUP,
        kinds={destination_kind, "sql"},
        owners=OWNERS,
        pool=WAREHOUSE_POOL,
        automation_condition=ANALYTICS_AUTOMATION,
        tags={"layer": "analytics"},
        description=f"{model.description} Table `{model.table_name}`, model "
        f"`salesexec_assets/analytics/models/{model.name}.sql`.",
        check_specs=[
            AssetCheckSpec(check.name, asset=key, description=check.description)
            for check in MODEL_CHECKS.get(model.name, ())
        ],
        metadata={"dagster/table_name": model.table_name},
    )
    def _model_asset(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        days = requested_days(context)
        store = warehouse.get_warehouse(context.log)
        require_tables(store, model.table_name, model_inputs(model, report_keys))
        write = run_model(
            store,
            model,
            days,
            run_id=context.run.run_id,
            loaded_at=datetime.now(timezone.utc).replace(tzinfo=None),
        )
        context.log.info(
            "%s: %d row(s) for %s..%s (replaced %d day(s), removed %d old row(s))",
            model.table_name,
            write.rows_written,
            min(days),
            max(days),
            len(write.partitions_replaced),
            write.rows_deleted,
        )
        with store.reading():  # one connection for the checks' and metadata's reads
            checks = evaluate_model_checks(model, store, days)
            metadata = model_metadata(model, store, days)
            if model is LEAD_FUNNEL_DAILY:  # per day, so the UI plots the funnel per partition
                totals = store.query(queries.DAY_TOTALS, queries.day_params(min(days), max(days)))
                figures = queries.figures_by_day(totals)
                for day in days:
                    context.add_asset_metadata(
                        figures.get(str(day), {"leads_added": 0}), partition_key=str(day)
                    )
        return MaterializeResult(metadata=metadata, check_results=checks)

    return _model_asset


def model_inputs(model: Model, report_keys: Mapping[str, AssetKey]) -> dict[AssetKey, TableSpec]:
    """The tables a model reads, by the asset that writes each."""
    inputs = {
        report_keys[name]: table_spec(REPORTS_BY_NAME[name]) for name in MODEL_READS[model.name]
    }
    if model is LEAD_FUNNEL_DAILY:
        inputs[model_asset_key(SPEED_TO_LEAD)] = SPEED_TO_LEAD.spec
    return inputs


def require_tables(store: Warehouse, reader: str, inputs: Mapping[AssetKey, TableSpec]) -> None:
    """Fail saying what to do when a table ``reader`` reads was never written."""
    missing = [key for key, spec in inputs.items() if not store.table_columns(spec)]
    if missing:
        raise Failure(
            description=f"{reader} reads tables never materialized yet: materialize "
            f"{', '.join(key.to_user_string() for key in missing)} first. Nothing was written."
        )


def build_model_assets(
    partitions_def: TimeWindowPartitionsDefinition,
    report_keys: Mapping[str, AssetKey],
    destination_kind: str = "duckdb",
) -> list[AssetsDefinition]:
    return [
        build_model_asset(model, partitions_def, report_keys, destination_kind) for model in MODELS
    ]
