"""Settings read from ``SALESEXEC_*`` environment variables, validated when definitions load.

A malformed value fails at load time with an error that names the variable, instead of
surfacing later as a confusing run failure. Credentials are not read here: the resource
reads them with ``dagster.EnvVar`` at run time, so their values never enter run config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salesexec_assets.api.overrides import CONTRACT_OVERRIDES_VAR as CONTRACT_OVERRIDES_VAR
from salesexec_assets.api.overrides import (
    ContractOverrides,
    OverridesError,
    overrides_from_environment,
)
from salesexec_assets.warehouse.base import WarehouseConnectionError
from salesexec_assets.warehouse.location import (
    MOTHERDUCK_TOKEN_VAR,
    POSTGRES,
    WAREHOUSE_PASSWORD_VAR,
    WAREHOUSE_URL_VAR,
    WarehouseLocation,
    WarehouseUrlError,
    motherduck_token_missing,
    parse_warehouse_url,
)

SANDBOX = "sandbox"
DEFAULT_START_DATE = date(2024, 1, 1)
DEFAULT_DUCKDB_PATH = Path("data") / "salesexec_warehouse.duckdb"

BASE_URL_VAR = "SALESEXEC_BASE_URL"
USERNAME_VAR = "SALESEXEC_USERNAME"
PASSWORD_VAR = "SALESEXEC_PASSWORD"
LEAD_TYPE_UIDS_VAR = "SALESEXEC_LEAD_TYPE_UIDS"
TIMEZONE_VAR = "SALESEXEC_TIMEZONE"
START_DATE_VAR = "SALESEXEC_START_DATE"
DUCKDB_PATH_VAR = "SALESEXEC_DUCKDB_PATH"
CONFIG_VAR = "SALESEXEC_CONFIG"


class SettingsError(ValueError):
    """A ``SALESEXEC_*`` variable holds a value the project cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything about the deployment that is not a secret."""

    base_url: str  # "" = the real API (with credentials) or the embedded sandbox (without)
    has_credentials: bool
    lead_type_uids: tuple[int, ...] | None  # None = every lead type of the account
    timezone: str
    start_date: date
    duckdb_path: Path
    contract_overrides: ContractOverrides | None = None  # None: not read (see load_settings)
    # the destination parsed from SALESEXEC_WAREHOUSE_URL; None = the DuckDB file above
    warehouse: WarehouseLocation | None = field(default=None)
    has_warehouse_password: bool = False  # SALESEXEC_WAREHOUSE_PASSWORD is set

    @property
    def warehouse_location(self) -> WarehouseLocation:
        """Where the tables go: the URL's destination, else the DuckDB file."""
        return self.warehouse or WarehouseLocation.duckdb_file(self.duckdb_path)

    @property
    def uses_embedded_sandbox(self) -> bool:
        return self.base_url == SANDBOX or (not self.base_url and not self.has_credentials)


def parse_lead_type_uids(text: str, name: str = LEAD_TYPE_UIDS_VAR) -> tuple[int, ...] | None:
    """``"1, 2,3"`` -> ``(1, 2, 3)``; empty -> None (every lead type).

    ``name`` is what an error calls the value: the variable, or a ``defs.yaml`` key.
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        return None
    uids = []
    for part in parts:
        if not part.isdigit() or int(part) <= 0:
            raise SettingsError(
                f"{name} must be comma-separated positive integers; "
                f"{part!r} is not one"
            )
        uids.append(int(part))
    return tuple(dict.fromkeys(uids))


def parse_timezone(text: str, name: str = TIMEZONE_VAR) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{name}={text!r} is not an IANA time zone (e.g. UTC, America/Chicago)"
        ) from None
    return text


def parse_start_date(text: str, name: str = START_DATE_VAR) -> date:
    try:
        start = date.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a date like 2024-01-01") from None
    if start > date.today():
        raise SettingsError(f"{name}={start} is in the future")
    return start


def parse_warehouse(env: Mapping[str, str]) -> WarehouseLocation | None:
    """``SALESEXEC_WAREHOUSE_URL`` parsed and proven usable (None when unset)."""
    text = env.get(WAREHOUSE_URL_VAR, "").strip()
    return warehouse_from_url(text, env) if text else None


def warehouse_from_url(text: str, env: Mapping[str, str]) -> WarehouseLocation:
    """A destination URL parsed and proven usable: a Postgres server is connected to once
    (nothing is written), a MotherDuck database needs its token. Each failure is one
    sentence naming host and database, never the password."""
    try:
        location = parse_warehouse_url(text)
    except WarehouseUrlError as error:
        raise SettingsError(str(error)) from None
    if motherduck_token_missing(location, env):
        raise SettingsError(
            f"{WAREHOUSE_URL_VAR}={location.display} is a MotherDuck database: set "
            f"{MOTHERDUCK_TOKEN_VAR} to a MotherDuck access token"
        )
    if location.kind == POSTGRES:
        password = env.get(WAREHOUSE_PASSWORD_VAR) or None
        try:
            location.open(password=password).check_connection()
        except WarehouseConnectionError as error:
            raise SettingsError(f"{WAREHOUSE_URL_VAR}: {error}") from None
    return location


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the ``SALESEXEC_*`` variables (``os.environ`` by default)."""
    env = os.environ if environ is None else environ

    def value(name: str) -> str:
        return env.get(name, "").strip()

    username, password = value(USERNAME_VAR), value(PASSWORD_VAR)
    if bool(username) != bool(password):
        missing = PASSWORD_VAR if username else USERNAME_VAR
        raise SettingsError(f"{missing} is not set: set both SalesExec credentials or neither")
    base_url = value(BASE_URL_VAR).rstrip("/")
    if base_url and base_url != SANDBOX and not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"{BASE_URL_VAR}={base_url!r} must be an http(s) URL or 'sandbox'")
    if base_url and base_url != SANDBOX and not username:
        raise SettingsError(
            f"{BASE_URL_VAR}={base_url!r} is set but {USERNAME_VAR}/{PASSWORD_VAR} are not: "
            "a SalesExec API needs credentials (unset the URL, or set it to 'sandbox', for "
            "the sandbox)"
        )
    start_date = parse_start_date(value(START_DATE_VAR) or DEFAULT_START_DATE.isoformat())
    try:
        overrides = overrides_from_environment(env)
    except OverridesError as error:
        raise SettingsError(str(error)) from None
    return Settings(
        base_url=base_url,
        has_credentials=bool(username),
        lead_type_uids=parse_lead_type_uids(value(LEAD_TYPE_UIDS_VAR)),
        timezone=parse_timezone(value(TIMEZONE_VAR) or "UTC"),
        start_date=start_date,
        duckdb_path=Path(value(DUCKDB_PATH_VAR) or DEFAULT_DUCKDB_PATH),
        contract_overrides=overrides,
        warehouse=parse_warehouse(env),
        has_warehouse_password=bool(value(WAREHOUSE_PASSWORD_VAR)),
    )
