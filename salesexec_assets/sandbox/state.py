"""The running server's data: the pure dataset plus the leads the drift fault inserted.

Inserted leads persist for the server's lifetime and show in every later answer and in
the ground truth, exactly as a lead created in SalesExec during a client's read would.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any

from salesexec_assets.sandbox.config import SandboxConfig
from salesexec_assets.sandbox.data import SandboxData
from salesexec_assets.sandbox.generate import Row, inserted_lead


class LiveData(SandboxData):
    """:class:`SandboxData` that can grow; identical to it until a lead is inserted."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._inserted: dict[tuple[int, date], tuple[Row, ...]] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped by every insertion, so cached query results of older data go unused."""
        return self._version

    def leads_of_day(self, lead_type_uid: int, day: date) -> tuple[Row, ...]:
        generated = super().leads_of_day(lead_type_uid, day)
        return generated + self._inserted.get((lead_type_uid, day), ())

    def insert_lead(self, lead_type_uid: int, at: datetime) -> dict[str, Any]:
        """Add a new lead of this type, added and last updated exactly at ``at`` (naive UTC).

        Its UID continues the numbering of its day after the generated leads.
        """
        spec = self.spec(lead_type_uid)
        key = (lead_type_uid, at.date())
        with self._lock:
            existing = self._inserted.get(key, ())
            index = self.config.leads_per_day + len(existing)
            drift_from = self.config.faults.schema_drift_from
            row = inserted_lead(self.config.seed, spec, at, index, drift_from)
            self._inserted[key] = (*existing, row)
            self._version += 1
        return dict(row.truth)
