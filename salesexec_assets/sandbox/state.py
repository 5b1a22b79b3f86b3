"""The running server's data: the pure dataset plus what changed while it served.

Two faults change the data during a client's read, as users working in SalesExec would:
offset drift inserts a lead, and a row leaving its window (the ``premove`` fault) deletes
a lead, updates it (its LastUpdatedUtc moves to the clock's now, out of a past day) or
reopens it (it leaves Closed Leads). Changes persist for the server's lifetime and show
in every later answer and in the ground truth. Each change bumps the data's version and
is logged with the report whose read caused it, so a test can ask for the truth as it
was at any version (``as_of``): a lead created after a report was read is rightly
missing from that report's table, and one that left after it was read rightly present.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.contract import LEAD_UID, Pull, Report
from salesexec_assets.sandbox import catalog
from salesexec_assets.sandbox.config import SandboxConfig
from salesexec_assets.sandbox.data import SandboxData
from salesexec_assets.sandbox.generate import Row, edited, inserted_lead, lead_day
from salesexec_assets.sandbox.lead_changes import LeadChanges
from salesexec_assets.sandbox.timeforms import Form, stamp


class ChangeKind(str, Enum):
    """What happened to a lead."""

    INSERTED = "inserted"
    DELETED = "deleted"  # the lead and its actions are gone
    UPDATED = "updated"  # LastUpdatedUtc moved to the clock's now
    REOPENED = "reopened"  # a closed lead is worked again: no ClosedUtc, updated now


# How a row leaves a report's window, by the report's window field: a lead updated leaves
# its past day of Last Updated Leads, a reopened lead leaves Closed Leads; a deleted lead
# leaves All Leads, its actions leave All Actions, and its branch's count drops.
LEAVES_BY: dict[str | None, ChangeKind] = {
    contract.DATE_ADDED: ChangeKind.DELETED,
    contract.ACTION_DATE: ChangeKind.DELETED,
    contract.LAST_UPDATED: ChangeKind.UPDATED,
    contract.CLOSED: ChangeKind.REOPENED,
    None: ChangeKind.DELETED,  # Branch Lead Count: every lead of the branch in the window
}


@dataclass(frozen=True)
class DataChange:
    """One change to one lead: the data version it made, and during which read."""

    version: int
    report_name: str  # the report being paged when the change was made
    lead_type_uid: int
    lead_uid: int
    kind: ChangeKind = ChangeKind.INSERTED
    window: tuple[datetime, datetime] | None = None  # the window being paged, if known


_History = tuple[tuple[int, Row | None], ...]  # (version, the lead from then on; None: gone)


class LiveData(SandboxData):
    """:class:`SandboxData` that can change; identical to it until a fault changes it."""

    def __init__(
        self, config: SandboxConfig | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(config, clock)
        self._lock = threading.Lock()
        self._inserted: dict[tuple[int, date], tuple[tuple[int, Row], ...]] = {}
        self._edits: dict[tuple[int, date], dict[int, _History]] = {}
        self._changes: list[DataChange] = []
        self._version = 0
        self.lead_edits = LeadChanges()  # leads changed through webhook events

    @property
    def version(self) -> int:
        """Bumped by every change, so cached query results of older data go unused."""
        return self._version

    @property
    def changes(self) -> tuple[DataChange, ...]:
        """Every change so far, oldest first (several leads may share one version)."""
        with self._lock:
            return tuple(self._changes)

    @property
    def insertions(self) -> tuple[DataChange, ...]:
        """The leads inserted so far, oldest first."""
        return tuple(c for c in self.changes if c.kind is ChangeKind.INSERTED)

    def leads_of_day(
        self, lead_type_uid: int, day: date, as_of: int | None = None, at: datetime | None = None
    ) -> tuple[Row, ...]:
        at = at or self.visible_now()
        generated = super().leads_of_day(lead_type_uid, day, at=at)
        inserted = self._inserted.get((lead_type_uid, day), ())
        rows = generated + tuple(
            row
            for version, row in inserted
            if (as_of is None or version <= as_of) and row.truth[contract.DATE_ADDED] <= at
        )
        edits = self._edits.get((lead_type_uid, day))
        if edits:
            current = (
                _as_of(edits[row.truth[LEAD_UID]], as_of, row)
                if row.truth[LEAD_UID] in edits
                else row
                for row in rows
            )
            rows = tuple(row for row in current if row is not None)
        return self.lead_edits.apply(rows, as_of)

    def change_lead(self, lead_uid: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a lead's fields (``Fields`` entries are merged); returns its new truth.

        A new data version, like an insertion: queries of older versions go unused.
        """
        with self._lock:
            self._version += 1
            self.lead_edits.record(lead_uid, self._version, changes)
        return self.lead(lead_uid)

    def lead(self, lead_uid: int) -> dict[str, Any]:
        """The current truth of one lead (KeyError when there is none)."""
        for row in self.leads_of_day(*self.lead_edits.origin(lead_uid)):
            if row.truth[LEAD_UID] == lead_uid:
                return dict(row.truth)
        raise KeyError(lead_uid)

    def actions_of_day(
        self, lead_type_uid: int, day: date, as_of: int | None = None, at: datetime | None = None
    ) -> tuple[Row, ...]:
        actions = super().actions_of_day(lead_type_uid, day, at=at)
        edits = self._edits.get((lead_type_uid, day))
        if not edits:
            return actions
        gone = {uid for uid, history in edits.items() if _as_of(history, as_of, True) is None}
        return tuple(row for row in actions if row.truth[LEAD_UID] not in gone)

    def edited_days(self, lead_type_uid: int) -> frozenset[date]:
        with self._lock:
            return frozenset(day for uid, day in self._edits if uid == lead_type_uid)

    # --- the faults' changes ----------------------------------------------------------
    def insert_lead(
        self,
        lead_type_uid: int,
        at: datetime,
        during: str = "",
        window: tuple[datetime, datetime] | None = None,
    ) -> dict[str, Any]:
        """Add a new lead of this type, added and last updated exactly at ``at`` (naive UTC).

        Its UID continues the numbering of its day after the generated leads; ``during``
        names the report whose read (of ``window``) caused the insertion, for :attr:`changes`.
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
            uid = row.truth[LEAD_UID]
            self._changes.append(
                DataChange(self._version, during, lead_type_uid, uid, window=window)
            )
        return dict(row.truth)

    def remove_from_window(
        self,
        report: Report,
        lead_type_uid: int,
        start: datetime,
        end: datetime,
        index: int,
        during: str = "",
    ) -> tuple[DataChange, ...]:
        """Make the report's row at ``index`` of ``[start, end)`` leave the window, the way
        rows leave that report (:data:`LEAVES_BY`); returns the changes (none when the
        window has no such row)."""
        rows = self.rows(report, lead_type_uid, start, end)
        if not 0 <= index < len(rows):
            return ()
        row = rows[index].truth
        if report.pull is Pull.DAILY_AGGREGATE:
            branch = row[contract.BRANCH_UID]
            leads = self.rows(contract.REPORTS_BY_NAME["all_leads"], lead_type_uid, start, end)
            uids = [r.truth[LEAD_UID] for r in leads if r.truth[contract.BRANCH_UID] == branch]
        else:
            uids = [row[LEAD_UID]]
        kind = LEAVES_BY[report.window_field]
        return self.change_leads(lead_type_uid, uids, kind, during, (start, end))

    def change_leads(
        self,
        lead_type_uid: int,
        uids: list[int],
        kind: ChangeKind,
        during: str = "",
        window: tuple[datetime, datetime] | None = None,
    ) -> tuple[DataChange, ...]:
        """Delete, update or reopen existing leads, all in one new data version."""
        now = self.now()
        with self._lock:
            version = self._version + 1
            made = []
            for uid in uids:
                day = lead_day(uid)
                lead = next(
                    (r for r in self.leads_of_day(lead_type_uid, day) if r.truth[LEAD_UID] == uid),
                    None,
                )
                if lead is None:
                    continue
                # copied, not changed in place: readers iterate the day's edits unlocked
                day_edits = dict(self._edits.get((lead_type_uid, day), {}))
                changed = self._changed(lead, kind, now, version)
                day_edits[uid] = (*day_edits.get(uid, ()), (version, changed))
                self._edits[(lead_type_uid, day)] = day_edits
                made.append(DataChange(version, during, lead_type_uid, uid, kind, window))
            if made:
                self._version = version
                self._changes.extend(made)
        return tuple(made)

    def _changed(self, lead: Row, kind: ChangeKind, now: datetime, version: int) -> Row | None:
        if kind is ChangeKind.DELETED:
            return None
        # never before the lead's last update: an update moves a lead forward in time
        updated = max(now, lead.truth[contract.LAST_UPDATED] + timedelta(microseconds=1))
        rng = random.Random(f"salesexec-sandbox:{self.config.seed}:{kind.value}:{version}")
        stamps = {contract.LAST_UPDATED: stamp(rng, updated, form=Form.Z7)}
        if kind is ChangeKind.UPDATED:
            return edited(lead, {}, stamps)
        values = {
            contract.LIFE_CYCLE_STAGE: catalog.STAGE_WORKING,
            contract.LEAD_STATUS: catalog.WORKING_STATUS,
        }
        return edited(lead, values, {**stamps, contract.CLOSED: None})


def _as_of(history: _History, as_of: int | None, unchanged: Any) -> Any:
    """The lead as of a version: its last change up to it, or ``unchanged`` if none."""
    current = unchanged
    for version, row in history:
        if as_of is not None and version > as_of:
            break
        current = row
    return current
