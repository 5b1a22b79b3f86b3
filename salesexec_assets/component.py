"""``SalesExecComponent``: the whole integration as one Dagster component.

A Dagster project adds it with one ``defs.yaml`` per SalesExec account (``dg scaffold
defs salesexec_assets.SalesExecComponent defs/<name>`` writes a commented one). Its
attributes cover what the ``SALESEXEC_*`` variables and ``salesexec.yaml`` cover, and are
validated by the same parsers (``settings.py``) and the same scheduling reader
(``scheduling/config.py``); errors name the ``defs.yaml`` file and the key. The
standalone code location (``definitions.py``) is this component built from the
environment (:meth:`SalesExecComponent.from_environment`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetSelection, Definitions, EnvVar, define_asset_job
from pydantic import Field

from salesexec_assets.analytics.definitions import build_analytics_definitions
from salesexec_assets.api.contract import REPORTS, REPORTS_BY_NAME, Report
from salesexec_assets.assets import build_report_asset, report_asset_key
from salesexec_assets.checks import build_branch_count_check
from salesexec_assets.component_scaffolder import SalesExecScaffolder
from salesexec_assets.current_leads import LEADS_TABLE, build_current_leads_asset
from salesexec_assets.instance import DEFAULT_PREFIX, Instance
from salesexec_assets.partitions import build_daily_partitions
from salesexec_assets.resources import SalesExecResource, WarehouseResource
from salesexec_assets.scheduling import SchedulingConfig, build_scheduling_definitions
from salesexec_assets.scheduling.config import (
    ConfigError,
    config_path,
    load_scheduling_config,
    parse_scheduling_config,
    unknown_report,
)
from salesexec_assets.settings import (
    DEFAULT_DUCKDB_PATH,
    DEFAULT_START_DATE,
    PASSWORD_VAR,
    SANDBOX,
    USERNAME_VAR,
    Settings,
    SettingsError,
    load_settings,
    parse_lead_type_uids,
    parse_start_date,
    parse_timezone,
    warehouse_from_url,
)
from salesexec_assets.warehouse.location import (
    WAREHOUSE_PASSWORD_VAR,
    WAREHOUSE_URL_VAR,
    WarehouseLocation,
)
from salesexec_assets.webhooks.sensor import webhook_definitions

DUCKDB_URL_PREFIX = "duckdb:///"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_warehouse_url(destination: str) -> bool:
    """A Postgres or MotherDuck URL (anything else names a DuckDB file)."""
    return destination.startswith(("postgresql://", "postgres://", "md:"))


def duckdb_path_of(destination: str) -> Path:
    """The DuckDB file of a destination: a plain path or ``duckdb:///path`` (the default
    file when the destination is a Postgres or MotherDuck URL: unused then)."""
    if is_warehouse_url(destination):
        return DEFAULT_DUCKDB_PATH
    return Path(destination.removeprefix(DUCKDB_URL_PREFIX))


def warehouse_of(destination: str, key: str, source: str = "") -> WarehouseLocation | None:
    """The Postgres or MotherDuck destination, checked as ``SALESEXEC_WAREHOUSE_URL`` is
    (see :func:`salesexec_assets.settings.warehouse_from_url`); None for a DuckDB file."""
    if not is_warehouse_url(destination):
        return None
    try:
        return warehouse_from_url(destination, os.environ)
    except SettingsError as error:
        raise ConfigError(key, str(error), source) from None


@dg.scaffold_with(SalesExecScaffolder)
class SalesExecComponent(dg.Component, dg.Model, dg.Resolvable):
    """SalesExec reports as daily-partitioned assets in a warehouse schema of their own."""

    base_url: str = Field(
        default="",
        description="SalesExec API base URL; empty = the real API when credentials are set, "
        "else the embedded sandbox; 'sandbox' = always the embedded sandbox.",
    )
    username_env: str | None = Field(
        default=None, description="Name of the environment variable holding the user name."
    )
    password_env: str | None = Field(
        default=None, description="Name of the environment variable holding the password."
    )
    lead_type_uids: list[int] | None = Field(
        default=None, description="Lead types to pull; empty = every lead type of the account."
    )
    timezone: str = Field(default="UTC", description="IANA zone the daily partitions follow.")
    start_date: str = Field(
        default=DEFAULT_START_DATE.isoformat(), description="First daily partition."
    )
    destination: str = Field(
        default=str(DEFAULT_DUCKDB_PATH),
        description="The warehouse: a DuckDB file path or duckdb:///path.",
    )
    warehouse_schema: str = Field(
        default=DEFAULT_PREFIX, description="Schema the report tables are written to."
    )
    asset_key_prefix: str = Field(
        default=DEFAULT_PREFIX,
        description="First part of every asset key; any other value than 'salesexec' also "
        "prefixes job, schedule, sensor, resource and pool names with '<prefix>__'.",
    )
    group_name: str | None = Field(
        default=None, description="Asset group; empty = the asset key prefix."
    )
    reports: list[str] | None = Field(
        default=None, description="Reports to include; empty = every report."
    )
    scheduling: dict[str, Any] | None = Field(
        default=None,
        description="Schedules, update methods, retries and freshness: the keys of "
        "salesexec.yaml (reports.<name>.schedule, ..., late_changes).",
    )
    scheduling_file: str | None = Field(
        default=None, description="A salesexec.yaml to read instead of `scheduling`."
    )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SalesExecComponent:
        """The standalone code location's instance: ``SALESEXEC_*`` variables and file."""
        env = os.environ if environ is None else environ
        settings = load_settings(env)
        file, explicit = config_path(env)
        return cls(
            base_url=settings.base_url,
            username_env=USERNAME_VAR if settings.has_credentials else None,
            password_env=PASSWORD_VAR if settings.has_credentials else None,
            lead_type_uids=list(settings.lead_type_uids) if settings.lead_type_uids else None,
            timezone=settings.timezone,
            start_date=settings.start_date.isoformat(),
            destination=env.get(WAREHOUSE_URL_VAR, "").strip() or str(settings.duckdb_path),
            scheduling_file=str(file) if explicit or file.exists() else None,
        )

    # ------------------------------------------------------------------ validation

    def instance(self, source: str = "") -> Instance:
        for key, value in (
            ("asset_key_prefix", self.asset_key_prefix),
            ("warehouse_schema", self.warehouse_schema),
        ):
            if not _IDENTIFIER.match(value):
                raise ConfigError(
                    f"attributes.{key}", f"{value!r} must be letters, digits and _", source
                )
        return Instance(
            key_prefix=self.asset_key_prefix,
            schema=self.warehouse_schema,
            group_name=self.group_name or self.asset_key_prefix,
        )

    def settings(self, source: str = "") -> Settings:
        """The attributes as :class:`Settings`, checked by the environment's parsers."""
        try:
            uids = parse_lead_type_uids(
                ",".join(map(str, self.lead_type_uids or [])), "attributes.lead_type_uids"
            )
            timezone = parse_timezone(self.timezone, "attributes.timezone")
            start_date = parse_start_date(self.start_date, "attributes.start_date")
        except SettingsError as error:
            raise SettingsError(f"{source}: {error}" if source else str(error)) from None
        if bool(self.username_env) != bool(self.password_env):
            missing = "password_env" if self.username_env else "username_env"
            raise ConfigError(
                f"attributes.{missing}", "give both credential variable names or neither", source
            )
        base_url = self.base_url.strip().rstrip("/")
        if base_url and base_url != SANDBOX and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                "attributes.base_url", f"{base_url!r} must be an http(s) URL or 'sandbox'", source
            )
        return Settings(
            base_url=base_url,
            has_credentials=bool(self.username_env),
            lead_type_uids=uids,
            timezone=timezone,
            start_date=start_date,
            duckdb_path=duckdb_path_of(self.destination),
            warehouse=warehouse_of(self.destination, "attributes.destination", source),
            has_warehouse_password=bool(os.environ.get(WAREHOUSE_PASSWORD_VAR)),
        )

    def included_reports(self, source: str = "") -> list[Report]:
        if self.reports is None:
            return list(REPORTS)
        for index, name in enumerate(self.reports):
            if name not in REPORTS_BY_NAME:
                raise ConfigError(f"attributes.reports[{index}]", unknown_report(name), source)
        return [report for report in REPORTS if report.name in self.reports]

    def scheduling_config(self, included: list[Report], source: str = "") -> SchedulingConfig:
        """``scheduling`` (or ``scheduling_file``) read by the scheduling file's reader."""
        if self.scheduling is not None and self.scheduling_file:
            raise ConfigError(
                "attributes.scheduling_file", "give `scheduling` or `scheduling_file`", source
            )
        if self.scheduling_file:
            config = load_scheduling_config(self.scheduling_file)
        else:
            try:
                config = parse_scheduling_config(self.scheduling, source)
            except ConfigError as error:
                raise ConfigError(
                    f"attributes.scheduling.{error.key}", error.problem, source
                ) from None
        names = {report.name for report in included}
        for name in config.reports:
            if name not in names:
                raise ConfigError(
                    f"attributes.scheduling.reports.{name}",
                    "this report is not among the included `reports`",
                    source or config.source,
                )
        late = config.late_changes
        return replace(
            config,
            late_changes=replace(late, reports=tuple(n for n in late.reports if n in names)),
        )

    # ------------------------------------------------------------------ definitions

    def build_defs(self, context: dg.ComponentLoadContext) -> Definitions:
        return self.build_definitions(str(context.path / "defs.yaml"))

    def build_definitions(self, source: str = "") -> Definitions:
        """Everything this instance shows; ``source`` is what errors name (the file)."""
        included = self.included_reports(source)
        return build_salesexec_definitions(
            self.settings(source),
            self.scheduling_config(included, source),
            self.instance(source),
            reports=included,
            credential_vars=(self.username_env, self.password_env)
            if self.username_env and self.password_env
            else None,
        )


def build_salesexec_resource(
    settings: Settings, credential_vars: tuple[str, str] | None = (USERNAME_VAR, PASSWORD_VAR)
) -> SalesExecResource:
    """Credentials come from EnvVar, so the UI and run config show names, never values."""
    credentials = (
        {"username": EnvVar(credential_vars[0]), "password": EnvVar(credential_vars[1])}
        if settings.has_credentials and credential_vars and not settings.uses_embedded_sandbox
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


def build_salesexec_definitions(
    settings: Settings,
    scheduling: SchedulingConfig | None = None,
    instance: Instance | None = None,
    *,
    reports: list[Report] | None = None,
    credential_vars: tuple[str, str] | None = (USERNAME_VAR, PASSWORD_VAR),
) -> Definitions:
    """Assets, checks, jobs, resources, schedules and sensors of one instance."""
    scheduling = scheduling or SchedulingConfig()
    instance = instance or Instance()
    reports = list(REPORTS) if reports is None else reports
    partitions = build_daily_partitions(settings)
    report_assets = [
        build_report_asset(
            report,
            partitions,
            mode=scheduling.for_report(report.name).write_mode,
            retention_days=scheduling.for_report(report.name).retention_days,
            update_method=scheduling.for_report(report.name).update_method.value,
            instance=instance,
            destination=settings.warehouse_location,
        )
        for report in reports
    ]
    merge_sources = [REPORTS_BY_NAME[name] for name in scheduling.merge_reports]
    leads_assets = (
        [
            build_current_leads_asset(
                merge_sources, partitions, instance, settings.warehouse_location
            )
        ]
        if merge_sources
        else []
    )
    names = {report.name for report in reports}
    # The analytics layer and the webhook sensor serve the default instance (schema
    # `salesexec`) with every report; other instances get the raw reports only (for now).
    with_extras = instance == Instance() and names == {report.name for report in REPORTS}
    leads_key = instance.asset_key(LEADS_TABLE) if leads_assets else None
    analytics = (
        build_analytics_definitions(
            partitions,
            {report.name: report_asset_key(report, instance) for report in reports},
            running=scheduling.running,
            destination_kind=settings.warehouse_location.kind,
        )
        if with_extras
        else None
    )
    all_reports = define_asset_job(
        instance.scoped("all_salesexec_reports"),
        selection=AssetSelection.assets(
            *report_assets, *leads_assets, *(analytics.assets if analytics else [])
        ),
        description="Every SalesExec report for the chosen day(s)"
        + (", then the analytics models and the HTML report of those days." if analytics else "."),
    )
    checks = (
        [
            build_branch_count_check(
                report_asset_key(REPORTS_BY_NAME["branch_lead_count"], instance),
                report_asset_key(REPORTS_BY_NAME["all_leads"], instance),
                instance,
            )
        ]
        if {"branch_lead_count", "all_leads"} <= names
        else []
    )
    core = Definitions(
        assets=[*report_assets, *leads_assets],
        asset_checks=checks,
        jobs=[all_reports],
        resources={
            instance.salesexec_resource_key: build_salesexec_resource(settings, credential_vars),
            instance.warehouse_resource_key: build_warehouse_resource(settings),
        },
    )
    return Definitions.merge(
        core,
        *([analytics.definitions] if analytics else []),
        build_scheduling_definitions(
            scheduling,
            partitions,
            {report.name: report_asset_key(report, instance) for report in reports},
            leads_key,
            instance,
        ),
        *(webhook_definitions(scheduling, partitions, leads_key) if with_extras else []),
    )
