"""The Postgres destination's figures (issue 11): the write phase against a bare binary
COPY of the same rows, and a whole load into Postgres against the same load into DuckDB.

- **write phase**: the same staged All Leads rows (a :class:`RowStage`), written by
  ``PostgresWarehouse.write`` (one transaction: lock, create/evolve the table, DELETE the
  partitions, read the stage, binary COPY) into a fresh database, against a bare
  ``COPY ... FROM STDIN (FORMAT BINARY)`` of the same rows, already in memory as Python
  tuples, into an identical empty table (the floor: no stage read, no DDL, no DELETE).
  Target: ours within 1.5x of the bare COPY.
- **whole load**: ``load_report`` (pull every page from the sandbox, stage, write) of
  All Leads over the days into a fresh DuckDB file and into a fresh Postgres database.

A throwaway PostgreSQL server (the tests' ``run_postgres``, Debian's binaries) and the
sandbox run in this process's machine; medians of ``--runs``.

    python benchmarks/postgres_destination.py --leads-per-day 300 --days 7 --runs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from psycopg.types.json import Jsonb

from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract import LEAD_TYPE_NAME, LEAD_TYPE_UID, REPORTS_BY_NAME
from salesexec_assets.loading import WriteMode, load_report
from salesexec_assets.records import table_spec
from salesexec_assets.sandbox import run_sandbox
from salesexec_assets.warehouse import DuckDBWarehouse, RowStage, frame_rows
from salesexec_assets.warehouse.duckdb_sql import staged_values
from salesexec_assets.warehouse.location import parse_warehouse_url
from salesexec_assets.warehouse.postgres import (
    JsonbTextBinaryDumper,
    JsonText,
    PostgresWarehouse,
    copy_type_name,
)
from salesexec_assets.warehouse.types import column_type_of
from salesexec_assets_tests.postgres_server import PostgresServer, run_postgres

ALL_LEADS = REPORTS_BY_NAME["all_leads"]
FIRST_DAY = date(2025, 6, 2)
LOG = logging.getLogger("benchmark")


def median_seconds(runs: int, once: Callable[[], float]) -> float:
    return statistics.median(once() for _ in range(runs))


def postgres_warehouse(server: PostgresServer) -> PostgresWarehouse:
    location = parse_warehouse_url(server.url(server.create_database()))
    warehouse = location.open(password=server.password)
    assert isinstance(warehouse, PostgresWarehouse)
    return warehouse


def whole_load(warehouse: object, server_url: str, days: list[date], password: str) -> float:
    with SalesExecClient(server_url, "sandbox", password) as client:
        lead_types = [
            (int(t[LEAD_TYPE_UID]), str(t.get(LEAD_TYPE_NAME, ""))) for t in client.lead_types()
        ]
        started = time.perf_counter()
        load_report(
            ALL_LEADS,
            days,
            client=client,
            lead_types=lead_types,
            warehouse=warehouse,  # type: ignore[arg-type]
            zone="UTC",
            mode=WriteMode.REPLACE,
            run_id="benchmark",
            chunk_days=7,
            log=LOG,
            loaded_at=datetime.now,
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads-per-day", type=int, default=300)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    days = [FIRST_DAY + timedelta(days=n) for n in range(args.days)]
    password = "bench-sandbox-pw"
    with (
        run_sandbox(leads_per_day=args.leads_per_day, password=password) as sandbox,
        run_postgres() as server,
        tempfile.TemporaryDirectory() as scratch,
    ):
        # --- whole loads -------------------------------------------------------------
        def into_duckdb() -> float:
            path = Path(scratch) / f"w{time.monotonic_ns()}.duckdb"
            return whole_load(DuckDBWarehouse(path), sandbox.base_url, days, password)

        def into_postgres() -> float:
            return whole_load(postgres_warehouse(server), sandbox.base_url, days, password)

        duckdb_load = median_seconds(args.runs, into_duckdb)
        postgres_load = median_seconds(args.runs, into_postgres)

        # --- the write phase -----------------------------------------------------------
        source = DuckDBWarehouse(Path(scratch) / "source.duckdb")
        whole_load(source, sandbox.base_url, days, password)
        spec = table_spec(ALL_LEADS)
        frame = source.query(f"SELECT * FROM {spec.qualified_name}").drop(
            columns=["_loaded_at", "_run_id"]
        )
        with RowStage(spec) as stage:
            stage.add(frame_rows(frame))
            rows = stage.row_count

            def ours() -> float:
                warehouse = postgres_warehouse(server)
                warehouse.query("SELECT 1")  # connected, as the bare COPY is
                started = time.perf_counter()
                warehouse.write(
                    stage, replace_partitions=days, run_id="bench", loaded_at=datetime.now()
                )
                return time.perf_counter() - started

            write_ours = median_seconds(args.runs, ours)
            # the bare COPY's table: the very columns and types ours created
            template = postgres_warehouse(server)
            template.write(stage, replace_partitions=days, run_id="bench", loaded_at=datetime.now())
            columns = template.table_columns(spec)
            types = {name: column_type_of(kind) for name, kind in columns.items()}
            values = {
                **staged_values(stage.column_types, types),
                "_loaded_at": "CAST(? AS TIMESTAMP)",
                "_run_id": "CAST(? AS VARCHAR)",
            }
            stamps = [datetime.now(), "bench"]
            names = list(values)
            jsonb = {i for i, name in enumerate(names) if columns[name] == "jsonb"}
            # floor A: the rows already in memory, JSON already wrapped as psycopg's Jsonb
            in_memory = [
                tuple(
                    Jsonb(json.loads(value)) if i in jsonb and value is not None else value
                    for i, value in enumerate(row)
                )
                for batch in stage.batches(values, params=stamps)
                for row in batch
            ]

            def from_stage() -> Iterator[tuple[object, ...]]:
                for batch in stage.batches(values, params=stamps):
                    yield from batch

            def bare_copy(rows_of: Callable[[], Iterable[tuple[object, ...]]], raw_json: bool):
                def once() -> float:
                    database = server.create_database()
                    definition = ", ".join(f'"{name}" {columns[name]}' for name in names)
                    with server.connect(database) as con:
                        con.execute(f"CREATE SCHEMA s; CREATE TABLE s.t ({definition})")
                        con.commit()
                        started = time.perf_counter()
                        quoted = ", ".join(f'"{name}"' for name in names)
                        with con.cursor() as cursor:
                            if raw_json:  # the staged JSON text as jsonb, unparsed
                                cursor.adapters.register_dumper(JsonText, JsonbTextBinaryDumper)
                            statement = f"COPY s.t ({quoted}) FROM STDIN (FORMAT BINARY)"
                            with cursor.copy(statement) as copy:
                                copy.set_types([copy_type_name(types[name]) for name in names])
                                for row in rows_of():
                                    copy.write_row(row)
                        con.commit()
                        return time.perf_counter() - started

                return median_seconds(args.runs, once)

            write_bare = bare_copy(lambda: in_memory, raw_json=False)
            write_floor = bare_copy(from_stage, raw_json=True)

    figures = [
        ("write phase, ours (PostgresWarehouse.write)", write_ours),
        ("write phase, bare binary COPY of the same rows, in memory (floor A)", write_bare),
        (
            "write phase, bare binary COPY of the same rows, read from the stage (floor B)",
            write_floor,
        ),
        ("whole load into DuckDB (pull, stage, write)", duckdb_load),
        ("whole load into Postgres (pull, stage, write)", postgres_load),
    ]
    print(
        f"## Postgres destination ({rows} All Leads rows, {args.days} days, median of {args.runs})"
    )
    print("\n| measure | seconds | rows/s |\n|---|---|---|")
    for label, seconds in figures:
        print(f"| {label} | {seconds:.3f} | {rows / seconds:,.0f} |")
    print(
        f"\nwrite phase ours / floor A: {write_ours / write_bare:.2f}x; "
        f"ours / floor B: {write_ours / write_floor:.2f}x (target <= 1.5x); "
        f"whole load Postgres / DuckDB: {postgres_load / duckdb_load:.2f}x"
    )


if __name__ == "__main__":
    main()
