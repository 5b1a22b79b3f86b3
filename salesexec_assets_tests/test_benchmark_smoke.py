"""The ingest benchmark still runs: once, at a tiny volume, every contender, one table.

CI cannot afford the real benchmark (minutes, and a shared machine's numbers mean
little); this keeps the script from rotting: it must exit 0, print the results table
with a line per contender, and find that every contender stored the same rows and keys.
Without the ``benchmark`` extra (dlt, pyarrow) only ours and the floor run, so the
script is still exercised, and the test then ends SKIPPED, saying that dlt was not
compared: install the extra (``pip install -e '.[test,benchmark]'``) for all.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DLT_MODULES = ("dlt", "pyarrow")
MISSING = [name for name in DLT_MODULES if importlib.util.find_spec(name) is None]
HAS_DLT = not MISSING
CONTENDERS = ("ours", "dlt", "dlt-parquet", "floor") if HAS_DLT else ("ours", "floor")


def test_benchmark_runs_at_tiny_volume_and_all_contenders_agree(tmp_path: Path) -> None:
    started = time.monotonic()
    out = tmp_path / "RESULTS.md"
    tiny = {"--leads-per-day": "20", "--days": "1", "--runs": "1", "--latency-ms": "0"}
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "ingest.py"),
            *(part for option in tiny.items() for part in option),
            *("--range-days", "0", "--shapes", "workload"),
            *("--contenders", ",".join(CONTENDERS)),
            *("--work-dir", str(tmp_path / "work"), "--out", str(out)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert elapsed < 60, f"the tiny run took {elapsed:.0f} s; CI's budget for it is 60 s"

    rows_by_contender = {}
    for line in completed.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) > 4 and cells[1] in CONTENDERS and re.fullmatch(r"[\d,]+", cells[3]):
            rows_by_contender[cells[1]] = int(cells[3].replace(",", ""))
    assert set(rows_by_contender) == set(CONTENDERS), completed.stdout[-3000:]
    assert len(set(rows_by_contender.values())) == 1, rows_by_contender
    assert next(iter(rows_by_contender.values())) > 0
    assert "the same key sets" in completed.stdout

    written = out.read_text()
    assert "### Results in process (medians)" in written and "### Machine" in written
    if not HAS_DLT:  # ours and the floor were compared; say loudly that dlt was not
        pytest.skip(
            f"dlt was NOT benchmarked: {', '.join(MISSING)} not installed "
            "(pip install -e '.[test,benchmark]'); ours and the floor agree"
        )


def test_benchmark_shapes_and_whole_processes_at_tiny_volume(tmp_path: Path) -> None:
    """The busy-day shape loads ONE lead type of ONE report (every contender the same
    rows), the many-types shape many lead types, and ``--whole-process`` reports each
    contender's empty-day run as its fixed cost."""
    out = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "ingest.py"),
            *("--shapes", "busy-day", "many-types", "--busy-day-leads", "30"),
            *("--many-types", "11", "--many-types-leads", "2"),
            *("--runs", "1", "--latency-ms", "0", "--range-days", "0", "--whole-process"),
            *("--contenders", "ours,floor"),
            *("--work-dir", str(tmp_path / "work"), "--out", str(out)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    written = out.read_text()
    section = written.split("### Whole processes (medians)", 1)[1].split("### Targets", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) > 5 and cells[1] in ("ours", "floor"):
            rows[(cells[0].split(":")[0], cells[1])] = cells
    assert set(rows) == {
        (shape, name) for shape in ("busy-day", "many-types") for name in ("ours", "floor")
    }, section
    assert rows[("busy-day", "ours")][2] == "30"  # one lead type: 30 leads, not 3 x 30
    for cells in rows.values():
        assert float(cells[4].split()[0]) > 0  # the fixed cost (empty day) was measured
    assert "11 type(s)" in section
    assert "### Targets (issue 17" in written
