"""The code location: report assets, checks, jobs, resources, and, from the scheduling
file (``SALESEXEC_CONFIG``), schedules, sensors, freshness checks and the merge asset.
``dagster dev`` and ``dagster asset materialize -m salesexec_assets.definitions`` both
load ``defs`` from here."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job

from salesexec_assets.api.contract import REPORTS, REPORTS_BY_NAME
from salesexec_assets.assets import build_report_asset, report_asset_key
from salesexec_assets.checks import build_branch_count_check
from salesexec_assets.current_leads import LEADS_ASSET_KEY, build_current_leads_asset
from salesexec_assets.partitions import build_daily_partitions
from salesexec_assets.resources import SalesExecResource, WarehouseResource
from salesexec_assets.scheduling import (
    SchedulingConfig,
    build_scheduling_definitions,
    load_scheduling_config,
)
from salesexec_assets.settings import PASSWORD_VAR, USERNAME_VAR, Settings, load_settings
from salesexec_assets.warehouse.location import WAREHOUSE_PASSWORD_VAR, WAREHOUSE_URL_VAR


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


def build_warehouse_resource(settings: Settings) -> WarehouseResource:
    """The destination of the settings; a URL holding a password and the password variable
    are passed as EnvVar, so the UI and run config show their names, never the secret."""
    location = settings.warehouse_location
    password = EnvVar(WAREHOUSE_PASSWORD_VAR) if settings.has_warehouse_password else None
    if settings.warehouse is None:
        return WarehouseResource(path=str(settings.duckdb_path))
    secret_in_url = location.url_password or (location.is_motherduck and "?" in location.database)
    url = EnvVar(WAREHOUSE_URL_VAR) if secret_in_url else location.display
    return WarehouseResource(url=url, password=password)


def build_definitions(
    settings: Settings, scheduling: SchedulingConfig | None = None
) -> Definitions:
    """Everything the code location shows; ``scheduling`` defaults to "all manual"."""
    scheduling = scheduling or SchedulingConfig()
    partitions = build_daily_partitions(settings)
    destination = settings.warehouse_location
    report_assets = [
        build_report_asset(
            report,
            partitions,
            mode=scheduling.for_report(report.name).write_mode,
            retention_days=scheduling.for_report(report.name).retention_days,
            update_method=scheduling.for_report(report.name).update_method.value,
            destination=destination,
        )
        for report in REPORTS
    ]
    merge_sources = [REPORTS_BY_NAME[name] for name in scheduling.merge_reports]
    leads_assets = (
        [build_current_leads_asset(merge_sources, partitions, destination)] if merge_sources else []
    )
    all_reports = define_asset_job(
        "all_salesexec_reports",
        selection=AssetSelection.assets(*report_assets, *leads_assets),
        description="Every SalesExec report for the chosen day(s).",
    )
    core = Definitions(
        assets=[*report_assets, *leads_assets],
        asset_checks=[
            build_branch_count_check(
                report_asset_key(REPORTS_BY_NAME["branch_lead_count"]),
                report_asset_key(REPORTS_BY_NAME["all_leads"]),
            )
        ],
        jobs=[all_reports],
        resources={
            "salesexec": build_salesexec_resource(settings),
            "warehouse": build_warehouse_resource(settings),
        },
    )
    return Definitions.merge(
        core,
        build_scheduling_definitions(
            scheduling,
            partitions,
            {report.name: report_asset_key(report) for report in REPORTS},
            LEADS_ASSET_KEY if leads_assets else None,
        ),
    )


defs = build_definitions(load_settings(), load_scheduling_config())
