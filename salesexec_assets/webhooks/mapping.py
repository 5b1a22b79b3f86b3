"""Which report partitions a webhook event touches: a table of data, and pure functions.

An event says what happened to one lead and when (its ``*Utc`` instant). A report's row
for that lead sits in the partition of the report's own window field, so an event touches:

- the partition of the day of its instant, for the reports whose window field the event
  sets (Lead Created: All Leads and Branch Lead Count; any change: Last Updated Leads; a
  status change into a closed stage: Closed Leads);
- for a change to a lead that is already stored, the partitions its stored rows sit in:
  those rows are now stale (All Leads holds the lead's current fields and status; the
  lead also leaves its old Last Updated Leads day). These days come from the warehouse.

Days are calendar days in the partitions' time zone. Days that are not partitions (before
the start date, after today) are dropped and counted. Touched days are coalesced into
runs: per contiguous block of days, one run for every report touched on exactly those
days, so a burst of events asks for each report's days once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum

from salesexec_assets.api.contract import CLOSED_LIFE_CYCLE_STAGES
from salesexec_assets.partitions import local_day


class Day(str, Enum):
    """Where the day of a touched partition comes from."""

    EVENT = "event"  # the day of the event's *Utc instant
    STORED = "stored"  # the day the lead's row sits in, in the stored table (warehouse)


@dataclass(frozen=True)
class Touch:
    """An event of some type touches ``report`` on the ``day`` it names."""

    report: str
    day: Day
    only_into_closed_stage: bool = False  # 103 only: the new stage is a closed one


_LEAD_CHANGED = (
    Touch("last_updated_leads", Day.EVENT),
    Touch("all_leads", Day.STORED),
    Touch("last_updated_leads", Day.STORED),
    Touch("closed_leads", Day.STORED),
)

# The mapping table: webhook type -> the partitions it touches.
EVENT_TOUCHES: Mapping[str, tuple[Touch, ...]] = {
    "100": (Touch("all_leads", Day.EVENT), Touch("branch_lead_count", Day.EVENT)),
    "101": _LEAD_CHANGED,
    "102": _LEAD_CHANGED,
    "103": (*_LEAD_CHANGED, Touch("closed_leads", Day.EVENT, only_into_closed_stage=True)),
}

# Reports any event may ask for, and those whose stored days are looked up.
TOUCHED_REPORTS: tuple[str, ...] = tuple(
    sorted({t.report for ts in EVENT_TOUCHES.values() for t in ts})
)
STORED_DAY_REPORTS: tuple[str, ...] = tuple(
    sorted({t.report for ts in EVENT_TOUCHES.values() for t in ts if t.day is Day.STORED})
)

# (report, lead GUID in lower case) -> the days its rows sit in, in the stored table.
StoredDays = Mapping[tuple[str, str], Iterable[date]]


@dataclass(frozen=True)
class Event:
    """What the mapping needs of an inbox event."""

    id: int
    kind: str
    lead_guid: str | None
    instant: datetime | None  # naive UTC
    stage: str | None = None


def needs_stored_days(event: Event) -> bool:
    return any(t.day is Day.STORED for t in EVENT_TOUCHES.get(event.kind, ()))


def event_touches(event: Event, zone: str, stored: StoredDays) -> set[tuple[str, date]]:
    """The (report, day) partitions one event touches; unknown events touch none."""
    touched: set[tuple[str, date]] = set()
    for touch in EVENT_TOUCHES.get(event.kind, ()):
        if touch.only_into_closed_stage and event.stage not in CLOSED_LIFE_CYCLE_STAGES:
            continue
        if touch.day is Day.EVENT and event.instant is not None:
            touched.add((touch.report, local_day(event.instant, zone)))
        elif touch.day is Day.STORED and event.lead_guid:
            for day in stored.get((touch.report, event.lead_guid.lower()), ()):
                touched.add((touch.report, day))
    return touched


@dataclass(frozen=True)
class PlannedRun:
    """One run to ask for: reports over the days ``first`` .. ``last`` (contiguous)."""

    reports: tuple[str, ...]
    first: date
    last: date
    event_ids: frozenset[int]

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass
class Plan:
    """The runs a batch of events asks for, and the events and days left out."""

    runs: list[PlannedRun] = field(default_factory=list)
    events: int = 0
    unknown_events: int = 0
    days_out_of_range: set[tuple[str, date]] = field(default_factory=set)


def contiguous_blocks(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days as (first, last) blocks of consecutive days."""
    blocks: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if blocks and day == blocks[-1][1] + timedelta(days=1):
            blocks[-1] = (blocks[-1][0], day)
        else:
            blocks.append((day, day))
    return blocks


def plan_runs(
    events: Sequence[Event], zone: str, stored: StoredDays, first_day: date, last_day: date
) -> Plan:
    """The coalesced runs for ``events``; days outside [first_day, last_day] are dropped."""
    plan = Plan(events=len(events))
    askers: dict[tuple[str, date], set[int]] = {}
    for event in events:
        if event.kind not in EVENT_TOUCHES:
            plan.unknown_events += 1
            continue
        for report, day in event_touches(event, zone, stored):
            if first_day <= day <= last_day:
                askers.setdefault((report, day), set()).add(event.id)
            else:
                plan.days_out_of_range.add((report, day))
    by_block: dict[tuple[date, date], list[str]] = {}
    for report in TOUCHED_REPORTS:
        days = [day for (name, day) in askers if name == report]
        for block in contiguous_blocks(days):
            by_block.setdefault(block, []).append(report)
    for (first, last), reports in sorted(by_block.items()):
        ids = {
            event_id
            for report in reports
            for (name, day), asked in askers.items()
            if name == report and first <= day <= last
            for event_id in asked
        }
        plan.runs.append(PlannedRun(tuple(reports), first, last, frozenset(ids)))
    return plan
