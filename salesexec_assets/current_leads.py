"""``salesexec/leads``: ONE current row per lead, the connector's "Merge / Upsert" method.

The lead reports (All Leads, Closed Leads, Last Updated Leads) are daily snapshots: the
same lead shows up in the day it was added, the day it closed, the day it was last
updated, each time as it was when that partition was pulled. A report set to
``update_method: merge`` keeps its partitions (replaced as usual) AND feeds this
current-state table, keyed by ``lead_uid``, where the row with the newest
``last_updated_utc`` wins.

The asset is partitioned like the reports and runs after them in the same run: for the
run's days it reads the rows just written to the merge reports' tables and upserts them
in one warehouse transaction (:meth:`Warehouse.upsert`). A tie on
``last_updated_utc`` keeps the incoming row, so re-running a day changes nothing but the
load stamp: re-running is harmless, and so is running days out of order (an older day
never overwrites a newer version of a lead).

No ``from __future__ import annotations`` here: Dagster reads the asset function's
annotations at definition time (the context type, the resources).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionsDefinition,
    asset,
)

from salesexec_assets.api.contract import REPORTS_BY_NAME, Report
from salesexec_assets.assets import (
    ASSET_PREFIX,
    OWNERS,
    report_asset_key,
    requested_days,
)
from salesexec_assets.instance import DEFAULT_INSTANCE, Instance
from salesexec_assets.partitions import consecutive_chunks
from salesexec_assets.records import PARTITION_COLUMN, SCHEMA, table_spec
from salesexec_assets.resources import WarehouseResource
from salesexec_assets.warehouse import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
    RowStage,
    TableSpec,
    Warehouse,
    WriteResult,
    frame_rows,
)
from salesexec_assets.warehouse.base import quote
from salesexec_assets.warehouse.location import WarehouseLocation

LEADS_ASSET_KEY = AssetKey([ASSET_PREFIX, "leads"])
LEADS_TABLE = "leads"
LEAD_KEY = ("lead_uid",)
NEWEST_BY = "last_updated_utc"
# The warehouse's writers share one pool: a DuckDB file takes one writer at a time.
WAREHOUSE_POOL = "salesexec_warehouse"
READ_CHUNK_DAYS = 7  # days read per query, so a long range never sits in memory at once


def leads_table_spec(schema: str = SCHEMA) -> TableSpec:
    """``salesexec.leads``: a lead report's columns, without the partition.

    No "source report" column: the same snapshot of a lead often sits in two reports
    with the same ``last_updated_utc``, and which one came last would make such a column
    change on a re-run.
    """
    lead_columns = table_spec(REPORTS_BY_NAME["all_leads"], schema).columns
    columns = {name: kind for name, kind in lead_columns.items() if name != PARTITION_COLUMN}
    return TableSpec(schema=schema, name=LEADS_TABLE, columns=columns, partition_column=None)


@dataclass
class MergeResult:
    """What one merge read and wrote."""

    rows_read: dict[str, int] = field(default_factory=dict)
    write: WriteResult | None = None


def merge_current_leads(
    store: Warehouse,
    sources: Sequence[Report],
    days: Sequence[date],
    *,
    run_id: str,
    loaded_at: datetime,
    schema: str = SCHEMA,
) -> MergeResult:
    """Upsert the leads of ``days`` from the ``sources`` tables into ``salesexec.leads``.

    Rows are staged (bounded memory), then merged in ONE transaction: newest
    ``last_updated_utc`` per ``lead_uid`` wins, ties keep the incoming row.
    """
    target = leads_table_spec(schema)
    result = MergeResult()
    dropped = {PARTITION_COLUMN, LOADED_AT_COLUMN, RUN_ID_COLUMN}
    with RowStage(target) as stage:
        for report in sources:
            source = table_spec(report, schema)
            result.rows_read[report.name] = 0
            columns = [name for name in store.table_columns(source) if name not in dropped]
            if not columns:
                continue  # the report was never written: nothing to merge from it
            selected = ", ".join(quote(name) for name in columns)
            for chunk in consecutive_chunks(days, READ_CHUNK_DAYS):
                frame = store.query(
                    f"SELECT {selected} FROM {source.qualified_name} "
                    f"WHERE {PARTITION_COLUMN} BETWEEN ? AND ? ORDER BY {PARTITION_COLUMN}",
                    [chunk[0], chunk[-1]],
                )
                stage.add(frame_rows(frame))
                result.rows_read[report.name] += len(frame)
        if stage.row_count:
            result.write = store.upsert(
                stage,
                target,
                key=LEAD_KEY,
                newest_by=NEWEST_BY,
                run_id=run_id,
                loaded_at=loaded_at,
            )
    return result


def build_current_leads_asset(
    sources: Sequence[Report],
    partitions_def: TimeWindowPartitionsDefinition,
    instance: Instance = DEFAULT_INSTANCE,
    destination: WarehouseLocation | None = None,
) -> AssetsDefinition:
    """The merge asset, fed by the reports whose update method is ``merge``."""
    names = ", ".join(report.name for report in sources)
    spec = leads_table_spec(instance.schema)
    warehouse_key = instance.warehouse_resource_key
    destination = destination or WarehouseLocation.duckdb_file("")

    @asset(
        key=instance.asset_key(LEADS_TABLE),
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        deps=[report_asset_key(report, instance) for report in sources],
        group_name=instance.group_name,
        kinds={destination.kind},
        owners=OWNERS,
        pool=instance.scoped(WAREHOUSE_POOL),
        required_resource_keys={warehouse_key},
        tags={"source": "salesexec", "update_method": "merge"},
        description=(
            f"Current state of every lead: one row per lead_uid, merged from {names} "
            f"(newest last_updated_utc wins). Table `{spec.schema}.{spec.name}`. A partition "
            "run merges that day's rows of the source tables; re-running is harmless."
        ),
        metadata={"dagster/table_name": destination.table_name(spec), "merged_from": names},
    )
    def current_leads(context: AssetExecutionContext) -> MaterializeResult:
        days = requested_days(context)
        warehouse: WarehouseResource = getattr(context.resources, warehouse_key)
        store = warehouse.get_warehouse(context.log)
        result = merge_current_leads(
            store,
            sources,
            days,
            run_id=context.run.run_id,
            loaded_at=datetime.now(timezone.utc).replace(tzinfo=None),
            schema=instance.schema,
        )
        total = (
            int(store.query(f"SELECT count(*) AS n FROM {spec.qualified_name}")["n"][0])
            if store.table_columns(spec)
            else 0
        )
        write = result.write
        context.log.info(
            "%s: read %s for %s..%s; %d row(s) upserted, %d lead(s) in the table",
            spec.qualified_name,
            result.rows_read,
            days[0],
            days[-1],
            write.rows_written if write else 0,
            total,
        )
        return MaterializeResult(
            metadata={
                "dagster/row_count": total,
                "dagster/table_name": store.table_name(spec),
                "warehouse": store.destination,
                "rows_read": MetadataValue.json(result.rows_read),
                "rows_upserted": write.rows_written if write else 0,
                "rows_superseded": write.rows_deleted if write else 0,
                "partitions": f"{days[0]}..{days[-1]} ({len(days)} day(s))",
                "update_method": "merge",
            }
        )

    return current_leads
