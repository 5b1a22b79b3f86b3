"""API field names become the snake_case column names users query."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesexec_assets.api.contract import REPORTS
from salesexec_assets.naming import field_column, snake_case


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("LeadUID", "lead_uid"),
        ("DateAddedUtc", "date_added_utc"),
        ("LeadTypeUID", "lead_type_uid"),
        ("BranchUID", "branch_uid"),
        ("LeadCount", "lead_count"),
        ("AsOfUtc", "as_of_utc"),
        ("Count", "count"),
        ("Fields", "fields"),
        ("LifeCycleStageName", "life_cycle_stage_name"),
        ("Loan Amount ($)", "loan_amount"),
    ],
)
def test_api_names_become_snake_case(name: str, column: str) -> None:
    assert snake_case(name) == column


def test_lead_type_fields_get_the_field_prefix() -> None:
    assert field_column("LoanAmount") == "field_loan_amount"


@given(st.text(max_size=40))
def test_any_name_becomes_a_plain_sql_identifier(name: str) -> None:
    column = snake_case(name)
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", column)
    assert snake_case(column) == column or column.startswith("_")


def test_every_field_of_every_report_has_a_column_of_its_own() -> None:
    """Two API fields on one column would make one of them overwrite the other."""
    for report in REPORTS:
        columns = [snake_case(name) for name in report.record]
        assert len(set(columns)) == len(columns), report.name
