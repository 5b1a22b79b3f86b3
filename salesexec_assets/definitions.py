"""The code location: report assets, checks, jobs, resources, and, from the scheduling
file (``SALESEXEC_CONFIG``), schedules, sensors, freshness checks and the merge asset.
``dagster dev`` and ``dagster asset materialize -m salesexec_assets.definitions`` both
load ``defs`` from here: the SalesExec component built from the environment."""

from __future__ import annotations

from dagster import Definitions

from salesexec_assets.component import (
    SalesExecComponent,
    build_salesexec_definitions,
    build_salesexec_resource,
    build_warehouse_resource,
)
from salesexec_assets.scheduling import SchedulingConfig
from salesexec_assets.settings import Settings

__all__ = ["build_definitions", "build_salesexec_resource", "build_warehouse_resource", "defs"]


def build_definitions(
    settings: Settings, scheduling: SchedulingConfig | None = None
) -> Definitions:
    """Everything the code location shows; ``scheduling`` defaults to "all manual"."""
    return build_salesexec_definitions(settings, scheduling)


defs = SalesExecComponent.from_environment().build_definitions()
