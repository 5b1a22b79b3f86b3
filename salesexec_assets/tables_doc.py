"""``docs/tables.md``: the column types of every table, generated from the code that
creates the tables (the contract's records, ``table_spec``, ``quarantine_spec``,
``leads_table_spec``), so the page cannot drift from them.

    python -m salesexec_assets.tables_doc > docs/tables.md

A test compares the page with :func:`render_tables_page` and fails when it is stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from salesexec_assets.api.contract import LEAD_FIELDS_OBJECT, REPORTS, Pull, Report
from salesexec_assets.current_leads import leads_table_spec
from salesexec_assets.naming import FIELD_COLUMN_PREFIX, snake_case
from salesexec_assets.records import PARTITION_COLUMN, quarantine_spec, table_spec
from salesexec_assets.warehouse import LOADED_AT_COLUMN, RUN_ID_COLUMN, ColumnType, TableSpec

LOAD_STAMPS: dict[str, tuple[ColumnType, str]] = {
    LOADED_AT_COLUMN: (ColumnType.TIMESTAMP, "UTC time of the write"),
    RUN_ID_COLUMN: (ColumnType.VARCHAR, "the Dagster run that wrote the row"),
}


def _rows(spec: TableSpec, sources: Mapping[str, str], notes: Mapping[str, str]) -> list[str]:
    lines = ["| column | type | from the API field | note |", "|---|---|---|---|"]
    for column, kind in spec.columns.items():
        source = f"`{sources[column]}`" if column in sources else ""
        lines.append(f"| `{column}` | `{kind.value}` | {source} | {notes.get(column, '')} |")
    for column, (kind, note) in LOAD_STAMPS.items():
        lines.append(f"| `{column}` | `{kind.value}` |  | {note} |")
    return lines


def _report_notes(report: Report) -> dict[str, str]:
    notes = {snake_case(name): "key (unique per partition)" for name in report.key}
    if report.window_field:
        window = snake_case(report.window_field)
        notes[window] = (notes.get(window, "") + " decides the day").strip()
    notes[PARTITION_COLUMN] = (
        "the day the run was launched (this report only knows now)"
        if report.pull is Pull.NOW
        else "the partition: the day in `SALESEXEC_TIMEZONE`"
    )
    return notes


def _report_section(report: Report) -> Iterable[str]:
    spec = table_spec(report)
    sources = {snake_case(name): name for name in report.record}
    yield f"## `{spec.schema}.{spec.name}` ({report.title})"
    yield ""
    yield from _rows(spec, sources, _report_notes(report))
    if LEAD_FIELDS_OBJECT in report.record:
        yield (
            f"| `{FIELD_COLUMN_PREFIX}*` | inferred: `BIGINT`, `DOUBLE`, `VARCHAR`, `BOOLEAN`, "
            f"`TIMESTAMP`, ... | each key of `{LEAD_FIELDS_OBJECT}` | one column per lead "
            "type field, added when first seen, widened when a value no longer fits |"
        )
    quarantine = quarantine_spec(report)
    yield ""
    yield f"Its quarantine, `{quarantine.schema}.{quarantine.name}`:"
    yield ""
    yield from _rows(
        quarantine,
        {},
        {
            "record": "the rejected record, whole",
            PARTITION_COLUMN: "the record's own day, else its chunk's first day",
        },
    )
    yield ""


def render_tables_page() -> str:
    """The whole page, as ``docs/tables.md`` must hold it."""
    leads = leads_table_spec()
    lines = [
        "# Tables and their column types",
        "",
        "Generated from the code by `python -m salesexec_assets.tables_doc > docs/tables.md`",
        "(`salesexec_assets/tables_doc.py`); a test fails when this page is out of date.",
        "Types are DuckDB's. Columns the contract does not know yet are added when they",
        "first appear, typed by inference.",
        "",
    ]
    for report in REPORTS:
        lines.extend(_report_section(report))
    lines += [
        f"## `{leads.schema}.{leads.name}` (update method `merge`)",
        "",
        "One row per lead, the newest `last_updated_utc` winning; not partitioned.",
        "",
        *_rows(leads, {}, {"lead_uid": "key"}),
        f"| `{FIELD_COLUMN_PREFIX}*` | inferred | | as in the lead reports |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_tables_page(), end="")
