"""Ground truth helpers: what the sandbox holds, in the same shape as what was read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import parse_api_timestamp


def canonical_record(report: contract.Report, record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API sent it, with its timestamps parsed to naive UTC."""
    return {
        name: parse_api_timestamp(value)
        if value is not None and report.record.get(name) is contract.FieldType.TIMESTAMP
        else value
        for name, value in record.items()
    }


def truth_rows(
    server: Any, report: contract.Report, lead_type: int, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The records the sandbox holds for the report in ``[start, end)``."""
    return server.truth(report.name, lead_type, start, end)
