"""The floor: what nothing can beat by much.

``requests`` + ``json``, one page after another on one session, every row kept in a
list, then ONE ``CREATE TABLE ... AS SELECT * FROM frame`` per report from a pandas
DataFrame on a single DuckDB connection. No retries, no checks, no type conversion
(timestamps stay text); the only transformation is ``Fields`` to JSON text, since
DuckDB cannot type a column of dicts whose keys differ by lead type.
"""

from __future__ import annotations

import json
import time

import duckdb
import pandas as pd
import requests

from benchmarks.contenders import Load
from benchmarks.contenders.common import lead_type_uids, login, page_params
from benchmarks.workload import LoadOutput, StoredTable, Workload, report
from salesexec_assets.api import contract

SCHEMA = "floor_load"  # not "floor": a schema named like the file is ambiguous


def prepare(workload: Workload, name: str) -> Load:
    """The timed load: fetch every page, then one insert per report."""

    def load() -> LoadOutput:
        session = requests.Session()
        login(session, workload)
        uids = lead_type_uids(session, workload)
        requests_made = 2
        take = workload.page_size
        con = duckdb.connect(workload.db_path)
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        tables, fetch_seconds, insert_seconds = [], 0.0, 0.0
        for name in workload.reports:
            spec = report(name)
            started = time.perf_counter()
            rows: list[dict[str, object]] = []
            for uid in uids:
                for window in workload.windows():
                    skip = 0
                    while True:
                        answer = session.get(
                            workload.base_url + spec.path,
                            params=page_params(uid, window, skip, take),
                            timeout=120,
                        )
                        requests_made += 1
                        envelope = json.loads(answer.content)
                        rows.extend(envelope[contract.ENVELOPE_RESULTS])
                        skip += take
                        if skip >= envelope[contract.ENVELOPE_TOTAL]:
                            break
            fetched = time.perf_counter()
            tables.append(StoredTable(name, f"{SCHEMA}.{name}", f'"{spec.key[0]}"'))
            fetch_seconds += fetched - started
            if not rows:  # an empty day: no columns to create a table from
                continue
            frame = pd.DataFrame(rows)
            del rows
            if contract.LEAD_FIELDS_OBJECT in frame.columns:
                frame[contract.LEAD_FIELDS_OBJECT] = frame[contract.LEAD_FIELDS_OBJECT].map(
                    json.dumps
                )
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {SCHEMA}.{name} AS SELECT * FROM frame")
            con.unregister("frame")
            del frame
            insert_seconds += time.perf_counter() - fetched
        con.close()
        return LoadOutput(
            tables=tables,
            client_requests=requests_made,
            phases={"fetch_s": fetch_seconds, "insert_s": insert_seconds},
        )

    return load
