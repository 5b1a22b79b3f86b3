"""The daily HTML report: read the analytics tables, draw the charts, fill the template.

One self-contained file per day: the CSS is inline, the charts are inline SVG
(:mod:`salesexec_assets.analytics.charts`), there is no script, font, image or link to
fetch, so it opens offline and prints as it shows. This module knows the warehouse's
``query`` and nothing of Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from salesexec_assets.analytics import charts, queries
from salesexec_assets.warehouse import Warehouse

TEMPLATE = Path(__file__).parent / "templates" / "report.html"
WINDOW_DAYS = 30
LEADERBOARD_DAYS = 7
NO_SOURCE = "(no source)"
# Bins of minutes to first contact; the first is the 5 minutes that matter most.
MINUTE_EDGES = (0, 5, 15, 30, 60, 240, 1440, 4320)
MINUTE_LABELS = ("<5", "5-15", "15-30", "30-60", "1-4 h", "4-24 h", "1-3 d", "≥3 d")
NO_VALUE = "n/a"


@dataclass(frozen=True)
class ReportData:
    """What the report of ``day`` shows, read from the analytics tables."""

    day: date
    totals: pd.DataFrame  # DAY_TOTALS of the window, one row per day with leads
    leads_by_source: pd.DataFrame
    minutes: list[float]
    leaderboard: pd.DataFrame

    @property
    def window(self) -> list[date]:
        return [self.day - timedelta(days=offset) for offset in range(WINDOW_DAYS - 1, -1, -1)]

    def day_totals(self) -> dict[str, Any]:
        """The report day's funnel totals; zeros (and no rates) for a day without leads."""
        rows = self.totals[self.totals["day"] == str(self.day)].to_dict("records")
        row = rows[0] if rows else {"leads_added": 0}
        return {name: None if pd.isna(value) else value for name, value in row.items()}

    def metric_values(self) -> dict[str, float | int]:
        """The numbers the UI plots per partition; a rate without a value is left out."""
        figures = queries.figures_by_day(self.totals).get(str(self.day), {})
        return {"leads_added": 0} | {
            name: figures[name]
            for name in ("leads_added", "win_rate", "median_minutes_to_first_contact")
            if name in figures
        }


def read_report_data(store: Warehouse, day: date) -> ReportData:
    """The window's figures, through ``warehouse.query`` only."""
    first = day - timedelta(days=WINDOW_DAYS - 1)
    window = queries.day_params(first, day)
    return ReportData(
        day=day,
        totals=store.query(queries.DAY_TOTALS, window),
        leads_by_source=store.query(queries.LEADS_BY_SOURCE, window),
        minutes=[
            float(value)
            for value in store.query(queries.MINUTES_TO_FIRST_CONTACT, window)[
                "minutes_to_first_contact"
            ]
        ],
        leaderboard=store.query(
            queries.REP_LEADERBOARD,
            queries.day_params(day - timedelta(days=LEADERBOARD_DAYS - 1), day),
        ),
    )


def _percent(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.0%}"


def _duration(minutes: float | None) -> str:
    """Minutes as a person reads them: ``3.5 min``, ``4.2 h``, ``2.6 d``."""
    if minutes is None:
        return NO_VALUE
    if minutes < 60:
        return f"{minutes:.1f} min"
    if minutes < 1440:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def _leaderboard_table(leaderboard: pd.DataFrame) -> str:
    if leaderboard.empty:
        return '<p class="note">No actions in these days.</p>'
    rows = "".join(
        f"<tr><td class='n'>{rank}</td><td>{escape(str(row.user_name or '(unnamed)'))}</td>"
        f"<td class='n'>{int(row.contacts or 0)}</td><td class='n'>{int(row.actions)}</td></tr>"
        for rank, row in enumerate(leaderboard.itertuples(), start=1)
    )
    return (
        "<table><thead><tr><th class='n'>#</th><th>rep</th>"
        "<th class='n'>calls, emails, SMS</th><th class='n'>all actions</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def render_report(data: ReportData, *, generated: datetime) -> str:
    """The report as one HTML document."""
    days = [str(day) for day in data.window]
    by_source: dict[str, list[float]] = {}
    for row in data.leads_by_source.itertuples():
        name = row.lead_source_name if isinstance(row.lead_source_name, str) else NO_SOURCE
        values = by_source.setdefault(name, [0.0] * len(days))
        values[days.index(row.day)] += float(row.leads_added)
    totals = data.day_totals()
    rates = {row["day"]: row["win_rate"] for row in data.totals.to_dict("records")}
    window_added = int(data.totals["leads_added"].sum()) if not data.totals.empty else 0
    window_contacted = int(data.totals["leads_contacted"].sum()) if not data.totals.empty else 0
    funnel = [
        (label, float(totals.get(name) or 0))
        for label, name in (
            ("added", "leads_added"),
            ("contacted", "leads_contacted"),
            ("worked", "leads_worked"),
            ("closed won", "leads_closed_won"),
            ("closed lost", "leads_closed_lost"),
        )
    ]
    added = totals.get("leads_added") or 0
    fields = {
        "day": str(data.day),
        "generated": generated.strftime("%Y-%m-%d %H:%M"),
        "leads_added": str(int(added)),
        "contact_rate": _percent((totals.get("leads_contacted") or 0) / added if added else None),
        "median_minutes": _duration(totals.get("median_minutes_to_first_contact")),
        "win_rate": _percent(totals.get("win_rate")),
        "window": str(WINDOW_DAYS),
        "leaderboard_days": str(LEADERBOARD_DAYS),
        "leads_by_source": charts.stacked_bars(
            days, dict(sorted(by_source.items())), "Leads added per day by source"
        ),
        "funnel": charts.horizontal_bars(funnel, f"Funnel of the leads added on {data.day}"),
        "minutes": charts.histogram(
            data.minutes, MINUTE_EDGES, MINUTE_LABELS, "Distribution of minutes to first contact"
        ),
        "never_contacted": str(window_added - window_contacted),
        "window_leads": str(window_added),
        "win_rate_trend": charts.line(
            days, [None if pd.isna(rates.get(d)) else rates.get(d) for d in days], "Win rate"
        ),
        "leaderboard": _leaderboard_table(data.leaderboard),
    }
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(fields)


def summary_markdown(data: ReportData, path: Path) -> str:
    """The short summary the materialization shows."""
    totals = data.day_totals()
    added = totals.get("leads_added") or 0
    contacted = totals.get("leads_contacted") or 0
    return "\n".join(
        [
            f"**SalesExec leads, {data.day}**: `{path}`",
            "",
            "| measure | value |",
            "|---|---|",
            f"| leads added | {int(added)} |",
            f"| contacted | {int(contacted)} ({_percent(contacted / added if added else None)}) |",
            f"| median time to first contact | "
            f"{_duration(totals.get('median_minutes_to_first_contact'))} |",
            f"| won / lost | {int(totals.get('leads_closed_won') or 0)} / "
            f"{int(totals.get('leads_closed_lost') or 0)} |",
            f"| win rate | {_percent(totals.get('win_rate'))} |",
        ]
    )
