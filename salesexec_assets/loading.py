"""One code path for every report: pull the days' records, stage them, write each chunk.

A run covers a set of partition days (one day, or a range in a single-run backfill). The
days are cut into chunks of consecutive days; each chunk is pulled for every lead type
into a staging file (memory stays bounded however long the range), then written to the
warehouse in ONE transaction that replaces exactly the chunk's partitions, of the
report's table and of its quarantine table alike. A failure at any point leaves every
partition either as it was or fully rewritten, never half.

This module knows the contract's report table and the warehouse, not Dagster.
"""

from __future__ import annotations

import gc
import logging
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from itertools import accumulate
from typing import Any

from salesexec_assets.api.client import Page, SalesExecClient
from salesexec_assets.api.contract import Pull, Report
from salesexec_assets.partitions import consecutive_chunks, day_window_utc
from salesexec_assets.records import (
    SCHEMA,
    DayLocator,
    RecordError,
    RowBuilder,
    quarantine_row,
    quarantine_spec,
    table_spec,
)
from salesexec_assets.warehouse import (
    RowStage,
    Warehouse,
    WriteResult,
    remove_stale_stages,
)

PROGRESS_LOG_SECONDS = 5.0
STAGE_BATCH_ROWS = 5_000  # rows held in Python before they go to the staging file
TRANSACTION_ROWS = 50_000  # about the most rows one warehouse transaction writes


class WriteMode(str, Enum):
    """How a pull changes the stored data (the connector's update methods)."""

    REPLACE = "replace"  # the pulled partitions are replaced whole
    APPEND = "append"  # every pull is kept, stamped with _loaded_at


@dataclass
class LoadResult:
    """What one load did, for metadata and checks."""

    report: Report
    days: list[date]
    windows_utc: list[tuple[datetime, datetime]] = field(default_factory=list)
    rows_by_lead_type: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    writes: list[WriteResult] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return sum(self.rows_by_lead_type.values())


@dataclass(frozen=True)
class PullPlan:
    """One series of calls: a lead type over a UTC window (or 'now'), for some days."""

    lead_type: tuple[int, str]
    window_utc: tuple[datetime, datetime] | None
    builder: RowBuilder


def row_bounded_groups(
    days: Sequence[date], rows_per_day: Mapping[date, int], max_rows: int
) -> list[list[date]]:
    """Consecutive runs of ``days`` holding at most ``max_rows`` rows each (a day with
    more is a run of its own): the partitions each warehouse transaction replaces."""
    groups: list[list[date]] = []
    group: list[date] = []
    rows = 0
    for day in days:
        day_rows = rows_per_day.get(day, 0)
        if group and rows + day_rows > max_rows:
            groups.append(group)
            group, rows = [], 0
        group.append(day)
        rows += day_rows
    if group:
        groups.append(group)
    return groups


def plan_pulls(
    report: Report, chunk: Sequence[date], lead_types: Sequence[tuple[int, str]], zone: str
) -> Iterator[PullPlan]:
    """The calls a chunk of days needs: the report's ``pull`` kind decides, as data."""
    locate_day = DayLocator(chunk, zone)
    for lead_type in lead_types:
        if report.pull is Pull.RECORDS:
            window = day_window_utc(chunk[0], chunk[-1], zone)
            yield PullPlan(lead_type, window, RowBuilder(report, locate_day))
        elif report.pull is Pull.DAILY_AGGREGATE:
            for day in chunk:
                builder = RowBuilder(report, locate_day, fixed_day=day)
                yield PullPlan(lead_type, day_window_utc(day, day, zone), builder)
        else:
            yield PullPlan(lead_type, None, RowBuilder(report, locate_day, fixed_day=chunk[0]))


def fetch_pages(client: SalesExecClient, report: Report, plan: PullPlan) -> Iterator[Page]:
    if plan.window_utc is None:
        yield [client.awaiting_import_count(plan.lead_type[0])]
    else:
        yield from client.iter_report_pages(report, plan.lead_type[0], *plan.window_utc)


@contextmanager
def _collector_spares_live_objects() -> Iterator[None]:
    """Leave the objects alive when a load starts out of the garbage collector's full
    passes until it ends (``gc.freeze``; handed back after, so nothing leaks).

    A Dagster process holds about a million objects after its imports; decoded pages
    start a full collection every few tens of thousands of records, and each walked them
    all: about a fifth of a load's CPU (benchmarks/experiments/ours_gc_frozen.py).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_collector_spares_live_objects()  # a context manager used as a decorator
def load_report(
    report: Report,
    days: Sequence[date],
    *,
    client: SalesExecClient,
    lead_types: Sequence[tuple[int, str]],
    warehouse: Warehouse,
    zone: str,
    mode: WriteMode,
    run_id: str,
    chunk_days: int,
    transaction_rows: int = TRANSACTION_ROWS,
    log: logging.Logger,
    loaded_at: Callable[[], datetime],
    before_insert: Callable[[Any], None] | None = None,
    schema: str = SCHEMA,
) -> LoadResult:
    """Pull ``days`` of ``report`` for ``lead_types`` and write them, chunk by chunk.

    A chunk of ``chunk_days`` days is pulled as one API window per lead type, and
    written in transactions of whole consecutive days of about ``transaction_rows``
    rows each (:func:`row_bounded_groups`): a write's memory does not grow with the
    account's volume, and the API is asked the same windows whatever that volume.
    """
    result = LoadResult(report=report, days=sorted(days))
    for stale in remove_stale_stages():
        log.info("removed the stage a killed run left behind: %s", stale)
    spec, rejected_spec = table_spec(report, schema), quarantine_spec(report, schema)
    replace = mode is WriteMode.REPLACE
    for chunk in consecutive_chunks(days, chunk_days):
        with RowStage(spec) as stage, RowStage(rejected_spec) as rejected:
            batch = _Batch(report, stage, rejected, result, log, chunk[0])
            for plan in plan_pulls(report, chunk, lead_types, zone):
                if plan.window_utc is not None:
                    result.windows_utc.append(plan.window_utc)
                _stage_plan(client, report, plan, batch, log)
            batch.flush()
            staged_days = sorted({*chunk, *stage.partitions, *rejected.partitions})
            for group in row_bounded_groups(staged_days, stage.partition_rows(), transaction_rows):
                result.writes.append(
                    warehouse.write(
                        stage,
                        replace_partitions=group if replace else None,
                        partitions=group,
                        run_id=run_id,
                        loaded_at=loaded_at(),
                        before_insert=before_insert,
                        companions=[rejected],  # one transaction: rows and quarantine agree
                    )
                )
        log.info(
            "%s: wrote %s..%s (%d rows so far, %d quarantined)",
            report.name,
            chunk[0],
            chunk[-1],
            result.rows_written,
            result.quarantined,
        )
    return result


def _stage_plan(
    client: SalesExecClient,
    report: Report,
    plan: PullPlan,
    batch: _Batch,
    log: logging.Logger,
) -> None:
    """Pull one plan's pages into the batch (which stages them, several plans at a time)."""
    label = _label(plan.lead_type)
    batch.result.rows_by_lead_type[label] += 0  # listed, in plan order, even with no rows
    pages = records = 0
    last_log = time.monotonic()
    for page in fetch_pages(client, report, plan):
        batch.add(plan, page)
        pages += 1
        records += len(page)
        if time.monotonic() - last_log >= PROGRESS_LOG_SECONDS:
            log.info(
                "%s: lead type %s: %d pages, %d records so far", report.name, label, pages, records
            )
            last_log = time.monotonic()
    window = f" {plan.window_utc[0]}Z..{plan.window_utc[1]}Z" if plan.window_utc else ""
    # the API's rows pulled (those quarantined among them are logged when their batch is)
    log.info("%s: lead type %s%s: %d rows in %d pages", report.name, label, window, records, pages)


@dataclass
class _Batch:
    """Records of a chunk's pulls, converted and staged ``STAGE_BATCH_ROWS`` at a time.

    One conversion and one stage insert per batch, not per page nor per lead type: an
    insert costs milliseconds whatever its size, and a large account's daily run pulls
    many lead types of a few hundred records each. Consecutive plans with the same
    ``RowBuilder`` share a batch; each record's plan is remembered for its lead type.
    """

    report: Report
    stage: RowStage
    rejected: RowStage
    result: LoadResult
    log: logging.Logger
    first_day: date
    records: list[Any] = field(default_factory=list)
    segments: list[tuple[PullPlan, int]] = field(default_factory=list)  # (plan, records)

    def add(self, plan: PullPlan, page: list[Any]) -> None:
        if self.segments and self.segments[0][0].builder != plan.builder:
            self.flush()
        if self.segments and self.segments[-1][0] is plan:
            self.segments[-1] = (plan, self.segments[-1][1] + len(page))
        else:
            self.segments.append((plan, len(page)))
        self.records.extend(page)
        if len(self.records) >= STAGE_BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Convert and stage the batch: plain records go column by column; the others one
        by one, where those that break the contract get their reason and go to quarantine.
        """
        if not self.segments:
            return
        records, segments = self.records, self.segments
        self.records, self.segments = [], []
        builder = segments[0][0].builder
        converted = builder.columns(records)
        self.stage.add_columns(converted.columns)
        starts = list(accumulate((count for _, count in segments[:-1]), initial=0))
        good: list[dict[str, Any]] = []
        bad: list[list[dict[str, Any]]] = [[] for _ in segments]
        for index, record in zip(converted.others_at, converted.others, strict=True):
            segment = bisect_right(starts, index) - 1
            try:
                good.append(builder.row(record))
            except RecordError as error:
                uid = segments[segment][0].lead_type[0]
                day = builder.quarantine_day(record, fallback=self.first_day)
                bad[segment].append(quarantine_row(record, str(error), uid, day))
                self.result.quarantine_reasons[str(error).split(":")[0]] += 1
        self.stage.add(good)
        for (plan, count), rejected in zip(segments, bad, strict=True):
            # every record became a row or was quarantined
            self.result.rows_by_lead_type[_label(plan.lead_type)] += count - len(rejected)
            if rejected:
                self.rejected.add(rejected)
                self.result.quarantined += len(rejected)
                self.log.warning(
                    "%s: %d record(s) of lead type %s quarantined, e.g.: %s",
                    self.report.name,
                    len(rejected),
                    _label(plan.lead_type),
                    rejected[0]["reason"],
                )


def _label(lead_type: tuple[int, str]) -> str:
    """How logs and metadata name a lead type: ``1 (Mortgage)``."""
    uid, name = lead_type
    return f"{uid} ({name})" if name else str(uid)
