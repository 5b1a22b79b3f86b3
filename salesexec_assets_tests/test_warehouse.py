"""Behaviour of the warehouse writers: every test taking ``warehouse`` runs on each
destination (a real DuckDB file in tmp_path, a real Postgres database) unless marked
``ONLY_DUCKDB`` (the file's own mechanics: its lock, its name, its connections).

DuckDB lock tests start a second Python process, because DuckDB's file lock is per
process; the Postgres lock test holds the table's advisory lock from a second connection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesexec_assets.warehouse import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
    ColumnType,
    DuckDBWarehouse,
    RowStage,
    TableSpec,
    Warehouse,
    WarehouseLockTimeout,
    _evolve_columns,
    coerce_value,
    infer_column_type,
    remove_stale_stages,
    widen,
)
from salesexec_assets.warehouse.duckdb_sql import widened_value
from salesexec_assets.warehouse.types import POSTGRES_TYPES
from salesexec_assets_tests.destinations import DUCKDB, POSTGRES, Destination

SPEC = TableSpec(
    "salesexec",
    "all_leads",
    {"lead_uid": ColumnType.BIGINT, "fields": ColumnType.JSON, "partition_date": ColumnType.DATE},
)
DAY1, DAY2, DAY3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
LOADED_AT = datetime(2026, 11, 23, 6, 0)
TABLE = SPEC.qualified_name


def lead(uid: int, day: date, **extra: Any) -> dict[str, Any]:
    return {"lead_uid": uid, "fields": json.dumps({"n": uid}), "partition_date": day, **extra}


ONLY_DUCKDB = pytest.mark.parametrize("destination", [DUCKDB], indirect=True)
ONLY_POSTGRES = pytest.mark.parametrize("destination", [POSTGRES], indirect=True)


@pytest.fixture
def warehouse(destination: Destination) -> Warehouse:
    """The destination's warehouse (``tmp_path/warehouse.duckdb``, or a Postgres database)."""
    return destination.location.open(password=destination.password, lock_timeout_seconds=30)


@pytest.fixture
def stage_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "stages"
    directory.mkdir()
    return directory


def write_rows(
    warehouse: DuckDBWarehouse,
    stage_dir: Path,
    pages: list[list[dict[str, Any]]],
    *,
    replace: list[date] | None,
    run_id: str = "run-1",
    spec: TableSpec = SPEC,
):
    with RowStage(spec, stage_dir) as stage:
        for page in pages:
            stage.add(page)
        return warehouse.write(
            stage, replace_partitions=replace, run_id=run_id, loaded_at=LOADED_AT
        )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a stable order (by every column), whatever the backend returned them in."""
    return frame.sort_values(by=list(frame.columns), na_position="first").reset_index(drop=True)


def table_rows(warehouse: Warehouse, table: str = TABLE) -> pd.DataFrame:
    return _sorted(warehouse.query(f"SELECT * FROM {table}"))


def data_rows(warehouse: Warehouse, table: str = TABLE) -> pd.DataFrame:
    """The table without its load metadata, for comparing values across runs."""
    frame = warehouse.query(f"SELECT * FROM {table}")
    return _sorted(frame.drop(columns=[LOADED_AT_COLUMN, RUN_ID_COLUMN]))


# ----------------------------------------------------------------- partitions and modes


def test_rewriting_a_partition_replaces_it_without_duplicates(warehouse, stage_dir):
    pages = [[lead(i, DAY1, amount=i * 10) for i in range(300)], [lead(300, DAY2, amount=1)]]
    first = write_rows(warehouse, stage_dir, pages, replace=[DAY1, DAY2])
    before = data_rows(warehouse)

    second = write_rows(warehouse, stage_dir, pages, replace=[DAY1, DAY2], run_id="run-2")

    assert (first.rows_written, first.rows_deleted) == (301, 0)
    assert (second.rows_written, second.rows_deleted) == (301, 301)
    assert second.partitions_replaced == (DAY1, DAY2)
    pd.testing.assert_frame_equal(data_rows(warehouse), before)
    assert warehouse.query(f"SELECT DISTINCT _run_id FROM {TABLE}")["_run_id"].tolist() == ["run-2"]


def test_append_mode_keeps_both_loads(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=None)
    result = write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=None, run_id="run-2")

    assert (result.rows_written, result.rows_deleted, result.partitions_replaced) == (1, 0, ())
    runs = warehouse.query(f"SELECT _run_id FROM {TABLE} ORDER BY 1")["_run_id"].tolist()
    assert runs == ["run-1", "run-2"]


def test_replacing_only_some_partitions_leaves_the_others(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY2)]], replace=[DAY1, DAY2])
    write_rows(warehouse, stage_dir, [[lead(3, DAY2)]], replace=[DAY2], run_id="run-2")

    frame = warehouse.query(f"SELECT lead_uid, partition_date FROM {TABLE} ORDER BY 1")
    assert frame.values.tolist() == [[1, pd.Timestamp(DAY1)], [3, pd.Timestamp(DAY2)]]


def test_replaced_partitions_without_staged_rows_end_up_empty(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY2)]], replace=[DAY1, DAY2])

    result = write_rows(warehouse, stage_dir, [[lead(3, DAY1)]], replace=[DAY1, DAY2])

    assert (result.rows_written, result.rows_deleted) == (1, 2)
    assert warehouse.query(f"SELECT lead_uid FROM {TABLE}")["lead_uid"].tolist() == [3]


def test_empty_stage_with_replace_partitions_deletes_those_partitions(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY2)]], replace=[DAY1, DAY2])

    result = write_rows(warehouse, stage_dir, [], replace=[DAY1])

    assert (result.rows_written, result.rows_deleted) == (0, 1)
    assert warehouse.query(f"SELECT lead_uid FROM {TABLE}")["lead_uid"].tolist() == [2]


def test_empty_stage_on_a_new_warehouse_creates_the_declared_table(warehouse, stage_dir):
    result = write_rows(warehouse, stage_dir, [], replace=[DAY1])

    assert result.rows_written == 0
    assert warehouse.column_types(SPEC) == {
        "lead_uid": "BIGINT",
        "fields": "JSON",
        "partition_date": "DATE",
        "_loaded_at": "TIMESTAMP",
        "_run_id": "VARCHAR",
    }


def test_staged_rows_outside_replace_partitions_are_refused(warehouse, stage_dir, destination):
    with pytest.raises(ValueError, match="2026-11-21"):
        write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY2)]], replace=[DAY1])
    assert destination.untouched()  # refused before the warehouse was opened


def test_rows_without_a_partition_value_are_refused(stage_dir):
    with RowStage(SPEC, stage_dir) as stage, pytest.raises(ValueError, match="partition_date"):
        stage.add([{"lead_uid": 1}])


def test_drop_partitions_before_drops_exactly_the_older_ones(warehouse, stage_dir):
    rows = [lead(1, DAY1), lead(2, DAY1), lead(3, DAY2), lead(4, DAY3)]
    write_rows(warehouse, stage_dir, [rows], replace=[DAY1, DAY2, DAY3])

    dropped = warehouse.drop_partitions_before(SPEC, DAY3)

    assert dropped == (DAY1, DAY2)
    assert warehouse.query(f"SELECT lead_uid FROM {TABLE}")["lead_uid"].tolist() == [4]
    assert warehouse.drop_partitions_before(SPEC, DAY3) == ()


def test_drop_partitions_before_on_a_missing_table_does_nothing(warehouse, destination):
    assert warehouse.drop_partitions_before(SPEC, DAY3) == ()
    assert destination.untouched()


def test_warehouse_file_named_like_the_schema_is_refused(tmp_path, stage_dir):
    named_like_schema = DuckDBWarehouse(tmp_path / "salesexec.duckdb")
    with pytest.raises(ValueError, match="named like schema"):
        write_rows(named_like_schema, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])


# ----------------------------------------------------------------- schema evolution


def test_new_column_mid_stream_is_added_to_stage_and_table(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])

    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(2, DAY2)])
        stage.add([lead(3, DAY2, field_loan_amount=250_000)])
        assert stage.column_types["field_loan_amount"] == ColumnType.BIGINT
        result = warehouse.write(stage, replace_partitions=[DAY2], run_id="r", loaded_at=LOADED_AT)

    assert result.columns_added == ("field_loan_amount",)
    assert warehouse.column_types(SPEC)["field_loan_amount"] == "BIGINT"
    frame = warehouse.query(f"SELECT lead_uid, field_loan_amount FROM {TABLE} ORDER BY 1")
    assert frame["field_loan_amount"].tolist() == [pd.NA, pd.NA, 250_000]


def test_column_that_is_null_everywhere_is_not_created_until_it_has_a_value(stage_dir):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(1, DAY1, note=None)])
        assert "note" not in stage.column_types
        stage.add([lead(2, DAY1, note="hi")])
        assert stage.column_types["note"] == ColumnType.VARCHAR
        assert stage.row_count == 2
        assert stage.partitions == {DAY1}


def test_integer_to_double_to_text_widening_keeps_every_value(warehouse, stage_dir):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(1, DAY1, amount=5)])
        stage.add([lead(2, DAY1, amount=2.5)])
        assert stage.column_types["amount"] == ColumnType.DOUBLE
        stage.add([lead(3, DAY1, amount="n/a"), lead(4, DAY1, amount=True)])
        assert stage.column_types["amount"] == ColumnType.VARCHAR
        warehouse.write(stage, replace_partitions=[DAY1], run_id="r", loaded_at=LOADED_AT)

    frame = warehouse.query(f"SELECT lead_uid, amount FROM {TABLE} ORDER BY 1")
    # 5 went through DOUBLE and still reads as the integer the source sent
    assert frame["amount"].tolist() == ["5", "2.5", "n/a", "true"]


def test_table_columns_widen_across_writes_and_keep_old_values(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1, amount=5)]], replace=[DAY1])
    as_double = write_rows(warehouse, stage_dir, [[lead(2, DAY2, amount=2.5)]], replace=[DAY2])
    as_text = write_rows(warehouse, stage_dir, [[lead(3, DAY3, amount="n/a")]], replace=[DAY3])
    narrower = write_rows(warehouse, stage_dir, [[lead(4, DAY3, amount=7)]], replace=None)

    assert as_double.columns_widened == (("amount", "BIGINT", "DOUBLE"),)
    assert as_text.columns_widened == (("amount", "DOUBLE", "VARCHAR"),)
    assert narrower.columns_widened == ()  # never narrows back
    frame = warehouse.query(f"SELECT lead_uid, amount FROM {TABLE} ORDER BY 1")
    assert frame["amount"].tolist() == ["5", "2.5", "n/a", "7"]  # 5 and 7 alike


def test_values_are_coerced_to_their_column_type(stage_dir, warehouse):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(1, DAY1, note="text", count=1)])
        stage.add(
            [
                {"lead_uid": "2", "fields": {"a": [1]}, "partition_date": "2026-11-20", "note": 5},
                lead(3, DAY1, note=True, count=1.5),
            ]
        )
        assert stage.column_types["count"] == ColumnType.DOUBLE
        warehouse.write(stage, replace_partitions=[DAY1], run_id="r", loaded_at=LOADED_AT)

    frame = warehouse.query(
        f"SELECT lead_uid, fields::VARCHAR, note, coalesce(count, -1) FROM {TABLE} ORDER BY 1"
    )
    assert frame.values.tolist() == [
        [1, '{"n": 1}', "text", 1.0],
        [2, '{"a": [1]}', "5", -1.0],
        [3, '{"n": 3}', "true", 1.5],
    ]


def test_declared_column_value_that_cannot_be_coerced_names_column_and_value(stage_dir):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(1, DAY1, amount=1)])
        with pytest.raises(ValueError, match=r"'lead_uid'.*'abc'.*BIGINT"):
            stage.add([lead(2, DAY1, amount="x"), {**lead(3, DAY1), "lead_uid": "abc"}])
        with pytest.raises(ValueError, match="'fields'"):
            stage.add([{**lead(4, DAY1), "fields": "{not json"}])
        # the failed pages left nothing behind: no rows, no widening
        assert stage.row_count == 1
        assert stage.column_types["amount"] == ColumnType.BIGINT


def test_reserved_and_case_colliding_column_names_are_refused(stage_dir):
    with RowStage(SPEC, stage_dir) as stage:
        with pytest.raises(ValueError, match="reserved"):
            stage.add([lead(1, DAY1, _run_id="x")])
        with pytest.raises(ValueError, match="case"):
            stage.add([lead(1, DAY1, Lead_UID=2)])


def test_timestamps_are_stored_as_naive_utc(warehouse, stage_dir):
    from datetime import timezone

    aware = datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    write_rows(warehouse, stage_dir, [[lead(1, DAY1, seen=aware)]], replace=[DAY1])

    assert warehouse.column_types(SPEC)["seen"] == "TIMESTAMP"
    seen = warehouse.query(f"SELECT seen FROM {TABLE}")["seen"].tolist()
    assert seen == [pd.Timestamp("2026-11-21 04:30")]


# ----------------------------------------------------------------- transactions


def test_failure_before_insert_leaves_the_table_exactly_as_it_was(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(i, DAY1, amount=i) for i in range(50)]], replace=[DAY1])
    rows_before, columns_before = table_rows(warehouse), warehouse.table_columns(SPEC)

    def fail(con: Any) -> None:
        # the delete has happened inside the transaction at this point (? on both backends)
        (count,) = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        assert count == 0
        raise RuntimeError("injected")

    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(1, DAY1, amount="wide", brand_new=1.5)])
        with pytest.raises(RuntimeError, match="injected"):
            warehouse.write(
                stage,
                replace_partitions=[DAY1],
                run_id="r2",
                loaded_at=LOADED_AT,
                before_insert=fail,
            )

    pd.testing.assert_frame_equal(table_rows(warehouse), rows_before)
    assert warehouse.table_columns(SPEC) == columns_before  # added and widened columns undone


def test_stage_file_is_removed_on_close(stage_dir):
    stage = RowStage(SPEC, stage_dir)
    stage.add([lead(1, DAY1)])
    assert stage.path.exists()
    stage.close()
    assert list(stage_dir.iterdir()) == []
    with pytest.raises(RuntimeError):
        stage.add([lead(2, DAY1)])


def test_stage_can_keep_collecting_after_a_write(warehouse, stage_dir):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(1, DAY1)])
        warehouse.write(stage, replace_partitions=None, run_id="r", loaded_at=LOADED_AT)
        stage.add([lead(2, DAY1)])
        result = warehouse.write(stage, replace_partitions=[DAY1], run_id="r", loaded_at=LOADED_AT)
    assert result.rows_written == 2


@ONLY_DUCKDB
def test_write_works_while_this_process_has_the_warehouse_open(warehouse, stage_dir):
    """Connections of one process share a database instance (and its attachments)."""
    write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])
    other = duckdb.connect(str(warehouse.path))
    try:
        write_rows(warehouse, stage_dir, [[lead(2, DAY2)]], replace=[DAY2])
        write_rows(warehouse, stage_dir, [[lead(3, DAY3)]], replace=[DAY3])
        attached = other.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        assert not [name for (name,) in attached if name.startswith("_stage")]
        count = warehouse.query(f"SELECT count(*) AS n FROM {TABLE}")["n"].item()
    finally:
        other.close()
    assert count == 3


# ----------------------------------------------------------------- upsert


CURRENT = TableSpec("salesexec", "leads_current", {"lead_uid": ColumnType.BIGINT})


def upsert_rows(warehouse: Warehouse, stage_dir: Path, rows: list[dict[str, Any]]):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add(rows)
        return warehouse.upsert(
            stage, CURRENT, key=["lead_uid"], newest_by="modified", run_id="r", loaded_at=LOADED_AT
        )


def test_upsert_keeps_one_row_per_key_with_the_newest_values(warehouse, stage_dir):
    t0 = datetime(2026, 11, 20, 8)
    upsert_rows(
        warehouse,
        stage_dir,
        [
            lead(1, DAY1, modified=t0, status="new"),
            lead(1, DAY1, modified=t0 + timedelta(hours=1), status="called"),  # newer in stage
            lead(2, DAY1, modified=t0, status="new"),
        ],
    )
    result = upsert_rows(
        warehouse,
        stage_dir,
        [
            lead(1, DAY2, modified=t0, status="stale"),  # older than stored: ignored
            lead(2, DAY2, modified=t0 + timedelta(hours=2), status="won"),
            lead(3, DAY2, modified=t0, status="new"),
        ],
    )
    table = CURRENT.qualified_name
    current = warehouse.query(f"SELECT lead_uid, status FROM {table} ORDER BY 1")

    assert current.values.tolist() == [[1, "called"], [2, "won"], [3, "new"]]
    assert (result.rows_written, result.rows_deleted) == (2, 1)


def test_upsert_rerun_is_harmless(warehouse, stage_dir):
    t0 = datetime(2026, 11, 20, 8)
    rows = [lead(1, DAY1, modified=t0, status="new"), lead(2, DAY1, modified=None, status="x")]
    upsert_rows(warehouse, stage_dir, rows)
    before = data_rows(warehouse, CURRENT.qualified_name)

    result = upsert_rows(warehouse, stage_dir, rows)

    pd.testing.assert_frame_equal(data_rows(warehouse, CURRENT.qualified_name), before)
    assert (result.rows_written, result.rows_deleted) == (2, 2)  # a tie: the incoming row wins


# ----------------------------------------------------------------- locks and processes


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


@pytest.fixture
def lock_holder(warehouse) -> Iterator[Any]:
    """Start another process that holds the warehouse's write lock for some seconds."""
    started: list[subprocess.Popen[str]] = []

    def hold(seconds: float) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(warehouse.path), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


@ONLY_DUCKDB
def test_write_waits_for_another_process_holding_the_lock_then_succeeds(
    warehouse, stage_dir, lock_holder, caplog
):
    caplog.set_level(logging.INFO, logger="salesexec_assets.warehouse")
    lock_holder(2.0)

    result = write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])

    assert result.rows_written == 1
    assert result.lock_attempts > 1
    assert 0.5 < result.lock_wait_seconds < 10
    waits = [r.getMessage() for r in caplog.records if "locked by another writer" in r.getMessage()]
    assert waits and "retrying in" in waits[0] and "(attempt 2)" in waits[0]
    assert str(warehouse.path) in waits[0]


@ONLY_DUCKDB
def test_reads_wait_for_the_lock_too(warehouse, stage_dir, lock_holder):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])
    lock_holder(1.0)

    assert warehouse.query(f"SELECT count(*) AS n FROM {TABLE}")["n"].tolist() == [1]


@ONLY_DUCKDB
def test_lock_timeout_raises_a_clear_error(tmp_path, stage_dir, lock_holder):
    impatient = DuckDBWarehouse(tmp_path / "warehouse.duckdb", lock_timeout_seconds=0.5)
    lock_holder(10.0)

    started = time.monotonic()
    with pytest.raises(WarehouseLockTimeout) as raised:
        write_rows(impatient, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])

    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert str(impatient.path) in message
    assert re.search(r"after waiting \d+\.\d s", message)


WRITER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import date, datetime
    from pathlib import Path
    from salesexec_assets.warehouse import ColumnType, DuckDBWarehouse, RowStage, TableSpec

    path, stage_dir, go, day, first = sys.argv[1:6]
    day, first = date.fromisoformat(day), int(first)
    spec = TableSpec("salesexec", "all_leads", {"lead_uid": ColumnType.BIGINT})
    warehouse = DuckDBWarehouse(path, lock_timeout_seconds=30)
    with RowStage(spec, stage_dir) as stage:
        for start in range(first, first + 1000, 500):
            stage.add([{"lead_uid": i, "partition_date": day} for i in range(start, start + 500)])
        print("ready", flush=True)
        while not Path(go).exists():
            time.sleep(0.01)
        result = warehouse.write(
            stage, replace_partitions=[day], run_id=str(day), loaded_at=datetime(2026, 1, 1),
            before_insert=lambda con: time.sleep(0.7),  # hold the lock so the writers overlap
        )
    print(json.dumps({"written": result.rows_written, "attempts": result.lock_attempts}))
    """
)


@ONLY_DUCKDB
def test_two_processes_writing_different_partitions_both_succeed(warehouse, stage_dir, tmp_path):
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(warehouse.path),
                str(stage_dir),
                str(go),
                day,
                first,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for day, first in (("2026-11-20", "0"), ("2026-11-21", "1000"))
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [writer.communicate(timeout=60)[0] for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()

    assert [writer.returncode for writer in writers] == [0, 0]
    results = [json.loads(output) for output in outputs]
    assert [r["written"] for r in results] == [1000, 1000]
    assert max(r["attempts"] for r in results) > 1  # one of them did wait for the other
    counts = warehouse.query(
        f"SELECT partition_date, count(DISTINCT lead_uid) AS n FROM {TABLE} GROUP BY 1 ORDER BY 1"
    )
    assert counts.values.tolist() == [[pd.Timestamp(DAY1), 1000], [pd.Timestamp(DAY2), 1000]]


@ONLY_DUCKDB
def test_table_columns_of_a_missing_file_or_table_is_empty(warehouse, stage_dir):
    assert warehouse.table_columns(SPEC) == {}
    write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])
    assert warehouse.table_columns(TableSpec("salesexec", "other")) == {}


# ----------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, ColumnType.BOOLEAN),
        (7, ColumnType.BIGINT),
        (2**70, ColumnType.VARCHAR),
        (1.5, ColumnType.DOUBLE),
        ("x", ColumnType.VARCHAR),
        (datetime(2026, 1, 1), ColumnType.TIMESTAMP),
        (date(2026, 1, 1), ColumnType.DATE),
        ({"a": 1}, ColumnType.VARCHAR),
        ([1, 2], ColumnType.VARCHAR),
    ],
)
def test_infer_column_type(value, expected):
    assert infer_column_type(value) == expected


VALUES_OF = {
    ColumnType.BOOLEAN: st.booleans(),
    ColumnType.BIGINT: st.integers(-(2**63), 2**63 - 1),
    ColumnType.DOUBLE: st.floats(allow_nan=False),
    ColumnType.VARCHAR: st.text(),
    ColumnType.TIMESTAMP: st.datetimes(),
    ColumnType.DATE: st.dates(),
    ColumnType.JSON: st.dictionaries(st.text(), st.integers()).map(json.dumps),
}
TYPES = st.sampled_from(list(ColumnType))


@given(TYPES, TYPES, TYPES)
def test_widen_is_a_join_commutative_associative_idempotent(a, b, c):
    assert widen(a, b) == widen(b, a)
    assert widen(widen(a, b), c) == widen(a, widen(b, c))
    assert widen(a, a) == a
    joined = widen(a, b)
    assert widen(joined, a) == joined and widen(joined, b) == joined  # never narrower


@settings(max_examples=200)
@given(st.data())
def test_widened_type_accepts_every_value_of_both(data):
    a, b = data.draw(TYPES), data.draw(TYPES)
    joined = widen(a, b)
    for source in (a, b):
        value = data.draw(VALUES_OF[source])
        stored = coerce_value(value, joined)
        if joined == source:
            assert stored == coerce_value(value, source)
        elif joined == ColumnType.DOUBLE:
            assert stored == float(value)  # still a number
        else:
            assert joined == ColumnType.VARCHAR and isinstance(stored, str)


@pytest.fixture(scope="module")
def memory_db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False),
        st.datetimes(min_value=datetime(1, 1, 1)),
        st.dates(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
    )
)
def test_text_of_a_value_matches_duckdbs_cast_so_widening_is_consistent(memory_db, value):
    """A value widened by ALTER (in DuckDB) reads the same as one coerced in Python."""
    kind = infer_column_type(value)
    assert kind is not None
    memory_db.execute(f"CREATE OR REPLACE TEMP TABLE widened (x {kind.value})")
    memory_db.execute("INSERT INTO widened VALUES (?)", [value])
    _evolve_columns(memory_db, "widened", {"x": kind}, {"x": ColumnType.VARCHAR})
    (text,) = memory_db.execute("SELECT x FROM widened").fetchone()
    assert coerce_value(value, ColumnType.VARCHAR) == text


def _paged_column(values: list[Any], pages: list[list[int]]) -> tuple[str | None, list[Any]]:
    """Stage one discovered column ``x`` page by page (the stage widens by ALTER between
    pages, as the warehouse does between writes), write it; its type and values as text."""
    with tempfile.TemporaryDirectory() as directory:
        warehouse = DuckDBWarehouse(Path(directory) / "warehouse.duckdb")
        pages_of_rows = [[lead(uid, DAY1, x=values[uid]) for uid in page] for page in pages]
        write_rows(warehouse, Path(directory), pages_of_rows, replace=None)
        kind = warehouse.table_columns(SPEC).get("x")
        if kind is None:
            return None, []
        texts = warehouse.query(f"SELECT CAST(x AS VARCHAR) AS x FROM {TABLE} ORDER BY lead_uid")
        return kind, texts["x"].tolist()


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(SCALARS, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_a_column_ends_with_the_same_type_and_text_however_its_values_are_paged(values, rng):
    """Widening by ALTER (page after page) and by inference (one page) agree: a re-run
    that pages differently stores the same text for every value."""
    uids = list(range(len(values)))
    one_page = _paged_column(values, [uids])
    rng.shuffle(uids)
    assert _paged_column(values, [[uid] for uid in uids]) == one_page


def test_stages_left_by_killed_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    abandoned = RowStage(SPEC, tmp_path)
    abandoned.add([lead(1, date(2026, 11, 20))])
    abandoned.release()  # as a killed run leaves it: file on disk, no close()
    live = RowStage(SPEC, tmp_path)
    live.add([lead(2, date(2026, 11, 20))])
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in [abandoned.path.parent, *abandoned.path.parent.iterdir()]:
        os.utime(path, (two_days_ago, two_days_ago))
    assert remove_stale_stages(tmp_path) == [abandoned.path.parent]
    assert not abandoned.path.parent.exists()
    assert live.path.exists() and live.row_count == 1
    live.close()


TRY_WRITE = textwrap.dedent(
    """
    import sys, duckdb
    try:
        duckdb.connect(sys.argv[1]).close()
    except duckdb.IOException as error:
        print("locked" if "lock" in str(error).lower() else f"other: {error}")
    else:
        print("opened")
    """
)


def another_process_opens_for_writing(path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", TRY_WRITE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


@ONLY_DUCKDB
def test_reads_inside_reading_share_one_open_file_that_is_released_on_exit(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY1)]], replace=[DAY1])
    with warehouse.reading():
        assert warehouse.query(f"SELECT count(*) AS n FROM {TABLE}")["n"].tolist() == [2]
        assert "lead_uid" in warehouse.table_columns(SPEC)
        # the one connection stays open between the reads: a writer elsewhere must wait
        assert another_process_opens_for_writing(warehouse.path) == "locked"
        assert warehouse.query(f"SELECT max(lead_uid) AS m FROM {TABLE}")["m"].tolist() == [2]
    assert another_process_opens_for_writing(warehouse.path) == "opened"
    assert table_rows(warehouse)["lead_uid"].tolist() == [1, 2]


def test_a_stage_can_be_written_in_several_transactions_of_whole_partitions(warehouse, stage_dir):
    write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY2)]], replace=[DAY1, DAY2])
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(10, DAY1), lead(11, DAY1), lead(20, DAY2)])
        assert stage.partition_rows() == {DAY1: 2, DAY2: 1}
        first = warehouse.write(
            stage, replace_partitions=[DAY1], partitions=[DAY1], run_id="r2", loaded_at=LOADED_AT
        )
        assert first.rows_written == 2 and first.rows_deleted == 1
        # between the two transactions the other partition is still the old one, whole
        assert table_rows(warehouse)["lead_uid"].tolist() == [2, 10, 11]
        second = warehouse.write(
            stage, replace_partitions=[DAY2], partitions=[DAY2], run_id="r2", loaded_at=LOADED_AT
        )
        assert second.rows_written == 1
    assert table_rows(warehouse)["lead_uid"].tolist() == [10, 11, 20]


def test_staged_rows_of_the_selected_partitions_must_be_inside_the_replaced_ones(
    warehouse, stage_dir
):
    with RowStage(SPEC, stage_dir) as stage:
        stage.add([lead(10, DAY1), lead(20, DAY2)])
        with pytest.raises(ValueError, match="outside replace_partitions"):
            warehouse.write(
                stage,
                replace_partitions=[DAY1],
                partitions=[DAY1, DAY2],
                run_id="r",
                loaded_at=LOADED_AT,
            )


# ----------------------------------------------------------------- companions (quarantine)

QUARANTINE = TableSpec(
    "salesexec",
    "all_leads__quarantine",
    {"reason": ColumnType.VARCHAR, "partition_date": ColumnType.DATE},
)


def write_with_quarantine(warehouse: Warehouse, stage_dir: Path, uids: list[int], **kwargs: Any):
    with RowStage(SPEC, stage_dir) as stage, RowStage(QUARANTINE, stage_dir) as rejected:
        stage.add([lead(uid, DAY1) for uid in uids])
        rejected.add([{"reason": f"bad {uid}", "partition_date": DAY1} for uid in uids])
        return warehouse.write(
            stage,
            replace_partitions=[DAY1],
            companions=[rejected],
            run_id="r",
            loaded_at=LOADED_AT,
            **kwargs,
        )


def test_rows_and_their_quarantine_are_written_in_one_transaction(warehouse, stage_dir):
    write_with_quarantine(warehouse, stage_dir, [1, 2])
    before = data_rows(warehouse), data_rows(warehouse, QUARANTINE.qualified_name)

    def break_the_quarantine_table(con: Any) -> None:
        # runs after the rows' delete: the quarantine table is swapped for a view, so its
        # write (which comes after the rows' insert) fails inside the same transaction
        con.execute(f"ALTER TABLE {QUARANTINE.qualified_name} RENAME TO moved")
        con.execute(f"CREATE VIEW {QUARANTINE.qualified_name} AS SELECT 1 AS reason")

    with pytest.raises(Exception):  # noqa: B017 (the database's own error, either backend)
        write_with_quarantine(warehouse, stage_dir, [3], before_insert=break_the_quarantine_table)

    # the rows' delete and insert were undone with the quarantine's failure
    after = data_rows(warehouse), data_rows(warehouse, QUARANTINE.qualified_name)
    pd.testing.assert_frame_equal(after[0], before[0])
    pd.testing.assert_frame_equal(after[1], before[1])
    result = write_with_quarantine(warehouse, stage_dir, [4])
    assert (result.rows_written, result.rows_deleted) == (1, 2)
    assert data_rows(warehouse, QUARANTINE.qualified_name)["reason"].tolist() == ["bad 4"]


# ----------------------------------------------------------------- Postgres: table locks


def hold_table_lock(destination: Destination, table: str) -> Any:
    """A second connection holding ``table``'s advisory lock, as a concurrent writer does
    (release it with ``.close()``)."""
    assert destination.server is not None
    con = destination.server.connect(destination.location.database)
    con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["salesexec-assets:" + table])
    return con


@ONLY_POSTGRES
def test_a_postgres_write_waits_for_the_tables_lock_logs_it_and_then_succeeds(
    destination, warehouse, stage_dir, caplog
):
    caplog.set_level(logging.INFO, logger="salesexec_assets.warehouse")
    holder = hold_table_lock(destination, "salesexec.all_leads")
    threading.Timer(1.5, holder.close).start()

    result = write_rows(warehouse, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])

    assert result.rows_written == 1
    assert 1.0 < result.lock_wait_seconds < 20
    assert result.lock_attempts == 2  # the try, then the wait
    waits = [r.getMessage() for r in caplog.records if "another run" in r.getMessage()]
    assert waits and "salesexec.all_leads" in waits[0] and "waiting up to 30 s" in waits[0]
    assert destination.password not in caplog.text


@ONLY_POSTGRES
def test_a_postgres_lock_wait_is_bounded_and_other_tables_write_meanwhile(destination, stage_dir):
    impatient = destination.location.open(password=destination.password, lock_timeout_seconds=0.5)
    holder = hold_table_lock(destination, "salesexec.all_leads")
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLockTimeout) as raised:
            write_rows(impatient, stage_dir, [[lead(1, DAY1)]], replace=[DAY1])
        assert time.monotonic() - started < 10
        message = str(raised.value)
        assert "salesexec.all_leads" in message and re.search(r"after waiting \d+\.\d s", message)
        assert destination.password not in message
        # another table is not held up by that lock
        other = TableSpec("salesexec", "all_actions", {"lead_uid": ColumnType.BIGINT})
        assert (
            write_rows(
                impatient,
                stage_dir,
                [[{"lead_uid": 1, "partition_date": DAY1}]],
                replace=[DAY1],
                spec=other,
            ).rows_written
            == 1
        )
    finally:
        holder.close()
    assert impatient.table_columns(SPEC) == {}  # the timed-out write changed nothing


# ----------------------------------------------------------------- stale stages


def test_stale_stage_cleanup_ignores_stages_other_runs_remove_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run closes (removes) its stage between our listing and our stat: the
    cleanup goes on, removes the stale stage and never fails."""
    stale = RowStage(SPEC, tmp_path)
    stale.add([lead(1, DAY1)])
    stale.release()
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in [stale.path.parent, *stale.path.parent.iterdir()]:
        os.utime(path, (two_days_ago, two_days_ago))
    vanishing = [RowStage(SPEC, tmp_path) for _ in range(2)]
    for stage in vanishing:
        stage.add([lead(2, DAY1)])
    real_iterdir = Path.iterdir

    def iterdir_while_other_runs_finish(self: Path) -> Iterator[Path]:
        listed = list(real_iterdir(self))
        # another run ends right after its stage was listed: its files and directory go
        for stage in vanishing:
            if self == stage.path.parent:
                stage.close()
        yield from listed

    monkeypatch.setattr(Path, "iterdir", iterdir_while_other_runs_finish)
    removed = remove_stale_stages(tmp_path)
    monkeypatch.undo()

    assert removed == [stale.path.parent]
    assert list(tmp_path.iterdir()) == []


@ONLY_POSTGRES
@pytest.mark.parametrize(
    "value",
    [
        5,
        -(2**63),
        2.5,
        -0.1,
        3.0,
        2.0**53,
        1e20,
        1.5e-7,
        123456.789,
        True,
        False,
        date(2026, 11, 20),
        datetime(2026, 11, 20, 3, 4, 5, 120000),
        datetime(2026, 11, 20, 3, 4),
    ],
    ids=repr,
)
def test_postgres_widening_to_text_reads_as_python_coerces(destination, value):
    """A value widened by ALTER in Postgres reads the same as one coerced in Python, so
    a table's text does not depend on whether its values came before or after a widening."""
    kind = infer_column_type(value)
    assert kind is not None and destination.server is not None
    pg_type = POSTGRES_TYPES[kind]
    with destination.server.connect(destination.location.database) as con:
        con.execute(f"CREATE TEMP TABLE widened (x {pg_type})")
        con.execute("INSERT INTO widened VALUES (%s)", [value])
        using = widened_value("x", kind, ColumnType.VARCHAR, "text")
        con.execute(f"ALTER TABLE widened ALTER COLUMN x TYPE text USING {using}")
        row = con.execute("SELECT x FROM widened").fetchone()
    assert row is not None and row[0] == coerce_value(value, ColumnType.VARCHAR)


def test_a_query_result_is_written_into_any_table_replacing_its_partitions(warehouse, stage_dir):
    """The analytics path: SELECT through query(), write the frame with write_frame()."""
    write_rows(warehouse, stage_dir, [[lead(1, DAY1), lead(2, DAY1), lead(3, DAY2)]], replace=None)
    daily = TableSpec("salesexec_analytics", "leads_per_day", {"leads": ColumnType.BIGINT})
    counts = warehouse.query(
        f"SELECT partition_date, count(*) AS leads FROM {TABLE} GROUP BY 1 ORDER BY 1"
    )
    first = warehouse.write_frame(
        daily, counts, replace_partitions=[DAY1, DAY2], run_id="a1", loaded_at=LOADED_AT
    )
    again = warehouse.write_frame(
        daily, counts.iloc[:1], replace_partitions=[DAY1, DAY2], run_id="a2", loaded_at=LOADED_AT
    )

    assert (first.rows_written, again.rows_written, again.rows_deleted) == (2, 1, 2)
    stored = data_rows(warehouse, daily.qualified_name)
    assert stored[["partition_date", "leads"]].values.tolist() == [[pd.Timestamp(DAY1), 2]]
    assert warehouse.column_types(daily)["leads"] == "BIGINT"
