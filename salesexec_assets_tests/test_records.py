"""The column path of ``RowBuilder`` stores exactly what the per-record path stores.

``RowBuilder.row`` is the reference: it converts one record or says why it cannot.
``RowBuilder.columns`` converts whole pages and hands every unusual record to ``row``.
Each test stages the same records both ways, in real stage files, and compares the
stored tables: column types, every value, and the quarantined records with reasons.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesexec_assets.api import contract
from salesexec_assets.records import (
    DayLocator,
    RecordError,
    RowBuilder,
    quarantine_row,
    quarantine_spec,
    table_spec,
)
from salesexec_assets.warehouse import RowStage

DAYS = [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
ZONE = "America/New_York"  # the DST switch is on 2026-03-08: a 23-hour day in the range
LEADS = contract.REPORTS_BY_NAME["all_leads"]
ACTIONS = contract.REPORTS_BY_NAME["all_actions"]
BRANCHES = contract.REPORTS_BY_NAME["branch_lead_count"]


def plain_lead(uid: int, **changes: Any) -> dict[str, Any]:
    lead: dict[str, Any] = {
        contract.LEAD_UID: uid,
        contract.LEAD_GUID: f"guid-{uid}",
        contract.LEAD_TYPE_UID: 1,
        contract.LEAD_RECORD_TYPE_NAME: "Mortgage",
        contract.DATE_ADDED: "2026-03-08T15:04:05.1234567Z",
        contract.LAST_UPDATED: "2026-03-09T10:00:00-05:00",
        contract.CLOSED: None,
        contract.LEAD_SOURCE_UID: 305,
        contract.LEAD_SOURCE_NAME: "LendingTree",
        contract.LEAD_FIELDS_OBJECT: {"FirstName": "Ada", "LoanAmount": 250000, "Rate": 6.5},
    }
    lead.update(changes)
    return lead


def stage_both_ways(
    builder: RowBuilder, pages: list[list[Any]], directory: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored result of the reference path and of the column path, page by page."""
    results = []
    for use_columns in (False, True):
        with (
            RowStage(table_spec(builder.report), directory) as stage,
            RowStage(quarantine_spec(builder.report), directory) as rejected,
        ):
            for page in pages:
                others = page
                if use_columns:
                    converted = builder.columns(page)
                    stage.add_columns(converted.columns)
                    others = converted.others
                    # each record set apart says where it was (the loader finds its lead type)
                    assert [page[index] for index in converted.others_at] == others
                good, bad = [], []
                for record in others:
                    try:
                        good.append(builder.row(record))
                    except RecordError as error:
                        bad.append(quarantine_row(record, str(error), 1, DAYS[0]))
                stage.add(good)
                rejected.add(bad)
            results.append({"rows": stored(stage), "rejected": stored(rejected)})
    return results[0], results[1]


def stored(stage: RowStage) -> dict[str, Any]:
    """A stage's columns with their types, and its rows in a canonical order."""
    con = stage._connection()
    names = sorted(stage.column_types)
    quoted = ", ".join(f'"{name}"' for name in names)
    rows = con.execute(f'SELECT {quoted} FROM "main"."rows"').fetchall()
    return {
        "types": {name: stage.column_types[name] for name in names},
        "rows": sorted(rows, key=repr),
        "partitions": sorted(stage.partitions),
    }


def builder_for(report: contract.Report, fixed_day: date | None = None) -> RowBuilder:
    return RowBuilder(report, DayLocator(DAYS, ZONE), fixed_day=fixed_day)


def test_plain_pages_take_the_column_path_whole_and_store_what_rows_store(
    tmp_path: Path,
) -> None:
    builder = builder_for(LEADS)
    page = [plain_lead(uid) for uid in range(1, 201)]
    assert builder.columns(page).others == []
    reference, columns = stage_both_ways(builder, [page], tmp_path)
    assert columns == reference
    assert len(columns["rows"]["rows"]) == 200
    assert "field_loan_amount" in columns["rows"]["types"]


ODD_LEADS: list[Any] = [
    "not an object",
    None,
    [1, 2],
    plain_lead(1, LeadUID=None),  # a required key missing
    plain_lead(2, LeadUID="17"),  # an id as text: converted, not quarantined
    plain_lead(3, LeadUID=True),  # a boolean is not an id
    plain_lead(4, LeadUID=7.0),
    plain_lead(5, DateAddedUtc="yesterday"),
    plain_lead(6, DateAddedUtc="2026-02-30T00:00:00Z"),
    plain_lead(7, DateAddedUtc="2026-03-20T00:00:00Z"),  # outside the requested days
    plain_lead(8, DateAddedUtc="2026-03-08T03:30:00-05:00"),  # the local day before: DST
    plain_lead(9, LeadSourceName={"nested": [1, 2]}),  # text field holding an object
    plain_lead(10, LeadSourceName=42),
    plain_lead(11, Fields="not an object"),
    plain_lead(12, Fields=None),
    plain_lead(13, Fields={}),
    plain_lead(14, Fields={"LoanAmount": "250k", "Nested": {"b": 1, "a": [2]}}),
    plain_lead(15, Fields={"Zip Code": "02139", "ZipCode": "02140"}),  # one column, two names
    plain_lead(16, Fields={"ZipCode": "10001"}),
    plain_lead(17, Fields={"LoanAmount": 2**70, "Rate": True}),  # beyond BIGINT; a boolean
    plain_lead(18, NewTopLevelField={"x": 1}),  # a field the contract does not know yet
    plain_lead(19, LastUpdatedUtc="0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
    plain_lead(20, LeadGuid=None),
]


def test_every_unusual_record_is_stored_or_quarantined_as_the_reference_does(
    tmp_path: Path,
) -> None:
    builder = builder_for(LEADS)
    page = [plain_lead(uid) for uid in range(100, 110)] + ODD_LEADS
    converted = builder.columns(page)
    assert converted.size + len(converted.others) == len(page)
    reference, columns = stage_both_ways(builder, [page], tmp_path)
    assert columns == reference
    assert len(reference["rejected"]["rows"]) >= 8  # the test covers quarantine too


def test_types_widened_across_pages_end_the_same_on_both_paths(tmp_path: Path) -> None:
    builder = builder_for(LEADS)
    pages = [
        [plain_lead(1, Fields={"Score": 5, "Flag": True})],
        [plain_lead(2, Fields={"Score": 5.5, "Flag": "yes"})],
        [plain_lead(3, Fields={"Score": "high", "When": "2026-03-08"})],
        [plain_lead(4, Fields={"Score": 2.0})],  # a double holding an integer, as text: "2"
    ]
    reference, columns = stage_both_ways(builder, pages, tmp_path)
    assert columns == reference
    assert columns["rows"]["types"]["field_score"] == "VARCHAR"


def test_aggregate_reports_take_the_fixed_day(tmp_path: Path) -> None:
    builder = builder_for(BRANCHES, fixed_day=DAYS[1])
    page: list[Any] = [
        {
            contract.LEAD_TYPE_UID: 1,
            contract.BRANCH_UID: branch,
            contract.BRANCH_NAME: f"B{branch}",
            contract.LEAD_COUNT: 3,
        }
        for branch in range(5)
    ]
    page.append({contract.LEAD_TYPE_UID: 1, contract.BRANCH_UID: None, contract.LEAD_COUNT: 1})
    reference, columns = stage_both_ways(builder, [page], tmp_path)
    assert columns == reference
    assert columns["rows"]["partitions"] == [DAYS[1]]


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
timestamps = st.one_of(
    st.datetimes(min_value=datetime(2026, 3, 6, 20), max_value=datetime(2026, 3, 10, 6)).map(
        lambda instant: instant.isoformat() + "Z"
    ),
    st.sampled_from(["2026-03-08T12:00:00+0530", "2026-03-08 12:00:00", "nope", ""]),
    json_scalars,
)
actions = st.fixed_dictionaries(
    {
        contract.ACTION_UID: st.one_of(st.integers(1, 10**6), json_scalars),
        contract.ACTION_DATE: timestamps,
    },
    optional={
        contract.LEAD_UID: st.one_of(st.integers(1, 10**6), json_scalars),
        contract.ACTION_NAME: st.one_of(st.text(max_size=8), json_scalars),
        "Unknown": json_scalars,
    },
)
leads = st.fixed_dictionaries(
    {contract.LEAD_UID: st.integers(1, 10**6), contract.DATE_ADDED: timestamps},
    optional={
        contract.LEAD_FIELDS_OBJECT: st.one_of(
            st.dictionaries(
                st.sampled_from(["A", "B", "a", "Zip Code", "ZipCode"]),
                st.one_of(json_scalars, st.lists(json_scalars, max_size=2)),
            ),
            json_scalars,
        ),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    report_and_pages=st.one_of(
        st.tuples(st.just(ACTIONS), st.lists(st.lists(actions, max_size=6), max_size=3)),
        st.tuples(st.just(LEADS), st.lists(st.lists(leads, max_size=6), max_size=3)),
    )
)
def test_any_records_are_stored_the_same_way_by_both_paths(
    report_and_pages: tuple[contract.Report, list[list[Any]]], tmp_path_factory: Any
) -> None:
    report, pages = report_and_pages
    directory = tmp_path_factory.mktemp("stages")
    reference, columns = stage_both_ways(builder_for(report), pages, directory)
    assert columns == reference


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_pages(size: int, tmp_path: Path) -> None:
    builder = builder_for(ACTIONS)
    page = [
        {contract.ACTION_UID: 1, contract.ACTION_DATE: "2026-03-08T12:00:00Z"} for _ in range(size)
    ]
    reference, columns = stage_both_ways(builder, [page], tmp_path)
    assert columns == reference
    assert len(columns["rows"]["rows"]) == size


def test_a_partition_column_is_never_missing_for_a_row(tmp_path: Path) -> None:
    builder = builder_for(ACTIONS)
    page = [{contract.ACTION_UID: 1, contract.ACTION_DATE: "2026-03-08T12:00:00Z"}]
    converted = builder.columns(page)
    assert converted.columns["partition_date"] == [DAYS[1]]
