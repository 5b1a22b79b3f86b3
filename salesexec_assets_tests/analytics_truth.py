"""The analytics figures computed independently from the sandbox's ground truth.

Written from the definitions in ``docs/analytics.md``, in plain Python over the records
the sandbox holds (``server.truth``), never from our tables: a model that drifts from its
definition disagrees with these.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets_tests.truth import local_day_window_utc

LEAD_TYPES = (1, 2, 3)
CONTACT_TYPES = {"Call", "Email", "SMS"}


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def truth_records(server: Any, report: str, days: Sequence[date]) -> list[dict[str, Any]]:
    """Every record of ``report`` whose window instant falls in ``days`` (UTC), each tagged
    with its day as ``_day``."""
    records = []
    for day in days:
        start, end = local_day_window_utc(day, "UTC")
        for lead_type in LEAD_TYPES:
            records.extend({**r, "_day": day} for r in server.truth(report, lead_type, start, end))
    return records


def speed_to_lead(
    leads: Iterable[dict[str, Any]], actions: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per lead: its earliest Call/Email/SMS at or after it was added."""
    by_lead: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for action in actions:
        if action[contract.ACTION_TYPE] in CONTACT_TYPES:
            by_lead[action[contract.LEAD_UID]].append(action)
    rows = []
    for lead in leads:
        added = lead[contract.DATE_ADDED]
        contacts = [a for a in by_lead[lead[contract.LEAD_UID]] if a[contract.ACTION_DATE] >= added]
        first = min(
            contacts, key=lambda a: (a[contract.ACTION_DATE], a[contract.ACTION_UID]), default=None
        )
        rows.append(
            {
                "partition_date": lead["_day"],
                "lead_uid": lead[contract.LEAD_UID],
                "lead_type_uid": lead[contract.LEAD_TYPE_UID],
                "date_added_utc": added,
                "first_contact_utc": first[contract.ACTION_DATE] if first else None,
                "minutes_to_first_contact": (first[contract.ACTION_DATE] - added).total_seconds()
                / 60
                if first
                else None,
                "first_contact_type": first[contract.ACTION_TYPE] if first else None,
                "first_contact_user_uid": first[contract.ACTION_USER_UID] if first else None,
            }
        )
    return rows


def lead_funnel_daily(
    leads: Iterable[dict[str, Any]], speed_rows: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per day, lead type, source, campaign and branch (None a value like any other)."""
    speed = {row["lead_uid"]: row for row in speed_rows}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for lead in leads:
        key = (
            lead["_day"],
            lead[contract.LEAD_TYPE_UID],
            lead[contract.LEAD_SOURCE_NAME],
            lead[contract.CAMPAIGN_NAME],
            lead[contract.BRANCH_NAME],
        )
        groups[key].append(lead)
    rows = []
    for (day, lead_type, source, campaign, branch), members in groups.items():
        stages = [lead[contract.LIFE_CYCLE_STAGE] for lead in members]
        contacted = [
            speed[lead[contract.LEAD_UID]]["first_contact_utc"] is not None for lead in members
        ]
        minutes = [
            speed[lead[contract.LEAD_UID]]["minutes_to_first_contact"]
            for lead, was in zip(members, contacted, strict=True)
            if was
        ]
        won = stages.count("Closed Won")
        lost = stages.count("Closed Lost")
        rows.append(
            {
                "partition_date": day,
                "lead_type_uid": lead_type,
                "lead_source_name": source,
                "campaign_name": campaign,
                "branch_name": branch,
                "leads_added": len(members),
                "leads_contacted": sum(contacted),
                "leads_worked": sum(
                    was or (stage is not None and stage != "New")
                    for was, stage in zip(contacted, stages, strict=True)
                ),
                "leads_closed_won": won,
                "leads_closed_lost": lost,
                "win_rate": won / (won + lost) if won + lost else None,
                "median_minutes_to_first_contact": statistics.median(minutes) if minutes else None,
            }
        )
    return rows


def rep_activity_daily(actions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per action day, user and action type: actions and distinct leads touched."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for action in actions:
        key = (
            action["_day"],
            action[contract.ACTION_USER_UID],
            action[contract.ACTION_USER_NAME],
            action[contract.ACTION_TYPE],
        )
        groups[key].append(action)
    return [
        {
            "partition_date": day,
            "user_uid": user_uid,
            "user_name": user_name,
            "action_type_name": action_type,
            "actions": len(members),
            "leads_touched": len({a[contract.LEAD_UID] for a in members}),
        }
        for (day, user_uid, user_name, action_type), members in groups.items()
    ]


# --- the figures of the checks', the metadata's and the report's queries -----------------


def day_totals(
    funnel_rows: Iterable[dict[str, Any]], speed_rows: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per day with leads: the funnel's counts summed, the win rate over closed leads and
    the median minutes to first contact of the day's contacted leads."""
    counts = ("leads_added", "leads_contacted", "leads_worked")
    counts += ("leads_closed_won", "leads_closed_lost")
    by_day: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(counts, 0))
    for row in funnel_rows:
        for name in counts:
            by_day[row["partition_date"]][name] += row[name]
    minutes: dict[date, list[float]] = defaultdict(list)
    for row in speed_rows:
        if row["minutes_to_first_contact"] is not None:
            minutes[row["partition_date"]].append(row["minutes_to_first_contact"])
    rows = []
    for day in sorted(by_day):
        total = by_day[day]
        closed = total["leads_closed_won"] + total["leads_closed_lost"]
        rows.append(
            {
                "day": str(day),
                **total,
                "win_rate": total["leads_closed_won"] / closed if closed else None,
                "median_minutes_to_first_contact": statistics.median(minutes[day])
                if minutes[day]
                else None,
            }
        )
    return rows


def leads_by_source(funnel_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leads added per day and source, ordered by day then source (no source last)."""
    added: dict[tuple[date, str | None], int] = defaultdict(int)
    for row in funnel_rows:
        added[(row["partition_date"], row["lead_source_name"])] += row["leads_added"]
    ordered = sorted(added, key=lambda key: (key[0], key[1] is None, key[1] or ""))
    return [
        {"day": str(day), "lead_source_name": source, "leads_added": added[(day, source)]}
        for day, source in ordered
    ]


def minutes_to_first_contact(speed_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every known minutes to first contact, smallest first."""
    return [
        {"minutes_to_first_contact": minutes}
        for minutes in sorted(
            row["minutes_to_first_contact"]
            for row in speed_rows
            if row["minutes_to_first_contact"] is not None
        )
    ]


def rep_leaderboard(rep_rows: Iterable[dict[str, Any]], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` users by actions (then name): actions, and calls, emails and SMS (None
    when the user made none)."""
    users: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rep_rows:
        user = users.setdefault(
            (row["user_uid"], row["user_name"]),
            {"user_name": row["user_name"], "actions": 0, "contacts": None},
        )
        user["actions"] += row["actions"]
        if row["action_type_name"] in CONTACT_TYPES:
            user["contacts"] = (user["contacts"] or 0) + row["actions"]
    return sorted(users.values(), key=lambda u: (-u["actions"], u["user_name"]))[:top]
