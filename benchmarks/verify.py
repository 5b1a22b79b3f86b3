"""Did every contender store the same thing? Row counts and the exact set of keys.

Run by the driver on each contender's DuckDB file after the child has exited, so none of
it is timed. A key set is fingerprinted as the md5 of its sorted keys: two loads agree
only when they hold the same keys, the same number of times.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from benchmarks.workload import StoredTable


@dataclass(frozen=True)
class TableFingerprint:
    """What a report's table holds: rows, distinct keys and a digest of the key set."""

    report: str
    rows: int
    distinct_keys: int
    key_digest: str


def fingerprint(db_path: str, tables: list[StoredTable]) -> dict[str, TableFingerprint]:
    """Fingerprint each stored table of one load (read-only)."""
    found = {}
    with duckdb.connect(db_path, read_only=True) as con:
        for table in tables:
            row = con.execute(
                f"SELECT count(*), count(DISTINCT {table.key}), "
                f"md5(coalesce(string_agg(CAST({table.key} AS VARCHAR), ',' "
                f"ORDER BY {table.key}), '')) FROM {table.table}"
            ).fetchone()
            assert row is not None
            found[table.report] = TableFingerprint(table.report, int(row[0]), int(row[1]), row[2])
    return found


def disagreements(
    loads: dict[str, dict[str, TableFingerprint]], expected_rows: dict[str, int] | None = None
) -> list[str]:
    """Every way in which the loads differ from each other or from the API's totals."""
    problems = []
    reports = sorted({report for fingerprints in loads.values() for report in fingerprints})
    for report in reports:
        seen = {name: prints.get(report) for name, prints in loads.items()}
        for name, found in seen.items():
            if found is None:
                problems.append(f"{name}: no table for {report}")
            elif found.rows != found.distinct_keys:
                problems.append(
                    f"{name}: {report} has {found.rows} rows but {found.distinct_keys} keys"
                )
            elif expected_rows and found.rows != expected_rows.get(report, found.rows):
                problems.append(
                    f"{name}: {report} has {found.rows} rows, the API holds {expected_rows[report]}"
                )
        digests = {found.key_digest for found in seen.values() if found is not None}
        if len(digests) > 1:
            detail = ", ".join(
                f"{name}={found.rows} rows/{found.key_digest[:8]}"
                for name, found in seen.items()
                if found is not None
            )
            problems.append(f"{report}: the loads hold different key sets ({detail})")
    return problems
