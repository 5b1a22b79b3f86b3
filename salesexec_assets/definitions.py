"""The code location: report assets, checks, jobs, resources (and, from the scheduling
config, schedules and sensors). ``dagster dev`` and ``dagster asset materialize -m
salesexec_assets.definitions`` both load ``defs`` from here."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job

from salesexec_assets.api.contract import REPORTS, REPORTS_BY_NAME
from salesexec_assets.assets import build_report_asset, report_asset_key
from salesexec_assets.checks import build_branch_count_check
from salesexec_assets.partitions import build_daily_partitions
from salesexec_assets.resources import SalesExecResource, WarehouseResource
from salesexec_assets.settings import PASSWORD_VAR, USERNAME_VAR, Settings, load_settings


def build_salesexec_resource(settings: Settings) -> SalesExecResource:
    """Credentials come from EnvVar, so the UI and run config show names, never values."""
    credentials = (
        {"username": EnvVar(USERNAME_VAR), "password": EnvVar(PASSWORD_VAR)}
        if settings.has_credentials
        else {}
    )
    return SalesExecResource(
        base_url=settings.base_url,
        lead_type_uids=list(settings.lead_type_uids) if settings.lead_type_uids else None,
        **credentials,
    )


def build_definitions(settings: Settings) -> Definitions:
    partitions = build_daily_partitions(settings)
    report_assets = [build_report_asset(report, partitions) for report in REPORTS]
    all_reports = define_asset_job(
        "all_salesexec_reports",
        selection=AssetSelection.assets(*report_assets),
        partitions_def=partitions,
        description="Every SalesExec report for the chosen day(s).",
    )
    return Definitions(
        assets=report_assets,
        asset_checks=[
            build_branch_count_check(
                report_asset_key(REPORTS_BY_NAME["branch_lead_count"]),
                report_asset_key(REPORTS_BY_NAME["all_leads"]),
            )
        ],
        jobs=[all_reports],
        resources={
            "salesexec": build_salesexec_resource(settings),
            "warehouse": WarehouseResource(path=str(settings.duckdb_path)),
        },
    )


defs = build_definitions(load_settings())
