"""Read-only queries over the analytics tables, for checks, metadata and the report.

Like the models, each is dialect-neutral SQL whose first CTE takes the first and the last
day as its only positional parameters (:func:`day_params`). Each check query returns
the offending rows: none means the check passed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from salesexec_assets.analytics.models import ANALYTICS_SCHEMA

_DAYS = "WITH days AS (SELECT CAST(? AS DATE) AS first_day, CAST(? AS DATE) AS last_day)"
_IN_DAYS = "partition_date BETWEEN (SELECT first_day FROM days) AND (SELECT last_day FROM days)"

FUNNEL = f"{ANALYTICS_SCHEMA}.lead_funnel_daily"
SPEED = f"{ANALYTICS_SCHEMA}.speed_to_lead"
REPS = f"{ANALYTICS_SCHEMA}.rep_activity_daily"


def day_params(first: date, last: date) -> list[date]:
    """The positional parameters of every query here (and of every model)."""
    return [first, last]


# --- checks ------------------------------------------------------------------------------

FUNNEL_LEADS_ADDED_MISMATCHES = f"""{_DAYS},
leads AS (SELECT partition_date AS day, count(DISTINCT lead_uid) AS n
          FROM salesexec.all_leads WHERE {_IN_DAYS} GROUP BY partition_date),
funnel AS (SELECT partition_date AS day, CAST(sum(leads_added) AS BIGINT) AS n
           FROM {FUNNEL} WHERE {_IN_DAYS} GROUP BY partition_date)
SELECT CAST(coalesce(leads.day, funnel.day) AS VARCHAR) AS day,
       coalesce(leads.n, 0) AS all_leads_rows, coalesce(funnel.n, 0) AS funnel_leads_added
FROM leads FULL JOIN funnel ON leads.day = funnel.day
WHERE coalesce(leads.n, 0) <> coalesce(funnel.n, 0)
ORDER BY 1"""

SPEED_TO_LEAD_ROW_MISMATCHES = f"""{_DAYS},
leads AS (SELECT partition_date AS day, count(DISTINCT lead_uid) AS n
          FROM salesexec.all_leads WHERE {_IN_DAYS} GROUP BY partition_date),
speed AS (SELECT partition_date AS day, count(*) AS n, count(DISTINCT lead_uid) AS leads
          FROM {SPEED} WHERE {_IN_DAYS} GROUP BY partition_date)
SELECT CAST(coalesce(leads.day, speed.day) AS VARCHAR) AS day,
       coalesce(leads.n, 0) AS all_leads_leads, coalesce(speed.n, 0) AS speed_to_lead_rows,
       coalesce(speed.leads, 0) AS speed_to_lead_leads
FROM leads FULL JOIN speed ON leads.day = speed.day
WHERE coalesce(leads.n, 0) <> coalesce(speed.n, 0)
   OR coalesce(speed.n, 0) <> coalesce(speed.leads, 0)
ORDER BY 1"""

NEGATIVE_MINUTES = f"""{_DAYS}
SELECT CAST(partition_date AS VARCHAR) AS day, lead_uid, minutes_to_first_contact
FROM {SPEED} WHERE {_IN_DAYS} AND minutes_to_first_contact < 0
ORDER BY partition_date, lead_uid"""

# --- per-day figures (metadata and the report) ------------------------------------------

DAY_TOTALS = f"""{_DAYS},
funnel AS (
    SELECT partition_date,
           CAST(sum(leads_added) AS BIGINT) AS leads_added,
           CAST(sum(leads_contacted) AS BIGINT) AS leads_contacted,
           CAST(sum(leads_worked) AS BIGINT) AS leads_worked,
           CAST(sum(leads_closed_won) AS BIGINT) AS leads_closed_won,
           CAST(sum(leads_closed_lost) AS BIGINT) AS leads_closed_lost
    FROM {FUNNEL} WHERE {_IN_DAYS} GROUP BY partition_date
),
speed AS (
    SELECT partition_date,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes_to_first_contact) AS median_minutes
    FROM {SPEED} WHERE {_IN_DAYS} GROUP BY partition_date
)
SELECT CAST(funnel.partition_date AS VARCHAR) AS day, funnel.leads_added,
       funnel.leads_contacted, funnel.leads_worked, funnel.leads_closed_won,
       funnel.leads_closed_lost,
       CAST(funnel.leads_closed_won AS DOUBLE PRECISION)
           / NULLIF(funnel.leads_closed_won + funnel.leads_closed_lost, 0) AS win_rate,
       speed.median_minutes AS median_minutes_to_first_contact
FROM funnel LEFT JOIN speed ON speed.partition_date = funnel.partition_date
ORDER BY funnel.partition_date"""

LEADS_BY_SOURCE = f"""{_DAYS}
SELECT CAST(partition_date AS VARCHAR) AS day, lead_source_name,
       CAST(sum(leads_added) AS BIGINT) AS leads_added
FROM {FUNNEL} WHERE {_IN_DAYS}
GROUP BY partition_date, lead_source_name
ORDER BY partition_date, lead_source_name"""

MINUTES_TO_FIRST_CONTACT = f"""{_DAYS}
SELECT minutes_to_first_contact FROM {SPEED}
WHERE {_IN_DAYS} AND minutes_to_first_contact IS NOT NULL
ORDER BY minutes_to_first_contact"""

REP_LEADERBOARD = f"""{_DAYS}
SELECT user_name,
       CAST(sum(actions) AS BIGINT) AS actions,
       CAST(sum(actions) FILTER (WHERE action_type_name IN ('Call', 'Email', 'SMS')) AS BIGINT)
           AS contacts
FROM {REPS} WHERE {_IN_DAYS}
GROUP BY user_uid, user_name
ORDER BY actions DESC, user_name
LIMIT 10"""

FLOAT_FIGURES = frozenset({"win_rate", "median_minutes_to_first_contact"})


def figures_by_day(totals: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``DAY_TOTALS`` rows as plain numbers per day (``YYYY-MM-DD``), for metadata the UI
    plots; a rate that has no value (no closed lead, no contact) is left out."""
    figures: dict[str, dict[str, Any]] = {}
    for row in totals.to_dict("records"):
        day = row.pop("day")
        figures[day] = {
            name: float(value) if name in FLOAT_FIGURES else int(value)
            for name, value in row.items()
            if not pd.isna(value)
        }
    return figures
