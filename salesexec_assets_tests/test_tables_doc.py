"""``docs/tables.md`` is generated from the code, and says what the tables really hold."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

from salesexec_assets.api.contract import REPORTS, Pull
from salesexec_assets.assets import report_asset_key
from salesexec_assets.definitions import build_definitions
from salesexec_assets.records import QUARANTINE_SUFFIX
from salesexec_assets.settings import load_settings
from salesexec_assets.tables_doc import render_tables_page
from salesexec_assets_tests.conftest import RunAssets
from salesexec_assets_tests.truth import stored_types

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tables.md"
DOCUMENTED_COLUMN = re.compile(r"^\| `(?P<column>[a-z_]+)` \| `(?P<type>[A-Z]+)` \|")
TABLE_NAME = re.compile(r"`salesexec\.(?P<table>[a-z_]+)`")


def test_docs_tables_page_is_the_generated_one() -> None:
    assert PAGE.read_text() == render_tables_page(), (
        "docs/tables.md is out of date: python -m salesexec_assets.tables_doc > docs/tables.md"
    )


def documented_types() -> dict[str, dict[str, str]]:
    """Table -> column -> type, as the page states them (each table's rows follow the
    line that names it, a heading or "Its quarantine, ...")."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in render_tables_page().splitlines():
        named = TABLE_NAME.search(line)
        if named and not line.startswith("|"):
            current = tables.setdefault(named["table"], {})
        elif row := DOCUMENTED_COLUMN.match(line):
            current[row["column"]] = row["type"]
    return tables


def test_the_documented_types_are_those_of_the_tables_a_run_writes(
    salesexec_env: dict[str, str], warehouse_path: Path, run_assets: RunAssets
) -> None:
    defs = build_definitions(load_settings())
    today = datetime.now(timezone.utc).date()
    for report in REPORTS:
        day = today if report.pull is Pull.NOW else date(2025, 6, 10)
        assert run_assets(defs, [report_asset_key(report)], partition=str(day)).success
    documented = documented_types()
    for report in REPORTS:
        for table in (report.name, report.name + QUARANTINE_SUFFIX):
            stored = {
                column: kind
                for column, kind in stored_types(warehouse_path, table).items()
                if not column.startswith("field_")
            }
            assert stored == documented[table], table
