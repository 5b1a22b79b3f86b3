"""One factory turns each report of the contract into a daily-partitioned Dagster asset.

Every asset is written against its partition key range, so one code path serves one
day (``--partition 2026-11-20``), a range in a single run (``--partition-range`` or a
UI backfill, thanks to ``BackfillPolicy.single_run()``), and today.
"""

import warnings
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableSchema,
    asset,
)

from salesexec_assets.api import contract
from salesexec_assets.api.contract import PERSONAL_FIELDS, Pull, Report
from salesexec_assets.checks import evaluate_report_checks, report_check_specs
from salesexec_assets.instance import DEFAULT_INSTANCE, Instance
from salesexec_assets.launch import launch_day
from salesexec_assets.loading import LoadResult, WriteMode, load_report
from salesexec_assets.naming import FIELD_COLUMN_PREFIX, snake_case
from salesexec_assets.partitions import partition_date, today_in
from salesexec_assets.records import PARTITION_COLUMN, SCHEMA, table_spec
from salesexec_assets.resources import SalesExecResource, WarehouseResource
from salesexec_assets.source_guard import guard_source, source_of
from salesexec_assets.warehouse import ColumnType, Warehouse
from salesexec_assets.warehouse.location import WarehouseLocation

# BackfillPolicy.single_run() is what makes a partition range one run, and the design rests
# on it; Dagster 1.13 still labels the parameter beta. Silence that one notice, nothing else.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=BetaWarning)

ASSET_PREFIX = "salesexec"
GROUP_NAME = "salesexec"
OWNERS = ["team:data-engineering"]
API_POOL = "salesexec_api"
PREVIEW_ROWS = 5
PERSONAL_COLUMNS = frozenset(snake_case(name) for name in PERSONAL_FIELDS)


def report_asset_key(report: Report, instance: Instance = DEFAULT_INSTANCE) -> AssetKey:
    return instance.asset_key(report.name)


def requested_days(context: AssetExecutionContext) -> list[date]:
    """The run's partition days; a run without partitions is refused before any write."""
    if not (context.has_partition_key or context.has_partition_key_range):
        raise Failure(
            description=(
                f"{context.asset_key.to_user_string()} is partitioned by day: give a partition "
                "(--partition 2026-11-20) or a range (--partition-range A...B). A run without "
                "one is refused so that no table is ever rewritten whole by mistake."
            )
        )
    return [partition_date(key) for key in context.partition_keys]


def split_now_report_days(days: Sequence[date], launched_on: date) -> tuple[list[date], list[date]]:
    """The days a "now" report pulls (the day its run was launched, if requested) and the
    days it skips (every other day: the API cannot tell a past day's count)."""
    pulled = [day for day in days if day == launched_on]
    return pulled, [day for day in days if day != launched_on]


def skipped_now_report_metadata(
    report: Report, skipped: Sequence[date], launched_on: date, zone: str
) -> dict[str, Any]:
    """What a materialization of the "now" report says about the days it did not write."""
    return {
        "skipped": "past partition",
        "skipped_partitions": MetadataValue.json([str(day) for day in skipped]),
        "skipped_reason": (
            f"{report.title} only knows the current count: only the partition of the day the "
            f"run was launched ({launched_on}, {zone}) is written; nothing was written for "
            f"{', '.join(map(str, skipped))}, and every stored row is unchanged."
        ),
    }


def build_report_asset(
    report: Report,
    partitions_def: DailyPartitionsDefinition,
    *,
    mode: WriteMode = WriteMode.REPLACE,
    retention_days: int | None = None,
    update_method: str | None = None,
    retry_policy: RetryPolicy | None = None,
    instance: Instance = DEFAULT_INSTANCE,
    destination: WarehouseLocation | None = None,
) -> AssetsDefinition:
    """The asset of one report; everything that differs between reports is data.

    ``mode`` is how the table is written; ``update_method`` names the connector's update
    method it serves (``merge`` and ``partition`` both write by ``replace``).
    """
    key = report_asset_key(report, instance)
    spec = table_spec(report, instance.schema)
    salesexec_key, warehouse_key = instance.salesexec_resource_key, instance.warehouse_resource_key
    effective_mode = WriteMode.APPEND if report.pull is Pull.NOW else mode
    zone = partitions_def.timezone
    destination = destination or WarehouseLocation.duckdb_file("")

    @asset(
        key=key,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=instance.group_name,
        kinds={destination.kind},
        owners=OWNERS,
        tags={"source": "salesexec", "update_method": update_method or effective_mode.value},
        description=f"{report.title}: {report.description} Table `{spec.schema}.{spec.name}`.",
        check_specs=report_check_specs(report, key),
        pool=instance.scoped(API_POOL),
        retry_policy=retry_policy,
        required_resource_keys={salesexec_key, warehouse_key},
        metadata={"dagster/table_name": destination.table_name(spec), "report": report.title},
    )
    def _report_asset(context: AssetExecutionContext) -> MaterializeResult:
        salesexec: SalesExecResource = getattr(context.resources, salesexec_key)
        warehouse: WarehouseResource = getattr(context.resources, warehouse_key)
        days = requested_days(context)
        skipped_metadata: dict[str, Any] = {}
        if report.pull is Pull.NOW:
            launched_on = launch_day(context, zone)
            days, skipped = split_now_report_days(days, launched_on)
            if skipped:
                skipped_metadata = skipped_now_report_metadata(report, skipped, launched_on, zone)
                context.log.info("%s: %s", report.name, skipped_metadata["skipped_reason"])
            if not days:  # materialized, so runs and backfills succeed; the tables untouched
                return MaterializeResult(
                    metadata={**skipped_metadata, "rows_written": 0},
                    check_results=[
                        AssetCheckResult(
                            check_name=spec.name,
                            passed=True,
                            metadata={"skipped": "past partition: nothing was written"},
                        )
                        for spec in report_check_specs(report, key)
                    ],
                )
        store = warehouse.get_warehouse(context.log)
        guard_source(store, instance.schema, source_of(salesexec))
        with salesexec.get_client(context.log) as client:
            lead_types = salesexec.resolve_lead_types(client)
            context.log.info(
                "%s: pulling %d day(s) %s..%s (%s) for lead types %s",
                report.name,
                len(days),
                days[0],
                days[-1],
                zone,
                ", ".join(f"{uid} ({name})" for uid, name in lead_types),
            )
            result = load_report(
                report,
                days,
                client=client,
                lead_types=lead_types,
                warehouse=store,
                zone=zone,
                mode=effective_mode,
                run_id=context.run.run_id,
                chunk_days=warehouse.chunk_days,
                transaction_rows=warehouse.transaction_rows,
                log=context.log,
                loaded_at=lambda: datetime.now(timezone.utc).replace(tzinfo=None),
                schema=instance.schema,
            )
            stats = client.stats.as_dict()
        dropped = drop_expired_partitions(
            store, report, zone, retention_days, context, instance.schema
        )
        with store.reading():  # one connection for the checks' and metadata's queries
            checks = evaluate_report_checks(
                report,
                key,
                store,
                days,
                zone,
                per_pull=effective_mode is WriteMode.APPEND,
                schema=instance.schema,
            )
            metadata = materialization_metadata(
                result, stats, store, salesexec, effective_mode, instance.schema
            )
        metadata.update(skipped_metadata)
        if retention_days is not None:
            metadata["retention_days"] = retention_days
            metadata["partitions_dropped"] = MetadataValue.json([str(day) for day in dropped])
        return MaterializeResult(metadata=metadata, check_results=checks)

    return _report_asset


def drop_expired_partitions(
    store: Warehouse,
    report: Report,
    zone: str,
    retention_days: int | None,
    context: AssetExecutionContext,
    schema: str = SCHEMA,
) -> tuple[date, ...]:
    """The "Partition" update method: keep only the last ``retention_days`` days."""
    if retention_days is None:
        return ()
    cutoff = today_in(zone) - timedelta(days=retention_days - 1)
    dropped = store.drop_partitions_before(table_spec(report, schema), cutoff)
    if dropped:
        context.log.info(
            "%s: retention of %d days dropped %d partition(s) before %s",
            report.name,
            retention_days,
            len(dropped),
            cutoff,
        )
    return dropped


def materialization_metadata(
    result: LoadResult,
    stats: dict[str, float],
    store: Warehouse,
    salesexec: SalesExecResource,
    mode: WriteMode,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """What the Dagster UI shows for a materialization; no personal data, no secrets."""
    spec = table_spec(result.report, schema)
    columns = store.table_columns(spec)
    days = result.days
    in_days = f"{PARTITION_COLUMN} IN ({', '.join('?' for _ in days)})"
    partition_rows = int(
        store.query(f"SELECT count(*) AS n FROM {spec.qualified_name} WHERE {in_days}", days)["n"][
            0
        ]
    )
    table_rows = int(store.query(f"SELECT count(*) AS n FROM {spec.qualified_name}")["n"][0])
    preview_columns = [
        name
        for name in columns
        if name not in PERSONAL_COLUMNS and not name.startswith(FIELD_COLUMN_PREFIX)
    ]
    preview = store.query(
        f"SELECT {', '.join(preview_columns)} FROM {spec.qualified_name} WHERE {in_days} "
        f"LIMIT {PREVIEW_ROWS}",
        days,
    )
    metadata: dict[str, Any] = {
        "dagster/row_count": table_rows,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name, type_) for name, type_ in columns.items()]
        ),
        "dagster/table_name": store.table_name(spec),
        "rows_in_partitions": partition_rows,
        "rows_written": result.rows_written,
        "rows_by_lead_type": MetadataValue.json(dict(result.rows_by_lead_type)),
        "partitions": f"{days[0]}..{days[-1]} ({len(days)} day(s))",
        "window_utc": window_text(result.windows_utc),
        "update_method": mode.value,
        "quarantined_records": result.quarantined,
        "columns_added": MetadataValue.json(
            sorted({column for write in result.writes for column in write.columns_added})
        ),
        "columns_widened": MetadataValue.json(
            [list(change) for write in result.writes for change in write.columns_widened]
        ),
        "lock_wait_seconds": round(sum(write.lock_wait_seconds for write in result.writes), 3),
        "source": "embedded sandbox (generated demo data, not a real account)"
        if salesexec.uses_sandbox
        else "SalesExec API",
        "from_sandbox": salesexec.uses_sandbox,
        "contract_overrides": contract.effective().describe(),
        "warehouse": store.destination,
        "preview": MetadataValue.md(preview_markdown(preview, store.column_types(spec))),
    }
    if len(days) == 1:
        metadata["dagster/partition_row_count"] = partition_rows
    else:  # a range run records one event per day, all with this metadata: say which is which
        per_day = store.query(
            f"SELECT {PARTITION_COLUMN} AS day, count(*) AS n FROM {spec.qualified_name} "
            f"WHERE {in_days} GROUP BY 1 ORDER BY 1",
            days,
        )
        metadata["rows_by_partition"] = MetadataValue.json(
            {str(day): 0 for day in days}
            | {str(pd.Timestamp(row.day).date()): int(row.n) for row in per_day.itertuples()}
        )
    metadata.update({f"api_{name}": value for name, value in stats.items()})
    if result.quarantine_reasons:
        metadata["quarantine_reasons"] = MetadataValue.json(dict(result.quarantine_reasons))
    return metadata


def preview_cell(value: Any, column_type: ColumnType | None) -> str:
    """How a stored value reads in the preview: null as an empty cell (not ``<NA>``,
    ``nan`` or ``NaT``), a DATE as a plain date (pandas makes it a midnight timestamp)."""
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return ""
    if column_type is ColumnType.DATE and isinstance(value, (datetime, date)):
        return value.strftime("%Y-%m-%d")
    if column_type is ColumnType.BIGINT and isinstance(value, float):
        return str(int(value))  # an integer column with nulls may come back as floats
    return str(value)


def preview_markdown(frame: pd.DataFrame, column_types: Mapping[str, ColumnType]) -> str:
    """The preview rows as a markdown table of plain text cells (``column_types``: the
    lattice's names, the same on every destination)."""
    if frame.empty:
        return "(no rows)"
    cells = pd.DataFrame(
        {
            name: [preview_cell(value, column_types.get(name)) for value in frame[name]]
            for name in frame.columns
        }
    )
    return cells.to_markdown(index=False)


def window_text(windows: Sequence[tuple[datetime, datetime]]) -> str:
    if not windows:
        return "now (this report has no window)"
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    return f"[{start.isoformat()}Z, {end.isoformat()}Z)"
