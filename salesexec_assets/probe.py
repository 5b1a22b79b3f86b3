"""``salesexec probe``: one call per endpoint, to see at once what the API answers.

Logs in, then calls the lead types, each report (a short window, ``Take=1``) and the
awaiting-import count, and reports per endpoint the HTTP status, ``TotalCount``, the
latency and the record's field NAMES against the contract (missing, extra, type
differs). It never prints a value: lead data is personal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract import FieldType
from salesexec_assets.api.endpoints import ENDPOINTS, Endpoint
from salesexec_assets.api.errors import (
    BadCredentialsError,
    RetriesExhaustedError,
    SalesExecError,
    SalesExecRequestError,
)
from salesexec_assets.api.timestamps import TimestampError, format_api_instant, parse_api_timestamp

PROBE_WINDOW = timedelta(days=7)
PROBE_TAKE = 1


@dataclass
class Probe:
    """What one endpoint answered: its status and the record's shape, never a value."""

    endpoint: Endpoint
    path: str
    status: str = "-"
    total: int | None = None
    latency_ms: float = 0.0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)
    compared: bool = False  # whether a record came back to compare
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fields_text(self) -> str:
        if not self.ok:
            return f"FAILED: {self.error}"
        if self.endpoint.body is not None:
            return "logged in"
        if not self.compared:
            return "no record to compare"
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("missing", self.missing),
                ("extra", self.extra),
                ("type differs", self.retyped),
            )
            if names
        ]
        return "; ".join(parts) or f"as the contract ({len(self.endpoint.record)} fields)"


def has_type(value: Any, kind: FieldType) -> bool:
    """Whether a JSON value is of the contract's type (None fits every type)."""
    if value is None:
        return True
    if kind is FieldType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is FieldType.OBJECT:
        return isinstance(value, dict)
    if not isinstance(value, str):
        return False
    if kind is FieldType.TIMESTAMP:
        try:
            parse_api_timestamp(value)
        except TimestampError:
            return False
    return True


def compare_fields(probe: Probe, record: Mapping[str, Any]) -> None:
    """The record's field names against the contract's; only names are kept."""
    expected = probe.endpoint.record
    probe.compared = True
    probe.missing = [name for name in expected if name not in record]
    probe.extra = [name for name in record if name not in expected]
    probe.retyped = [
        name
        for name, kind in expected.items()
        if name in record and not has_type(record[name], kind)
    ]


def _status(error: SalesExecError) -> str:
    if isinstance(error, SalesExecRequestError):
        return str(error.status)
    if isinstance(error, RetriesExhaustedError):
        return error.last_status
    if isinstance(error, BadCredentialsError):
        return "401"
    return "error"


def _timed(probe: Probe, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        answer = call()
        probe.status = "200"
        return answer
    except SalesExecError as error:
        probe.status, probe.error = _status(error), str(error)
        return None
    finally:
        probe.latency_ms = (time.perf_counter() - started) * 1000


def run_probe(
    client: SalesExecClient, lead_type_uid: int | None = None, now: datetime | None = None
) -> list[Probe]:
    """Call every endpoint once; the login first (nothing else can work without it)."""
    end = (now or datetime.now(timezone.utc)).replace(tzinfo=None)
    window = {
        contract.PARAM_START: format_api_instant(end - PROBE_WINDOW),
        contract.PARAM_END: format_api_instant(end),
    }
    probes = [Probe(endpoint, client.overrides.path(endpoint.name)) for endpoint in ENDPOINTS]
    login, lead_types, *reports = probes
    _timed(login, client.authenticate)
    if not login.ok:
        for probe in probes[1:]:
            probe.error = "not called: the login failed"
        return probes
    page = _timed(lead_types, partial(client.first_page, contract.LEAD_TYPES_PATH, {}, PROBE_TAKE))
    first_lead_type = None
    if page is not None:
        lead_types.total = page[contract.ENVELOPE_TOTAL]
        if page[contract.ENVELOPE_RESULTS]:
            record = page[contract.ENVELOPE_RESULTS][0]
            compare_fields(lead_types, record)
            first_lead_type = record.get(contract.LEAD_TYPE_UID)
    uid = lead_type_uid or first_lead_type
    for probe in reports:
        if uid is None:
            probe.error = "not called: no lead type to ask for"
            continue
        report = contract.REPORTS_BY_NAME[probe.endpoint.name]
        if not report.paged:
            answer = _timed(probe, partial(client.awaiting_import_count, uid))
            if answer is not None:
                compare_fields(probe, answer)
            continue
        params = {contract.PARAM_LEAD_TYPE: uid, **window}
        page = _timed(probe, partial(client.first_page, report.path, params, PROBE_TAKE))
        if page is not None:
            probe.total = page[contract.ENVELOPE_TOTAL]
            if page[contract.ENVELOPE_RESULTS]:
                compare_fields(probe, page[contract.ENVELOPE_RESULTS][0])
    return probes


def print_probes(probes: list[Probe], client: SalesExecClient, lead_type_uid: int | None) -> None:
    print(
        f"SalesExec probe of {client.base_url} as {client.username!r}; contract overrides: "
        f"{client.overrides.describe()}"
    )
    print(
        f"reports: the {PROBE_WINDOW.days} days to now (UTC), Take={PROBE_TAKE}, lead type "
        f"{lead_type_uid if lead_type_uid is not None else 'the first of the account'}"
    )
    print(f"{'ENDPOINT':<28} {'CALL':<42} {'STATUS':>6} {'TOTAL':>7} {'LATENCY':>9}  FIELDS")
    for probe in probes:
        call = f"{probe.endpoint.method} {probe.path}"
        total = "-" if probe.total is None else str(probe.total)
        print(
            f"{probe.endpoint.name:<28} {call:<42} {probe.status:>6} {total:>7} "
            f"{probe.latency_ms:>6.0f} ms  {probe.fields_text()}"
        )
    failed = [probe.endpoint.name for probe in probes if not probe.ok]
    print(
        f"summary: {len(probes)} endpoints, {len(probes) - len(failed)} answered, "
        f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
    )


def main(client: SalesExecClient, lead_type_uids: tuple[int, ...] | None) -> int:
    """``salesexec probe``: exit 1 when any endpoint fails."""
    uid = lead_type_uids[0] if lead_type_uids else None
    probes = run_probe(client, uid)
    print_probes(probes, client, uid)
    return 0 if all(probe.ok for probe in probes) else 1
