"""The sandbox's dataset, answered the way the API's reports answer.

:class:`SandboxData` is pure: built from a config and a clock alone, it serves as ground
truth in tests without any server. Each day's leads are generated whole, with their
history, and served as they stood at the clock (:meth:`SandboxData.visible_now`). Days
are generated on demand and kept in an LRU cache; query results are cached too, so that
paging through a report does not regenerate it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache, partial
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.contract import (
    ACTION_RECORD,
    AWAITING_IMPORT_COUNT_RECORD,
    BRANCH_LEAD_COUNT_RECORD,
    LEAD_TYPE_GUID,
    LEAD_TYPE_NAME,
    LEAD_TYPE_RECORD,
    LEAD_TYPE_UID,
    REPORTS_BY_NAME,
    Pull,
    Report,
)
from salesexec_assets.api.timestamps import to_naive_utc
from salesexec_assets.sandbox import catalog
from salesexec_assets.sandbox.catalog import LeadTypeSpec
from salesexec_assets.sandbox.config import SandboxConfig
from salesexec_assets.sandbox.generate import (
    DAY,
    LEAD_MAX_AGE,
    Row,
    generate_actions,
    generate_leads,
    in_contract_order,
    lead_as_of,
    to_json,
)
from salesexec_assets.sandbox.timeforms import Form, stamp

# Generated days kept: about 40k leads (and their actions), at least a week per lead type.
_LEADS_IN_CACHE = 40_000
_MIN_DAYS_IN_CACHE = 8
_QUERIES_IN_CACHE = 32  # paging re-reads one query's result many times
_RECENT_DAYS_IN_CACHE = 64  # days still filling in, as of one clock step each
CLOCK_STEP = timedelta(minutes=1)  # the data moves on a minute at a time (see visible_now)
NO_CAP = datetime.max  # a query over settled days: the clock changes nothing


class UnknownLeadType(LookupError):
    """The account has no lead type with this UID."""

    def __init__(self, lead_type_uid: int) -> None:
        super().__init__(f"Lead type {lead_type_uid} was not found.")
        self.lead_type_uid = lead_type_uid


def report_named(name: str) -> Report:
    """The contract's report called ``name`` (e.g. ``all_leads``)."""
    try:
        return REPORTS_BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(REPORTS_BY_NAME))
        raise ValueError(f"no report named {name!r}; the reports are: {known}") from None


def utc_days(start: datetime, end: datetime) -> Iterator[date]:
    """The UTC days that the half-open window [start, end) touches."""
    day, last = start.date(), (end - timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += DAY


def _settled(day: date, at: datetime) -> bool:
    """Whether every instant of the leads added on ``day`` (and their actions) lies at or
    before ``at``: then the day is served as generated."""
    return datetime.combine(day, time()) + DAY + LEAD_MAX_AGE <= at


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    """A copy the caller may change without changing the cached truth."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in record.items()}


class SandboxData:
    """Every record of the sandbox account, a pure function of the config."""

    def __init__(
        self, config: SandboxConfig | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.config = config or SandboxConfig()
        self._clock = clock
        per_day = max(1, self.config.leads_per_day)
        days_in_cache = max(_MIN_DAYS_IN_CACHE, min(1_024, _LEADS_IN_CACHE // per_day))
        self._leads: Callable[[int, date], tuple[Row, ...]] = lru_cache(days_in_cache)(
            self._generate_leads
        )
        self._actions: Callable[[int, date], tuple[Row, ...]] = lru_cache(days_in_cache)(
            self._generate_actions
        )
        self._queries: Callable[..., tuple[Row, ...]] = lru_cache(_QUERIES_IN_CACHE)(self._query)
        self._leads_at: Callable[[int, date, datetime], tuple[Row, ...]] = lru_cache(
            _RECENT_DAYS_IN_CACHE
        )(self._generate_leads_at)
        self._lead_type_rows = tuple(self._lead_type_row(spec) for spec in catalog.LEAD_TYPES)

    # --- the account ------------------------------------------------------------------
    def _lead_type_row(self, spec: LeadTypeSpec) -> Row:
        values = {
            LEAD_TYPE_UID: spec.uid,
            LEAD_TYPE_GUID: spec.guid(self.config.seed),
            LEAD_TYPE_NAME: spec.name,
        }
        truth = in_contract_order(LEAD_TYPE_RECORD, values)
        return Row(truth, to_json(truth))

    def now(self) -> datetime:
        """The sandbox's clock (naive UTC): the real time unless a clock was given."""
        return to_naive_utc(self._clock() if self._clock else datetime.now(timezone.utc))

    def visible_now(self) -> datetime:
        """The instant the data is served as of: the clock floored to :data:`CLOCK_STEP`.

        The data is generated whole (each lead with its history up to LEAD_MAX_AGE after
        it was added) but served as it stood then: nothing added, updated, closed or done
        after it shows, so today fills in as the day goes on. The step keeps the truth of
        a moment the same for a minute, so that what a test reads and the truth it asks
        for a little later agree.
        """
        now = self.now()
        return now - (now - datetime.min) % CLOCK_STEP

    @property
    def version(self) -> int:
        """Changes whenever the data changes; pure data never does."""
        return 0

    def lead_types(self) -> list[dict[str, Any]]:
        """The lead types: LeadTypeUID, LeadTypeGuid and Name."""
        return [dict(row.truth) for row in self._lead_type_rows]

    def lead_type_rows(self) -> tuple[Row, ...]:
        """The lead types as served."""
        return self._lead_type_rows

    def spec(self, lead_type_uid: int) -> LeadTypeSpec:
        """The lead type with this UID, or :class:`UnknownLeadType`."""
        try:
            return catalog.LEAD_TYPES_BY_UID[lead_type_uid]
        except KeyError:
            raise UnknownLeadType(lead_type_uid) from None

    # --- records by day -----------------------------------------------------------------
    def leads_of_day(
        self, lead_type_uid: int, day: date, as_of: int | None = None, at: datetime | None = None
    ) -> tuple[Row, ...]:
        """The leads of a lead type added on a UTC day, as they stood at ``at`` (default:
        :meth:`visible_now`) and as of a data version (see :attr:`version`; pure data has
        only version 0)."""
        at = at or self.visible_now()
        if _settled(day, at):
            return self._leads(lead_type_uid, day)
        return self._leads_at(lead_type_uid, day, at)

    def actions_of_day(
        self, lead_type_uid: int, day: date, as_of: int | None = None, at: datetime | None = None
    ) -> tuple[Row, ...]:
        """The actions done by ``at`` on the leads of a lead type added on a UTC day (as of
        a data version, like :meth:`leads_of_day`)."""
        at = at or self.visible_now()
        actions = self._actions(lead_type_uid, day)
        if _settled(day, at):
            return actions
        return tuple(row for row in actions if row.truth[contract.ACTION_DATE] <= at)

    def _generate_leads_at(self, lead_type_uid: int, day: date, at: datetime) -> tuple[Row, ...]:
        done: dict[int, list[datetime]] = {}
        for action in self._actions(lead_type_uid, day):
            done.setdefault(action.truth[contract.LEAD_UID], []).append(
                action.truth[contract.ACTION_DATE]
            )
        leads = (
            lead_as_of(lead, done.get(lead.truth[contract.LEAD_UID], ()), at)
            for lead in self._leads(lead_type_uid, day)
        )
        return tuple(lead for lead in leads if lead is not None)

    def edited_days(self, lead_type_uid: int) -> frozenset[date]:
        """Days whose leads were changed after they were generated: their instants may
        lie beyond :data:`LEAD_MAX_AGE`. Pure data has none."""
        return frozenset()

    def _generate_leads(self, lead_type_uid: int, day: date) -> tuple[Row, ...]:
        drift_from = self.config.faults.schema_drift_from
        spec = self.spec(lead_type_uid)
        return generate_leads(self.config.seed, spec, day, self.config.leads_per_day, drift_from)

    def _generate_actions(self, lead_type_uid: int, day: date) -> tuple[Row, ...]:
        spec = self.spec(lead_type_uid)
        return generate_actions(self.config.seed, spec, day, self._leads(lead_type_uid, day))

    # --- reports ------------------------------------------------------------------------
    def rows(
        self,
        report: Report,
        lead_type_uid: int,
        start: datetime,
        end: datetime,
        as_of: int | None = None,
    ) -> tuple[Row, ...]:
        """A paged report's rows in [start, end) (naive UTC), in the API's order, as the
        data is now or as it was at version ``as_of``."""
        if not report.paged:
            raise ValueError(f"{report.name} is not a paged report: it has no window")
        self.spec(lead_type_uid)
        version = self.version if as_of is None else as_of
        at = self.visible_now()
        days = [(end - timedelta(microseconds=1)).date(), *self.edited_days(lead_type_uid)]
        if all(_settled(day, at) for day in days):
            at = NO_CAP  # nothing in these days happens after the clock: one cached answer
        return self._queries(report.name, lead_type_uid, start, end, version, at)

    def truth(
        self,
        report_name: str,
        lead_type_uid: int,
        start: datetime,
        end: datetime,
        as_of: int | None = None,
    ) -> list[dict[str, Any]]:
        """The ground truth of a report for [start, end): canonical values, API order.

        Timestamps are naive UTC datetimes; ``Fields`` is a dict. An aware ``start`` or
        ``end`` is converted to UTC. ``as_of``: the truth at that data version.
        """
        report = report_named(report_name)
        window = to_naive_utc(start), to_naive_utc(end)
        return [_copy(row.truth) for row in self.rows(report, lead_type_uid, *window, as_of)]

    def _query(
        self,
        report_name: str,
        lead_type_uid: int,
        start: datetime,
        end: datetime,
        version: int,
        at: datetime,
    ) -> tuple[Row, ...]:
        report = REPORTS_BY_NAME[report_name]
        if report.pull is Pull.DAILY_AGGREGATE:
            return self._branch_lead_counts(lead_type_uid, start, end, version, at)
        field, key = report.window_field, report.key[0]
        if field is None:
            raise ValueError(f"{report_name} is a records report without a window field")
        of_day = self.actions_of_day if report.record is ACTION_RECORD else self.leads_of_day
        records_of_day = partial(of_day, as_of=version, at=at)
        # Only DateAddedUtc pins a lead to its day; the other instants of a lead (and its
        # actions) come up to LEAD_MAX_AGE after it was added, unless the lead was edited.
        lookback = timedelta(0) if field == contract.DATE_ADDED else LEAD_MAX_AGE
        days = set(utc_days(start - lookback, end)) | self.edited_days(lead_type_uid)
        found = [
            row
            for day in sorted(days)
            for row in records_of_day(lead_type_uid, day)
            if (instant := row.truth[field]) is not None and start <= instant < end
        ]
        found.sort(key=lambda row: (row.truth[field], row.truth[key]))
        return tuple(found)

    def _branch_lead_counts(
        self, lead_type_uid: int, start: datetime, end: datetime, version: int, at: datetime
    ) -> tuple[Row, ...]:
        """Per branch, the leads added in [start, end); branches without any are left out."""
        counts: dict[int, int] = {}
        for day in utc_days(start, end):
            for lead in self.leads_of_day(lead_type_uid, day, as_of=version, at=at):
                if start <= lead.truth[contract.DATE_ADDED] < end:
                    branch = lead.truth[contract.BRANCH_UID]
                    counts[branch] = counts.get(branch, 0) + 1
        rows = []
        for branch_uid in sorted(counts):
            values = {
                contract.BRANCH_UID: branch_uid,
                contract.BRANCH_NAME: catalog.BRANCH_NAMES[branch_uid],
                LEAD_TYPE_UID: lead_type_uid,
                contract.LEAD_COUNT: counts[branch_uid],
            }
            truth = in_contract_order(BRANCH_LEAD_COUNT_RECORD, values)
            rows.append(Row(truth, to_json(truth)))
        return tuple(rows)

    # --- the awaiting-import count ------------------------------------------------------
    def awaiting_import_row(self, lead_type_uid: int, now: datetime | None = None) -> Row:
        """The count of leads awaiting import as of ``now``, as truth and as served.

        The count is a function of (seed, lead type, UTC minute); AsOfUtc is ``now``.
        """
        self.spec(lead_type_uid)
        as_of = to_naive_utc(now) if now else self.now()
        minute = as_of.strftime("%Y-%m-%dT%H:%M")
        seed = self.config.seed
        rng = random.Random(f"salesexec-sandbox:{seed}:awaiting:{lead_type_uid}:{minute}")
        count = rng.randint(0, max(3, self.config.leads_per_day // 5))
        as_of_stamp = stamp(rng, as_of, form=Form.Z7)
        values = {
            LEAD_TYPE_UID: lead_type_uid,
            contract.AWAITING_COUNT: count,
            contract.AWAITING_AS_OF: as_of_stamp.value,
        }
        truth = in_contract_order(AWAITING_IMPORT_COUNT_RECORD, values)
        return Row(truth, to_json({**truth, contract.AWAITING_AS_OF: as_of_stamp.text}))

    def awaiting_import_count(
        self, lead_type_uid: int, now: datetime | None = None
    ) -> dict[str, Any]:
        """{LeadTypeUID, Count, AsOfUtc} as of ``now`` (default: the current time)."""
        return dict(self.awaiting_import_row(lead_type_uid, now).truth)
