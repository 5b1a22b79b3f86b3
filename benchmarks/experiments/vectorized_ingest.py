"""What would a columnar ingest cost? A prototype, outside the package, for the lead.

Our pipeline turns every record into a Python dict (``RowBuilder.row``) and every page
into a DataFrame (``RowStage.add``); the profile puts most of the run there. This
prototype keeps the pages as the bytes the API sent, appends their ``Results`` to one
NDJSON stage file per report, and lets DuckDB do what ``records.py`` does, in SQL, once
per chunk: snake_case names (computed once per column), timestamps of every allowed form
to naive UTC (``TIMESTAMPTZ`` cast with the session in UTC: offsets applied, a 7th
fractional digit truncated), the partition day, ``Fields`` kept whole as JSON and
flattened into ``field_*`` columns with DuckDB's own type inference.

It is NOT the pipeline: no quarantine, no de-duplication, no schema widening. It says
how fast the same transformation runs when no Python touches a row, which is what the
0.8x-floor target needs. Usage (a warm benchmark sandbox on ``--url``):

    python -m benchmarks.experiments.vectorized_ingest --url http://127.0.0.1:PORT \\
        --first-day 2026-08-27 --days 7
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import requests

from benchmarks.contenders.common import lead_type_uids, login, page_params
from benchmarks.workload import Workload, report
from salesexec_assets.api import contract
from salesexec_assets.naming import field_column, snake_case


def fetch_to_ndjson(session: requests.Session, workload: Workload, name: str, out: Path) -> int:
    """Every page of one report, its Results appended as NDJSON lines; no row is parsed."""
    rows = 0
    take = workload.page_size
    with out.open("wb") as stage:
        for uid in lead_type_uids(session, workload):
            for window in workload.windows():
                skip = 0
                while True:
                    body = session.get(
                        workload.base_url + report(name).path,
                        params=page_params(uid, window, skip, take),
                        timeout=120,
                    ).content
                    # the envelope's TotalCount comes first; Results is the last member
                    head, _, results = body.partition(b'"Results":[')
                    total = int(head.split(b":", 1)[1].split(b",", 1)[0])
                    results = results.rstrip().removesuffix(b"]}")  # Results is last
                    if results:
                        stage.write(results.replace(b"},{", b"}\n{") + b"\n")
                        rows += results.count(b"},{") + 1
                    skip += take
                    if skip >= total:
                        break
    return rows


def write_chunk(con: duckdb.DuckDBPyConnection, name: str, stage: Path) -> int:
    """One INSERT per report: every conversion of records.py, in SQL."""
    spec = report(name)
    selects = []
    for field, kind in spec.record.items():
        column = f'"{snake_case(field)}"'
        if kind is contract.FieldType.TIMESTAMP:
            value = f'CAST(CAST("{field}" AS TIMESTAMPTZ) AS TIMESTAMP)'
        elif kind is contract.FieldType.INTEGER:
            value = f'CAST("{field}" AS BIGINT)'
        elif kind is contract.FieldType.OBJECT:
            value = f'CAST("{field}" AS JSON)'
        else:
            value = f'CAST("{field}" AS VARCHAR)'
        selects.append(f"{value} AS {column}")
    window = f'CAST(CAST("{spec.window_field}" AS TIMESTAMPTZ) AS DATE)'
    source = f"read_json('{stage}', format='newline_delimited', records=true, sample_size=-1)"
    flatten = ""
    if contract.LEAD_FIELDS_OBJECT in spec.record:
        keys = [
            row[0]
            for row in con.execute(
                f'SELECT DISTINCT unnest(json_keys(CAST("{contract.LEAD_FIELDS_OBJECT}" AS JSON))) '
                f"FROM {source}"
            ).fetchall()
        ]
        flatten = "".join(
            f', "{contract.LEAD_FIELDS_OBJECT}"."{key}" AS "{field_column(key)}"' for key in keys
        )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS salesexec_vec.{name} AS SELECT {', '.join(selects)}, "
        f"{window} AS partition_date{flatten} FROM {source}"
    )
    return int(con.execute(f"SELECT count(*) FROM salesexec_vec.{name}").fetchone()[0])  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--first-day", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workload = Workload(
            base_url=args.url,
            first_day=args.first_day,
            days=args.days,
            db_path=str(Path(scratch) / "vec.duckdb"),
            work_dir=scratch,
        )
        started = time.perf_counter()
        session = requests.Session()
        login(session, workload)
        timings: dict[str, float] = {}
        con = duckdb.connect(workload.db_path, config={"memory_limit": "256MB"})
        con.execute("LOAD icu; SET TimeZone = 'UTC'")  # icu is built into the duckdb wheel
        con.execute("CREATE SCHEMA salesexec_vec")
        total = 0
        for name in workload.reports:
            stage = Path(scratch) / f"{name}.ndjson"
            mark = time.perf_counter()
            fetch_to_ndjson(session, workload, name, stage)
            timings[f"{name} fetch"] = time.perf_counter() - mark
            mark = time.perf_counter()
            total += write_chunk(con, name, stage)
            timings[f"{name} write"] = time.perf_counter() - mark
        con.close()
        wall = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "rows": total,
                    "wall_s": round(wall, 2),
                    "rows_per_s": round(total / wall),
                    **{k: round(v, 2) for k, v in timings.items()},
                }
            )
        )


if __name__ == "__main__":
    main()
