"""The analytics layer's share of the code location: the model assets, the HTML report
(and the resource that says where it goes), and the automation sensor that keeps them
following their upstream days."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    TimeWindowPartitionsDefinition,
)

from salesexec_assets.analytics.assets import ANALYTICS_GROUP, build_model_assets
from salesexec_assets.analytics.report_asset import ReportsResource, build_report_asset

AUTOMATION_SENSOR = "salesexec_analytics_automation"


@dataclass(frozen=True)
class AnalyticsDefinitions:
    """The analytics assets (for jobs that include them) and everything to merge in."""

    assets: list[AssetsDefinition]
    definitions: Definitions


def build_analytics_definitions(
    partitions_def: TimeWindowPartitionsDefinition,
    report_keys: Mapping[str, AssetKey],
    running: bool = False,
    destination_kind: str = "duckdb",
) -> AnalyticsDefinitions:
    """``report_keys``: the report assets by report name (the models read two of them);
    ``running``: the scheduling file says ``default_status: running``, so the automation
    sensor starts running like every other sensor (stopped otherwise)."""
    assets = [
        *build_model_assets(partitions_def, report_keys, destination_kind),
        build_report_asset(partitions_def),
    ]
    sensor = AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=AssetSelection.groups(ANALYTICS_GROUP),
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        description="Materializes the analytics assets' days when their upstream days change "
        "(AutomationCondition.eager() over the last days that still change). Stopped unless "
        "the scheduling file says default_status: running; switch it on with "
        "`dagster sensor start salesexec_analytics_automation` or the UI.",
    )
    return AnalyticsDefinitions(
        assets=assets,
        definitions=Definitions(
            assets=assets, sensors=[sensor], resources={"reports": ReportsResource()}
        ),
    )
