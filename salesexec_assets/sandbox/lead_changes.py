"""Changes made to existing sandbox leads (a status change, a field edit, a return),
versioned like insertions so that the truth as of an older data version stays known."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from salesexec_assets.api.contract import LEAD_FIELDS_OBJECT, LEAD_UID
from salesexec_assets.api.timestamps import format_api_instant
from salesexec_assets.sandbox.generate import Row, lead_uid_origin, to_json


def _changed(row: Row, changes: list[Mapping[str, Any]]) -> Row:
    truth = dict(row.truth)
    wire = json.loads(row.json)
    for change in changes:
        for name, value in change.items():
            if name == LEAD_FIELDS_OBJECT:
                truth[name] = {**truth[name], **value}
                wire[name] = {**wire[name], **value}
            else:
                truth[name] = value
                wire[name] = format_api_instant(value) if isinstance(value, datetime) else value
    return Row(truth, to_json(wire))


class LeadChanges:
    """Lead UID -> its changes, each with the data version that made it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_lead: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}

    @staticmethod
    def origin(lead_uid: int) -> tuple[int, date]:
        """(lead type UID, UTC day added) of a lead."""
        return lead_uid_origin(lead_uid)

    def record(self, lead_uid: int, version: int, change: Mapping[str, Any]) -> None:
        with self._lock:
            self._by_lead.setdefault(lead_uid, []).append((version, dict(change)))

    def apply(self, rows: tuple[Row, ...], as_of: int | None) -> tuple[Row, ...]:
        """``rows`` with the changes made up to data version ``as_of`` (all when None)."""
        if not self._by_lead:
            return rows
        out = []
        for row in rows:
            history = self._by_lead.get(row.truth[LEAD_UID])
            if history:
                made = [c for version, c in history if as_of is None or version <= as_of]
                row = _changed(row, made) if made else row
            out.append(row)
        return tuple(out)
