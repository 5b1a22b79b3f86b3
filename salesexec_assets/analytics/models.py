"""The analytics models as data: each is a SQL file, the table it fills, and its grain.

A model's SQL is one ``SELECT`` taking two positional parameters, the first and the last
partition day (inclusive), and returning the rows of those days, ``partition_date``
included. Running a model (:func:`run_model`) reads it with ``warehouse.query`` and
writes the rows through a :class:`RowStage` with ``warehouse.write``, replacing exactly
those days in ONE transaction: a re-run changes nothing but the load stamps, and a
failure leaves the days as they were.

The SQL is dialect-neutral (DuckDB and PostgreSQL 15): no ``GROUP BY ALL``, ``FILTER``
for conditional counts (a ``sum`` of integers is HUGEINT in DuckDB), ``percentile_cont
(0.5) WITHIN GROUP`` for medians, ``EXTRACT(EPOCH FROM a - b)`` cast to ``DOUBLE
PRECISION`` for durations (PostgreSQL returns ``numeric``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path

from salesexec_assets.partitions import consecutive_chunks
from salesexec_assets.records import PARTITION_COLUMN
from salesexec_assets.warehouse import ColumnType, RowStage, TableSpec, Warehouse, WriteResult
from salesexec_assets.warehouse.base import frame_rows

ANALYTICS_SCHEMA = "salesexec_analytics"
MODELS_DIRECTORY = Path(__file__).parent / "models"
READ_CHUNK_DAYS = 31  # days read per query: a long backfill never sits in memory at once
CONTACT_TYPES = ("Call", "Email", "SMS")  # the action types that count as a contact


@dataclass(frozen=True)
class Model:
    """One SQL model: ``models/<name>.sql`` fills ``salesexec_analytics.<name>``."""

    name: str
    description: str
    columns: dict[str, ColumnType]
    grain: tuple[str, ...]  # unique per partition_date (NULL counts as a value)

    @property
    def spec(self) -> TableSpec:
        return TableSpec(schema=ANALYTICS_SCHEMA, name=self.name, columns=self.columns)

    @property
    def path(self) -> Path:
        return MODELS_DIRECTORY / f"{self.name}.sql"

    @cached_property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def table_name(self) -> str:
        return f"{ANALYTICS_SCHEMA}.{self.name}"


_B, _D, _V, _T = ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.VARCHAR, ColumnType.TIMESTAMP

SPEED_TO_LEAD = Model(
    name="speed_to_lead",
    description="One row per lead added that day: its first Call, Email or SMS at or after "
    "it was added (over every stored action), the minutes it took, its type and user.",
    columns={
        PARTITION_COLUMN: ColumnType.DATE,
        "lead_uid": _B,
        "lead_type_uid": _B,
        "date_added_utc": _T,
        "first_contact_utc": _T,
        "minutes_to_first_contact": _D,
        "first_contact_type": _V,
        "first_contact_user_uid": _B,
    },
    grain=("lead_uid",),
)
LEAD_FUNNEL_DAILY = Model(
    name="lead_funnel_daily",
    description="Per day leads were added, lead type, source, campaign and branch: leads "
    "added, contacted, worked, closed won and lost, win rate and median minutes to first "
    "contact (a cohort view, recounted on every re-materialization).",
    columns={
        PARTITION_COLUMN: ColumnType.DATE,
        "lead_type_uid": _B,
        "lead_source_name": _V,
        "campaign_name": _V,
        "branch_name": _V,
        "leads_added": _B,
        "leads_contacted": _B,
        "leads_worked": _B,
        "leads_closed_won": _B,
        "leads_closed_lost": _B,
        "win_rate": _D,
        "median_minutes_to_first_contact": _D,
    },
    grain=("lead_type_uid", "lead_source_name", "campaign_name", "branch_name"),
)
REP_ACTIVITY_DAILY = Model(
    name="rep_activity_daily",
    description="Per action day, user and action type: actions taken and distinct leads touched.",
    columns={
        PARTITION_COLUMN: ColumnType.DATE,
        "user_uid": _B,
        "user_name": _V,
        "action_type_name": _V,
        "actions": _B,
        "leads_touched": _B,
    },
    grain=("user_uid", "user_name", "action_type_name"),
)

# In dependency order: lead_funnel_daily reads speed_to_lead.
MODELS: tuple[Model, ...] = (SPEED_TO_LEAD, LEAD_FUNNEL_DAILY, REP_ACTIVITY_DAILY)
MODELS_BY_NAME = {model.name: model for model in MODELS}


def run_model(
    store: Warehouse,
    model: Model,
    days: Sequence[date],
    *,
    run_id: str,
    loaded_at: datetime,
) -> WriteResult:
    """Compute ``model`` for ``days`` and replace those days of its table, in one transaction.

    The SELECT runs once per run of consecutive days (at most ``READ_CHUNK_DAYS``); the
    rows are staged on disk, then written together. A day without rows ends up empty.
    """
    with RowStage(model.spec) as stage:
        for chunk in consecutive_chunks(days, READ_CHUNK_DAYS):
            stage.add(frame_rows(store.query(model.sql, [chunk[0], chunk[-1]])))
        return store.write(
            stage,
            replace_partitions=days,
            partitions=days,
            run_id=run_id,
            loaded_at=loaded_at,
        )
