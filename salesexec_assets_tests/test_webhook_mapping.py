"""Webhook events -> report partitions: the mapping table and the coalescing of runs."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from salesexec_assets.api import contract
from salesexec_assets.webhooks.mapping import (
    EVENT_TOUCHES,
    Event,
    PlannedRun,
    contiguous_blocks,
    event_touches,
    plan_runs,
)

GUID = "6f1c2a9e-0d4b-4c1e-9a7f-3b2e1d0c9f8a"
D = date(2026, 11, 20)
FAR = (date(2020, 1, 1), date(2030, 1, 1))


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour)


def test_lead_created_touches_all_leads_and_branch_counts_on_its_day_in_the_zone() -> None:
    event = Event(1, "100", GUID, datetime(2026, 11, 20, 3, 0))  # 21:00 the day before
    assert event_touches(event, "UTC", {}) == {("all_leads", D), ("branch_lead_count", D)}
    before = D - timedelta(days=1)
    assert event_touches(event, "America/Chicago", {}) == {
        ("all_leads", before),
        ("branch_lead_count", before),
    }


def test_a_change_touches_last_updated_and_every_day_the_stored_lead_sits_in() -> None:
    stored = {
        ("all_leads", GUID): {date(2026, 11, 10)},
        ("last_updated_leads", GUID): {date(2026, 11, 15)},
    }
    for kind in ("101", "102"):
        assert event_touches(Event(1, kind, GUID, at(D)), "UTC", stored) == {
            ("last_updated_leads", D),
            ("all_leads", date(2026, 11, 10)),
            ("last_updated_leads", date(2026, 11, 15)),
        }
    # a lead not stored yet: only the day of the change
    assert event_touches(Event(1, "102", GUID, at(D)), "UTC", {}) == {("last_updated_leads", D)}


def test_a_status_change_into_a_closed_stage_also_touches_closed_leads() -> None:
    closed = Event(1, "103", GUID, at(D), stage="Closed Won")
    working = Event(2, "103", GUID, at(D), stage="Working")
    assert ("closed_leads", D) in event_touches(closed, "UTC", {})
    assert ("closed_leads", D) not in event_touches(working, "UTC", {})


def test_unknown_events_touch_nothing_and_are_counted() -> None:
    plan = plan_runs([Event(1, "unknown", None, None)], "UTC", {}, *FAR)
    assert plan.runs == [] and plan.unknown_events == 1


def test_the_mapping_table_covers_exactly_the_four_public_types_and_names_reports() -> None:
    assert set(EVENT_TOUCHES) == {str(t.number) for t in contract.WEBHOOK_TYPES}
    touched = {touch.report for touches in EVENT_TOUCHES.values() for touch in touches}
    assert touched <= set(contract.REPORTS_BY_NAME)


def test_contiguous_days_become_one_range_and_gaps_split_it() -> None:
    days = [D, D + timedelta(days=1), D + timedelta(days=2), D + timedelta(days=5)]
    assert contiguous_blocks(reversed(days)) == [
        (D, D + timedelta(days=2)),
        (D + timedelta(days=5), D + timedelta(days=5)),
    ]


def test_a_burst_asks_once_per_report_and_block_with_the_count_of_events() -> None:
    events = [Event(i, "100", GUID, at(D + timedelta(days=i % 3), i % 24)) for i in range(30)]
    events.append(Event(99, "102", GUID, at(D)))
    plan = plan_runs(events, "UTC", {}, *FAR)
    assert set(plan.runs) == {
        PlannedRun(
            ("all_leads", "branch_lead_count"),
            D,
            D + timedelta(days=2),
            frozenset(range(30)),
        ),
        PlannedRun(("last_updated_leads",), D, D, frozenset({99})),
    }


def test_days_that_are_not_partitions_are_left_out_and_counted() -> None:
    events = [Event(1, "100", GUID, at(D)), Event(2, "100", GUID, at(D + timedelta(days=1)))]
    plan = plan_runs(events, "UTC", {}, D, D)
    assert [(r.first, r.last) for r in plan.runs] == [(D, D)]
    assert plan.days_out_of_range == {
        ("all_leads", D + timedelta(days=1)),
        ("branch_lead_count", D + timedelta(days=1)),
    }


def test_the_plan_does_not_depend_on_order_or_repeats_of_events() -> None:
    rng = random.Random(5)
    kinds = ["100", "101", "102", "103"]
    events = [
        Event(i, rng.choice(kinds), GUID, at(D + timedelta(days=rng.randrange(6))), "Closed Lost")
        for i in range(40)
    ]
    stored = {("all_leads", GUID): {D - timedelta(days=3)}}
    expected = {(r.reports, r.first, r.last) for r in plan_runs(events, "UTC", stored, *FAR).runs}
    shuffled = events * 2
    rng.shuffle(shuffled)
    assert {
        (r.reports, r.first, r.last) for r in plan_runs(shuffled, "UTC", stored, *FAR).runs
    } == expected
