"""Where ours spends its time: a cProfile of one load, summed into named stages.

The profile is taken with ``max_concurrent_requests=1`` so that every page is fetched,
decoded and turned into rows on the main thread (cProfile sees only the thread it runs
on; py-spy, which sees all threads, cannot attach on this machine). At 0 ms latency the
worker threads only overlap waiting, so the CPU work and its shares are the same.

Two views: inclusive time of the pipeline's own stages (each stage's cumulative time,
as a share of the whole ``materialize`` call), and the functions with the most self
time. cProfile slows call-heavy code more than C calls, so shares are more reliable
than absolute seconds.
"""

from __future__ import annotations

import pstats
from dataclasses import dataclass
from pathlib import Path

# (label, file suffix, function name): the stages of our pipeline, outermost first.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("asset body (all of our code in the run)", "salesexec_assets/assets.py", "_report_asset"),
    ("load_report: pull + stage + write", "salesexec_assets/loading.py", "load_report"),
    (
        "client: fetch pages (HTTP + JSON decode + de-dup)",
        "salesexec_assets/loading.py",
        "fetch_pages",
    ),
    ("  client: HTTP request + JSON decode", "salesexec_assets/api/client.py", "_get_page"),
    (
        "  client: de-dup of a plain page (set operations)",
        "salesexec_assets/api/client.py",
        "_plain_keys",
    ),
    ("  client: record_key de-dup (other pages)", "salesexec_assets/api/client.py", "record_key"),
    ("_Batch.flush: records -> stage file", "salesexec_assets/loading.py", "flush"),
    ("  RowBuilder.columns: a batch, column by column", "salesexec_assets/records.py", "columns"),
    (
        "    parse_api_timestamp_column",
        "salesexec_assets/api/timestamps.py",
        "parse_api_timestamp_column",
    ),
    (
        "    _object_columns (Fields flatten + JSON)",
        "salesexec_assets/records.py",
        "_object_columns",
    ),
    ("  RowBuilder.row: unusual records, one by one", "salesexec_assets/records.py", "row"),
    (
        "  RowStage.add_columns: batch -> stage file",
        "salesexec_assets/warehouse/stage.py",
        "add_columns",
    ),
    (
        "    coerced_array (per-column checks + pandas arrays)",
        "salesexec_assets/warehouse/types.py",
        "coerced_array",
    ),
    (
        "    atomic (BEGIN/COMMIT on the stage file)",
        "salesexec_assets/warehouse/duckdb_sql.py",
        "atomic",
    ),
    ("DuckDBWarehouse.write: stage -> warehouse", "salesexec_assets/warehouse/duckdb.py", "write"),
    ("checks: evaluate_report_checks", "salesexec_assets/checks.py", "evaluate_report_checks"),
    (
        "materialization_metadata (counts, preview)",
        "salesexec_assets/assets.py",
        "materialization_metadata",
    ),
)


@dataclass(frozen=True)
class StageTime:
    label: str
    seconds: float
    calls: int


def _find(stats: pstats.Stats, suffix: str, name: str) -> tuple[float, int]:
    """Cumulative seconds and primitive calls of one function (0 if never called)."""
    seconds, calls = 0.0, 0
    for (filename, _, function), (primitive, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if function == name and filename.replace("\\", "/").endswith(suffix):
            seconds += cumulative
            calls += primitive
    return seconds, calls


def summarize(pstats_path: Path, load_seconds: float, top: int = 15) -> str:
    """The profile as markdown: stages by inclusive time, then the top self-time functions."""
    stats = pstats.Stats(str(pstats_path))
    total = getattr(stats, "total_tt", 0.0) or load_seconds
    lines = [
        f"Profiled `materialize` call: {total:.2f} s under cProfile "
        f"({load_seconds:.2f} s wall with the profiler on).",
        "",
        "| stage (inclusive time) | seconds | share | calls |",
        "|---|---:|---:|---:|",
    ]
    body = 0.0
    for label, suffix, name in STAGES:
        seconds, calls = _find(stats, suffix, name)
        if label.startswith("asset body"):
            body = seconds
        lines.append(f"| {label} | {seconds:.2f} | {seconds / total:.0%} | {calls} |")
    lines.append(
        f"| Dagster run machinery outside the asset bodies | {total - body:.2f} | "
        f"{(total - body) / total:.0%} | |"
    )
    lines += ["", f"Top {top} functions by self time:", "", "| function | self s | share | calls |"]
    lines.append("|---|---:|---:|---:|")
    ranked = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )
    for (filename, line, function), (primitive, _, own, _, _) in ranked[:top]:
        where = _short_path(filename)
        lines.append(
            f"| `{function}` ({where}:{line}) | {own:.2f} | {own / total:.0%} | {primitive} |"
        )
    return "\n".join(lines)


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", "salesexec_assets/", "lib/python3"):
        if marker in filename:
            return filename[filename.index(marker) :].replace("site-packages/", "")
    return filename
