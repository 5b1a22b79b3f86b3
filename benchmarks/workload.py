"""What every contender loads, described once so that all of them load exactly the same.

A :class:`Workload` is written to a JSON file by the driver and read back by each
contender's child process. It fixes the report window, the UTC windows the API is asked
for (cut like our own chunking, so every contender sends the same calls and hits the same
cached pages of the sandbox), and where the contender's DuckDB file goes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import format_api_instant

# The two reports of the benchmark: (report name in the contract, its key field)
REPORTS: tuple[str, ...] = ("all_leads", "all_actions")


def report(name: str) -> contract.Report:
    """The contract's description of a benchmarked report."""
    return contract.REPORTS_BY_NAME[name]


@dataclass(frozen=True)
class Window:
    """One API window ``[start, end)`` (naive UTC), as every contender sends it."""

    start: datetime
    end: datetime

    @property
    def start_text(self) -> str:
        return format_api_instant(self.start)

    @property
    def end_text(self) -> str:
        return format_api_instant(self.end)


@dataclass(frozen=True)
class Workload:
    """One load: the sandbox to read, the days, and where to write. JSON round-trips."""

    base_url: str
    first_day: date
    days: int
    db_path: str
    work_dir: str
    chunk_days: int = 7  # ours writes per chunk of days; the others ask the same windows
    page_size: int = contract.TAKE_MAX
    concurrency: int | None = None  # ours' max_concurrent_requests; None: its default
    username: str = "sandbox"
    password: str = field(default="sandbox", repr=False)
    reports: tuple[str, ...] = REPORTS
    lead_type_uids: tuple[int, ...] | None = None  # None: every lead type of the account
    warm_overlapping: bool = False  # the probe also reads ours' overlapping pages (warm-up)

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)

    def windows(self) -> list[Window]:
        """The UTC windows of the report window, ``chunk_days`` days each (UTC days)."""
        windows = []
        day = self.first_day
        while day <= self.last_day:
            stop = min(self.last_day, day + timedelta(days=self.chunk_days - 1))
            start = datetime.combine(day, datetime.min.time())
            end = datetime.combine(stop + timedelta(days=1), datetime.min.time())
            windows.append(Window(start, end))
            day = stop + timedelta(days=1)
        return windows

    def to_json(self) -> str:
        values: dict[str, Any] = asdict(self)
        values["first_day"] = self.first_day.isoformat()
        values["reports"] = list(self.reports)
        uids = self.lead_type_uids
        values["lead_type_uids"] = None if uids is None else list(uids)
        return json.dumps(values, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Workload:
        values = json.loads(text)
        values["first_day"] = date.fromisoformat(values["first_day"])
        values["reports"] = tuple(values["reports"])
        uids = values.get("lead_type_uids")
        values["lead_type_uids"] = None if uids is None else tuple(uids)
        return cls(**values)

    def save(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path


@dataclass(frozen=True)
class StoredTable:
    """Where a contender put one report: a qualified DuckDB table and its key column."""

    report: str
    table: str
    key: str


@dataclass
class LoadOutput:
    """What a contender says about its own load; the harness adds time and memory."""

    tables: list[StoredTable]
    phases: dict[str, float] = field(default_factory=dict)  # named sub-timings, seconds
    rows: int | None = None  # rows read, for a reader that stores nothing (the sandbox probe)
    client_requests: int | None = None  # when the contender counts its own calls
    notes: list[str] = field(default_factory=list)
