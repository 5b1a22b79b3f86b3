"""The running server's data: the pure dataset plus the leads the drift fault inserted.

Inserted leads persist for the server's lifetime and show in every later answer and in
the ground truth, exactly as a lead created in SalesExec during a client's read would.
Each insertion bumps the data's version and is logged with the report whose read caused
it, so a test can ask for the truth as it was when a report was read (``as_of``): a
lead created after a report was read is rightly missing from that report's table.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from salesexec_assets.api.contract import LEAD_UID
from salesexec_assets.sandbox.config import SandboxConfig
from salesexec_assets.sandbox.data import SandboxData
from salesexec_assets.sandbox.generate import Row, inserted_lead
from salesexec_assets.sandbox.lead_changes import LeadChanges


@dataclass(frozen=True)
class Insertion:
    """One lead the drift fault inserted: the data version it made, and during which read."""

    version: int
    report_name: str  # the report being paged when the lead was created
    lead_type_uid: int
    lead_uid: int


class LiveData(SandboxData):
    """:class:`SandboxData` that can grow; identical to it until a lead is inserted."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._inserted: dict[tuple[int, date], tuple[tuple[int, Row], ...]] = {}
        self._insertions: list[Insertion] = []
        self._version = 0
        self.changes = LeadChanges()  # leads changed through webhook events

    @property
    def version(self) -> int:
        """Bumped by every insertion, so cached query results of older data go unused."""
        return self._version

    @property
    def insertions(self) -> tuple[Insertion, ...]:
        """Every insertion so far, oldest first (the n-th made version n)."""
        with self._lock:
            return tuple(self._insertions)

    def leads_of_day(
        self, lead_type_uid: int, day: date, as_of: int | None = None
    ) -> tuple[Row, ...]:
        generated = super().leads_of_day(lead_type_uid, day)
        inserted = self._inserted.get((lead_type_uid, day), ())
        rows = generated + tuple(
            row for version, row in inserted if as_of is None or version <= as_of
        )
        return self.changes.apply(rows, as_of)

    def change_lead(self, lead_uid: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a lead's fields (``Fields`` entries are merged); returns its new truth.

        A new data version, like an insertion: queries of older versions go unused.
        """
        with self._lock:
            self._version += 1
            self.changes.record(lead_uid, self._version, changes)
        return self.lead(lead_uid)

    def lead(self, lead_uid: int) -> dict[str, Any]:
        """The current truth of one lead (KeyError when there is none)."""
        for row in self.leads_of_day(*self.changes.origin(lead_uid)):
            if row.truth[LEAD_UID] == lead_uid:
                return dict(row.truth)
        raise KeyError(lead_uid)

    def insert_lead(self, lead_type_uid: int, at: datetime, during: str = "") -> dict[str, Any]:
        """Add a new lead of this type, added and last updated exactly at ``at`` (naive UTC).

        Its UID continues the numbering of its day after the generated leads; ``during``
        names the report whose read caused the insertion, for :attr:`insertions`.
        """
        spec = self.spec(lead_type_uid)
        key = (lead_type_uid, at.date())
        with self._lock:
            existing = self._inserted.get(key, ())
            index = self.config.leads_per_day + len(existing)
            drift_from = self.config.faults.schema_drift_from
            row = inserted_lead(self.config.seed, spec, at, index, drift_from)
            self._version += 1
            self._inserted[key] = (*existing, (self._version, row))
            self._insertions.append(
                Insertion(self._version, during, lead_type_uid, row.truth[LEAD_UID])
            )
        return dict(row.truth)
