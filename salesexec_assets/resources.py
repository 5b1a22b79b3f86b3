"""Dagster resources: the SalesExec account, and the warehouse (a DuckDB file, Postgres,
or MotherDuck).

One ``SalesExecResource`` serves every report asset (the connector's "reuse a saved
login"). With no credentials and no base URL it starts the embedded SalesExec sandbox
for the run, and says so loudly: that is the default a newcomer meets.

The account fields (URL, credentials, lead types) fall back to their ``SALESEXEC_*``
variables when empty. Dagster builds a resource from run config ALONE when run config
names it: ``--config-json '{"resources": {"salesexec": {"config": {"max_attempts": 3}}}}'``
leaves every other field at its default, and without the fallback that run would
silently read the sandbox instead of the account and write demo data into the warehouse.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from salesexec_assets.api import contract
from salesexec_assets.api.client import RetrySettings, SalesExecClient, Timeouts
from salesexec_assets.api.errors import SalesExecError
from salesexec_assets.loading import TRANSACTION_ROWS
from salesexec_assets.settings import (
    BASE_URL_VAR,
    DEFAULT_DUCKDB_PATH,
    DUCKDB_PATH_VAR,
    LEAD_TYPE_UIDS_VAR,
    PASSWORD_VAR,
    SANDBOX,
    USERNAME_VAR,
    parse_lead_type_uids,
)
from salesexec_assets.warehouse import Warehouse
from salesexec_assets.warehouse.location import (
    WAREHOUSE_PASSWORD_VAR,
    WAREHOUSE_URL_VAR,
    WarehouseLocation,
    parse_warehouse_url,
    redact_url,
)

SANDBOX_LOG_LINE = (
    "SALESEXEC SANDBOX: no SalesExec credentials are set, so this run reads the embedded "
    "SalesExec sandbox (generated demo data), NOT a real account. Set SALESEXEC_USERNAME "
    "and SALESEXEC_PASSWORD to read your account."
)


class SalesExecResource(ConfigurableResource):
    """A SalesExec account: where the API is, who logs in, which lead types to read."""

    base_url: str = Field(
        default="",
        description=f"API base URL; empty = ${BASE_URL_VAR}, else the real API when "
        "credentials are set, else the embedded sandbox; 'sandbox' = always the embedded "
        "sandbox.",
    )
    username: str | None = Field(
        default=None, description=f"SalesExec user name; empty = ${USERNAME_VAR}."
    )
    password: str | None = Field(
        default=None, description=f"SalesExec password (never shown); empty = ${PASSWORD_VAR}."
    )
    lead_type_uids: list[int] | None = Field(
        default=None,
        description=f"Lead types to pull; empty = ${LEAD_TYPE_UIDS_VAR}, else every lead type "
        "of the account.",
    )
    page_size: int = Field(default=contract.TAKE_MAX, ge=1, le=contract.TAKE_MAX)
    max_concurrent_requests: int = Field(
        default=8, ge=1, le=32, description="Pages fetched at once within one report window."
    )
    max_attempts: int = Field(default=8, ge=1, description="Tries per call on transient errors.")
    max_total_wait_seconds: float = Field(
        default=300.0, ge=0, description="Most seconds one call may spend waiting to retry."
    )
    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=120.0, gt=0)
    sandbox_leads_per_day: int = Field(
        default=50,
        ge=1,
        description="Volume of the embedded sandbox (leads per lead type per day).",
    )

    _sandbox: Any = PrivateAttr(default=None)
    _sandbox_url: str | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Any:
        # pydantic's repr would print the password once EnvVars are resolved
        for name, value in super().__repr_args__():
            yield name, ("********" if name == "password" and value else value)

    def _base_url(self) -> str:
        """The configured base URL, else ``SALESEXEC_BASE_URL`` (see the module docstring)."""
        return self.base_url or os.environ.get(BASE_URL_VAR, "").strip().rstrip("/")

    def _credentials(self) -> tuple[str | None, str | None]:
        """The configured credentials, else ``SALESEXEC_USERNAME``/``SALESEXEC_PASSWORD``."""
        if self.username:
            return self.username, self.password
        return os.environ.get(USERNAME_VAR) or None, os.environ.get(PASSWORD_VAR) or None

    def account(self) -> tuple[str, str | None]:
        """The account's base URL and user name (no secret): what the warehouse records."""
        return self._base_url() or contract.DEFAULT_BASE_URL, self._credentials()[0]

    @property
    def uses_sandbox(self) -> bool:
        base_url = self._base_url()
        return base_url == SANDBOX or (not base_url and not self._credentials()[0])

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.uses_sandbox:
            return
        from salesexec_assets.sandbox import SandboxConfig, SandboxServer

        server = SandboxServer(  # speaking the dialect the client is told to speak
            SandboxConfig(leads_per_day=self.sandbox_leads_per_day),
            contract_overrides=contract.effective(),
        )
        server.start()
        self._sandbox = server
        self._sandbox_url = server.base_url
        (context.log or logging.getLogger(__name__)).warning(SANDBOX_LOG_LINE)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None

    def get_client(self, logger: logging.Logger | None = None) -> SalesExecClient:
        """A logged-out client for this account (it logs in on its first call)."""
        if self.uses_sandbox:
            if self._sandbox_url is None:
                raise SalesExecError("the embedded sandbox is not running (resource not set up)")
            from salesexec_assets.sandbox import SandboxConfig

            defaults = SandboxConfig()
            base_url, username, password = self._sandbox_url, defaults.username, defaults.password
        else:
            username, password = self._credentials()
            if not username or not password:
                raise SalesExecError(
                    f"SalesExec credentials are missing: set {USERNAME_VAR} and {PASSWORD_VAR}"
                )
            base_url = self._base_url() or contract.DEFAULT_BASE_URL
        return SalesExecClient(
            base_url,
            username,
            password,
            retry=RetrySettings(
                max_attempts=self.max_attempts,
                max_total_wait_seconds=self.max_total_wait_seconds,
                backoff_initial_seconds=self.backoff_initial_seconds,
            ),
            timeouts=Timeouts(self.connect_timeout_seconds, self.read_timeout_seconds),
            page_size=self.page_size,
            max_concurrent_requests=self.max_concurrent_requests,
            logger=logger,
        )

    def resolve_lead_types(self, client: SalesExecClient) -> list[tuple[int, str]]:
        """The lead types to pull, as (uid, name); an unknown configured UID is an error."""
        account = {
            int(lead_type[contract.LEAD_TYPE_UID]): str(lead_type.get(contract.LEAD_TYPE_NAME, ""))
            for lead_type in client.lead_types()
        }
        wanted = self.lead_type_uids or parse_lead_type_uids(os.environ.get(LEAD_TYPE_UIDS_VAR, ""))
        if not wanted:
            return sorted(account.items())
        wanted = list(dict.fromkeys(wanted))  # [1, 1] is lead type 1, read once
        unknown = [uid for uid in wanted if uid not in account]
        if unknown:
            known = ", ".join(f"{uid} ({name})" for uid, name in sorted(account.items()))
            raise SalesExecError(
                f"unknown lead type UID(s) {unknown} in {LEAD_TYPE_UIDS_VAR}; this account "
                f"has: {known}"
            )
        return [(uid, account[uid]) for uid in wanted]


class WarehouseResource(ConfigurableResource):
    """Where the report tables live: a DuckDB file, a Postgres database, or MotherDuck.

    Like the account, the destination falls back to its variables when left empty, so
    run config that names only, say, ``chunk_days`` still writes where the deployment
    writes: ``url``, else ``path``, else ``SALESEXEC_WAREHOUSE_URL``, else the DuckDB file
    at ``SALESEXEC_DUCKDB_PATH``.
    """

    url: str = Field(
        default="",
        description="postgresql://USER@HOST:PORT/DBNAME, duckdb:///path.duckdb, a file path or "
        f"md:DBNAME; empty = `path`, else ${WAREHOUSE_URL_VAR}.",
    )
    path: str = Field(
        default="",
        description=f"DuckDB database file (when no URL is given); empty = ${DUCKDB_PATH_VAR}, "
        f"else {DEFAULT_DUCKDB_PATH}.",
    )
    password: str | None = Field(
        default=None,
        description=f"Postgres password (never shown); empty = ${WAREHOUSE_PASSWORD_VAR}, else "
        "libpq's PGPASSWORD or ~/.pgpass.",
    )
    lock_timeout_seconds: float = Field(
        default=600.0, ge=0, description="How long a write waits for another writer's lock."
    )
    chunk_days: int = Field(
        default=7, ge=1, description="Days pulled as one API window per lead type in a range run."
    )
    transaction_rows: int = Field(
        default=TRANSACTION_ROWS,
        ge=1,
        description="About the most rows one write transaction holds: a chunk's days are "
        "written in groups of whole days of about this many rows.",
    )

    def __repr_args__(self) -> Any:
        # pydantic's repr would print the password (and a URL holding one)
        for name, value in super().__repr_args__():
            if name == "password" and value:
                value = "********"
            elif name == "url" and value:
                value = redact_url(value)
            yield name, value

    def location(self) -> WarehouseLocation:
        """The destination this resource writes to (see the class docstring)."""
        if self.url:
            return parse_warehouse_url(self.url)
        if self.path:
            return WarehouseLocation.duckdb_file(self.path)
        from_env = os.environ.get(WAREHOUSE_URL_VAR, "").strip()
        if from_env:
            return parse_warehouse_url(from_env)
        return WarehouseLocation.duckdb_file(
            os.environ.get(DUCKDB_PATH_VAR, "").strip() or DEFAULT_DUCKDB_PATH
        )

    def get_warehouse(self, logger: logging.Logger | None = None) -> Warehouse:
        return self.location().open(
            password=self.password or os.environ.get(WAREHOUSE_PASSWORD_VAR) or None,
            lock_timeout_seconds=self.lock_timeout_seconds,
            logger=logger,
        )
