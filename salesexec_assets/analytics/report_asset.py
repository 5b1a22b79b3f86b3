"""``salesexec_report``: the daily HTML report as an asset, one file per partition day.

No ``from __future__ import annotations`` here: Dagster reads the asset function's
annotations at definition time (the context type, the resources).
"""

from datetime import datetime, timezone
from pathlib import Path

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionsDefinition,
    asset,
)
from pydantic import Field

from salesexec_assets.analytics.assets import (
    ANALYTICS_AUTOMATION,
    ANALYTICS_GROUP,
    ANALYTICS_PREFIX,
    model_asset_key,
    require_tables,
)
from salesexec_assets.analytics.models import MODELS
from salesexec_assets.analytics.report import read_report_data, render_report, summary_markdown
from salesexec_assets.assets import OWNERS, requested_days
from salesexec_assets.resources import WarehouseResource

REPORT_ASSET_KEY = AssetKey([ANALYTICS_PREFIX, "salesexec_report"])
DEFAULT_REPORTS_DIRECTORY = "data/reports"


class ReportsResource(ConfigurableResource):
    """Where the daily HTML reports are written."""

    directory: str = Field(
        default=DEFAULT_REPORTS_DIRECTORY,
        description="Directory of the reports, salesexec-<day>.html each (relative paths "
        "start in the directory Dagster runs from).",
    )

    def path_for(self, day: str) -> Path:
        return Path(self.directory) / f"salesexec-{day}.html"


def build_report_asset(partitions_def: TimeWindowPartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=REPORT_ASSET_KEY,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        deps=[AssetDep(model_asset_key(model)) for model in MODELS],
        group_name=ANALYTICS_GROUP,
        kinds={"html"},
        owners=OWNERS,
        automation_condition=ANALYTICS_AUTOMATION,
        tags={"layer": "analytics"},
        description="The daily lead report: one self-contained HTML file per day "
        "(salesexec-<day>.html in the reports directory) with leads per source over 30 "
        "days, the day's funnel, minutes to first contact, the win-rate trend and a rep "
        "leaderboard. Opens offline, prints cleanly.",
    )
    def salesexec_report(
        context: AssetExecutionContext, warehouse: WarehouseResource, reports: ReportsResource
    ) -> MaterializeResult:
        store = warehouse.get_warehouse(context.log)
        require_tables(
            store, "salesexec_report", {model_asset_key(model): model.spec for model in MODELS}
        )
        generated = datetime.now(timezone.utc).replace(tzinfo=None)
        with store.reading():
            for day in requested_days(context):
                data = read_report_data(store, day)
                path = reports.path_for(str(day))
                path.parent.mkdir(parents=True, exist_ok=True)
                html = render_report(data, generated=generated)
                temporary = path.with_suffix(".html.tmp")
                temporary.write_text(html, encoding="utf-8")
                temporary.replace(path)  # a reader never sees half a report
                context.log.info("wrote %s (%d bytes)", path, len(html.encode()))
                metadata = {
                    "path": MetadataValue.path(str(path.resolve())),
                    "summary": MetadataValue.md(summary_markdown(data, path)),
                    "size_bytes": len(html.encode()),
                    **data.metric_values(),
                }
                context.add_asset_metadata(metadata, partition_key=str(day))
        return MaterializeResult()

    return salesexec_report
