"""The ingest benchmark: ours vs dlt vs a minimal floor, against one sandbox process.

For each volume (leads per lead type and day) the sandbox starts in its own process;
a do-nothing reader first warms it and then measures how fast it serves. Then, for each
latency and run, each contender loads the same report window (All Leads and All
Actions, every lead type) into a fresh DuckDB file in a fresh process; the driver
measures wall time, peak RSS, CPU and the requests the sandbox received, and checks
that all contenders stored the same rows and keys. Medians of the runs make the table.
``--range-days`` adds one run over a long range (memory must stay bounded), and
``--profile`` one cProfile of ours. ``--out`` writes the results into a markdown file
(between generated-section markers, so notes written around them are kept).

    python benchmarks/ingest.py                                   # the full run (~15 min)
    python benchmarks/ingest.py --leads-per-day 20 --days 1 --runs 1 \\
        --latency-ms 0 --range-days 0                               # the CI smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.contenders import LOADERS
from benchmarks.contenders.sandbox_probe import ROWS_PHASE_PREFIX
from benchmarks.harness import Measurement, run_contender
from benchmarks.profile_report import summarize
from benchmarks.sandbox_proc import SandboxProcess
from benchmarks.verify import TableFingerprint, disagreements, fingerprint
from benchmarks.workload import REPORTS, Workload
from salesexec_assets.sandbox.generate import LEAD_MAX_AGE

GENERATED_START = "<!-- benchmark:generated:start -->"
GENERATED_END = "<!-- benchmark:generated:end -->"
SHAPES = ("workload", "busy-day", "busy-day-actions", "many-types")
ACTIONS_PER_LEAD = 2.5  # about, in the sandbox: busy-day-actions asks for leads / this
# issue 17's CPU budget per stored row, by report
CPU_US_PER_ROW = {"all_leads": 20.0, "all_actions": 8.0}
SANDBOX_MARGIN = 3.0  # the sandbox must serve at least this many times the fastest reader
PACKAGES = ("dagster", "dlt", "duckdb", "pandas", "pyarrow", "requests", "psutil")


@dataclass(frozen=True)
class Shape:
    """A kind of load: which reports, lead types, days and volume.

    ``workload``: both reports, the sandbox's 3 lead types, a week (issue 6's workload);
    ``busy-day``: one busy day of All Leads for ONE lead type; ``busy-day-actions``: the
    same for All Actions; ``many-types``: both reports, many lead types, one small day
    (the daily run of a large account).
    """

    name: str
    leads_per_day: int  # per lead type and day (the sandbox's volume)
    days: int
    lead_types: int = 3  # lead types the sandbox serves
    lead_type_uids: tuple[int, ...] | None = None  # None: every one of them is loaded
    reports: tuple[str, ...] = REPORTS

    @property
    def label(self) -> str:
        types = len(self.lead_type_uids) if self.lead_type_uids else self.lead_types
        reports = "+".join("leads" if r == "all_leads" else "actions" for r in self.reports)
        volume = f"{self.leads_per_day:,}/day"
        return f"{self.name}: {reports}, {types} type(s) x {self.days} d x {volume}"


@dataclass(frozen=True)
class Scenario:
    """One cell of the matrix: a shape and a latency."""

    shape: Shape
    latency_ms: float
    runs: int

    @property
    def leads_per_day(self) -> int:
        return self.shape.leads_per_day

    @property
    def days(self) -> int:
        return self.shape.days

    @property
    def label(self) -> str:
        return f"{self.shape.label}, {self.latency_ms:g} ms"


@dataclass
class Sample:
    """One contender's load in one run of a scenario, measured and verified."""

    scenario: Scenario
    run: int
    measurement: Measurement
    requests: int
    cache_misses: int
    sandbox_cpu_seconds: float
    tables: dict[str, TableFingerprint] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        if self.measurement.rows is not None:
            return self.measurement.rows
        return sum(table.rows for table in self.tables.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.measurement.load_seconds if self.measurement.ok else 0.0


@dataclass
class ProbeResult:
    """The sandbox alone: rows it holds per report and how fast it serves them."""

    rows: dict[str, int]
    warmup_seconds: float
    rows_per_second: dict[int, float]  # threads -> rows/s


@dataclass
class Summary:
    """Medians of one contender in one scenario."""

    scenario: Scenario
    contender: str
    runs: int
    wall: float
    rows: int
    rows_per_second: float
    peak_rss_mib: float
    cpu_seconds: float
    requests: int
    ingest_seconds: float | None
    run_seconds: float | None
    process_seconds: float = float("nan")  # whole process: interpreter start to exit
    fixed_process_seconds: float | None = None  # the same process on an empty day
    fixed_cpu_seconds: float | None = None
    fixed_spread_seconds: float = 0.0  # max - min of the empty-day runs' process times

    @property
    def net_seconds(self) -> float | None:
        """The whole process, less its fixed cost (its empty-day run)."""
        if self.fixed_process_seconds is None:
            return None
        return self.process_seconds - self.fixed_process_seconds

    @property
    def net_measurable(self) -> bool:
        """Whether the net time stands out of the fixed cost's own run-to-run spread (on a
        busy shared machine a small load's net time can be lost in it)."""
        net = self.net_seconds
        return net is not None and net > max(self.fixed_spread_seconds, 0.05)

    @property
    def net_rows_per_second(self) -> float | None:
        net = self.net_seconds
        return self.rows / net if net and self.net_measurable else None

    @property
    def cpu_us_per_row(self) -> float | None:
        """CPU per stored row, whole process, net of the empty day's CPU."""
        if self.fixed_cpu_seconds is None or not self.rows:
            return None
        return (self.cpu_seconds - self.fixed_cpu_seconds) / self.rows * 1e6


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ingest.py",
        description="Ours vs dlt vs a minimal floor, loading the same SalesExec sandbox window.",
    )
    parser.add_argument(
        "--leads-per-day",
        type=int,
        nargs="+",
        default=[500, 5000],
        help="volumes: leads per lead type (3 types) and day (default: 500 5000)",
    )
    parser.add_argument("--days", type=int, default=7, help="days in the report window")
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=list(SHAPES),
        choices=SHAPES,
        help="workload: the volumes above, both reports, 3 lead types, --days days; "
        "busy-day(-actions): one day of one report for one lead type; many-types: one "
        "small day of both reports for many lead types (default: all)",
    )
    parser.add_argument(
        "--busy-day-leads",
        type=int,
        default=55_000,
        help="busy-day: leads of the one lead type on the one day (busy-day-actions: "
        "this many actions, about)",
    )
    parser.add_argument("--many-types", type=int, default=24, help="many-types: lead types")
    parser.add_argument(
        "--many-types-leads", type=int, default=200, help="many-types: leads per type and day"
    )
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="also run every contender on an empty day (its fixed cost) and report the "
        "whole processes, net of it",
    )
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (medians)")
    parser.add_argument(
        "--runs-at-largest",
        type=int,
        default=None,
        help="runs for the largest volume (default: --runs); the full run uses fewer there",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(LOADERS),
        help=f"comma-separated, from {', '.join(LOADERS)}, or a what-if module's dotted path",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="CONTENDER@LEADS_PER_DAY[@LATENCY]",
        help="leave a contender out of one volume or shape (and latency), e.g. dlt@5000@50",
    )
    parser.add_argument("--range-days", type=int, default=90, help="long single run; 0: none")
    parser.add_argument(
        "--range-leads-per-day", type=int, default=None, help="default: the smallest volume"
    )
    parser.add_argument(
        "--range-contenders", default=None, help="default: ours,floor (memory is the point)"
    )
    parser.add_argument("--chunk-days", type=int, default=7, help="ours' WarehouseResource")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="ours' max_concurrent_requests"
    )
    parser.add_argument("--first-day", type=date.fromisoformat, default=None)
    parser.add_argument("--profile", action="store_true", help="also cProfile ours once")
    parser.add_argument(
        "--profile-shape",
        choices=SHAPES,
        default=None,
        help="the shape profiled (default: busy-day if run, else the smallest workload)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/work/run"))
    parser.add_argument("--out", type=Path, default=None, help="write results to this file")
    args = parser.parse_args(argv)
    args.contender_list = [name.strip() for name in args.contenders.split(",") if name.strip()]
    # a dotted module path is a what-if contender (see benchmarks/experiments/)
    unknown = {name for name in args.contender_list if name not in LOADERS and "." not in name}
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    return args


def skipped(skips: Sequence[str], contender: str, scenario: Scenario) -> bool:
    """Whether ``--skip`` leaves this contender out of this scenario."""
    for rule in skips:
        parts = rule.split("@")
        if parts[0] != contender or parts[1] not in (
            str(scenario.leads_per_day),
            scenario.shape.name,
        ):
            continue
        if len(parts) < 3 or float(parts[2]) == scenario.latency_ms:
            return True
    return False


# --------------------------------------------------------------------------- running


def warm_up(workload: Workload, work_dir: Path) -> Measurement:
    """Read every page every contender will ask for once (ours' overlapping pages too)."""
    warming = replace(workload, concurrency=4, warm_overlapping=True)
    warm = run_contender("sandbox", warming, work_dir)
    if not warm.ok:
        raise RuntimeError(f"the sandbox warm-up failed: {warm.error}")
    return warm


def probe_sandbox(sandbox: SandboxProcess, workload: Workload, work_dir: Path) -> ProbeResult:
    """Warm every page of the workload into the sandbox, then time serving it."""
    started = time.perf_counter()
    warm = warm_up(workload, work_dir / "probe-warm")
    warmup_seconds = time.perf_counter() - started
    if not warm.ok:
        raise RuntimeError(f"the sandbox probe failed: {warm.error}")
    rows = {
        name[len(ROWS_PHASE_PREFIX) :]: int(value)
        for name, value in warm.phases.items()
        if name.startswith(ROWS_PHASE_PREFIX)
    }
    speeds = {}
    for threads in (1, 4):
        best = 0.0
        for attempt in range(2):
            probe = run_contender(
                "sandbox", replace(workload, concurrency=threads), work_dir / f"probe-{attempt}"
            )
            if probe.ok and probe.rows:
                best = max(best, probe.rows / probe.load_seconds)
        speeds[threads] = best
    return ProbeResult(rows, warmup_seconds, speeds)


def run_sample(
    sandbox: SandboxProcess,
    scenario: Scenario,
    run: int,
    contender: str,
    workload: Workload,
    work_dir: Path,
    *,
    verify: bool = True,
) -> Sample:
    """One contender, one fresh process, one fresh DuckDB file; measured and fingerprinted
    (``verify``; an empty day's load is only timed)."""
    db = work_dir / f"load-{contender}-{run}.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    workload = replace(workload, db_path=str(db), work_dir=str(work_dir))
    before, cpu_before = sandbox.stats(), sandbox.cpu_seconds()
    measurement = run_contender(contender, workload, work_dir)
    after, cpu_after = sandbox.stats(), sandbox.cpu_seconds()
    sample = Sample(
        scenario=scenario,
        run=run,
        measurement=measurement,
        requests=int(after["requests"] - before["requests"]),
        cache_misses=int(after["cache_misses"] - before["cache_misses"]),
        sandbox_cpu_seconds=cpu_after - cpu_before,
    )
    if measurement.ok and verify:
        sample.tables = fingerprint(str(db), measurement.tables)
    for path in (db, db.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(work_dir / "dlt-pipelines", ignore_errors=True)
    status = f"{sample.rows_per_second:>9,.0f} rows/s" if measurement.ok else "FAILED"
    print(
        f"  {scenario.label:<60} run {run + 1} {contender:<12} "
        f"{measurement.load_seconds:7.2f} s (process {measurement.process_seconds:6.2f} s) "
        f"{status}  "
        f"rss {measurement.peak_rss_bytes / 2**20:6.0f} MiB  requests {sample.requests}",
        flush=True,
    )
    if not measurement.ok:
        print(measurement.error, file=sys.stderr)
    return sample


def summarize_samples(samples: list[Sample]) -> list[Summary]:
    """Medians per (scenario, contender), in the order first measured."""
    groups: dict[tuple[Scenario, str], list[Sample]] = {}
    for sample in samples:
        if sample.measurement.ok:
            groups.setdefault((sample.scenario, sample.measurement.contender), []).append(sample)
    summaries = []
    for (scenario, contender), group in groups.items():
        phases = [sample.measurement.phases for sample in group]
        ingest = [phase["ingest_s"] for phase in phases if "ingest_s" in phase]
        run_times = [phase["run_s"] for phase in phases if "run_s" in phase]
        summaries.append(
            Summary(
                scenario=scenario,
                contender=contender,
                runs=len(group),
                wall=statistics.median(s.measurement.load_seconds for s in group),
                rows=group[0].rows,
                rows_per_second=statistics.median(s.rows_per_second for s in group),
                peak_rss_mib=statistics.median(s.measurement.peak_rss_bytes for s in group) / 2**20,
                cpu_seconds=statistics.median(s.measurement.cpu_seconds for s in group),
                requests=int(statistics.median(s.requests for s in group)),
                ingest_seconds=statistics.median(ingest) if ingest else None,
                run_seconds=statistics.median(run_times) if run_times else None,
                process_seconds=statistics.median(s.measurement.process_seconds for s in group),
            )
        )
    return summaries


def add_fixed_costs(summaries: list[Summary], empty: list[Sample]) -> None:
    """Each summary's fixed cost: the median of its contender's empty-day runs."""
    for summary in summaries:
        runs = [
            sample.measurement
            for sample in empty
            if sample.measurement.ok
            and sample.scenario == summary.scenario
            and sample.measurement.contender == summary.contender
        ]
        if runs:
            summary.fixed_process_seconds = statistics.median(m.process_seconds for m in runs)
            summary.fixed_cpu_seconds = statistics.median(m.cpu_seconds for m in runs)
            times = [m.process_seconds for m in runs]
            summary.fixed_spread_seconds = max(times) - min(times)


# --------------------------------------------------------------------------- reporting


def _best(summaries: list[Summary], scenario: Scenario, names: Sequence[str]) -> Summary | None:
    found = [s for s in summaries if s.scenario == scenario and s.contender in names]
    return max(found, key=lambda s: s.rows_per_second) if found else None


def results_table(summaries: list[Summary]) -> str:
    """The main table: medians per scenario and contender, with ours' ratios."""
    lines = [
        "| volume, window, latency | contender | runs | rows | wall s | rows/s | "
        "ours ÷ this | peak RSS MiB | CPU s | requests | ours: run s / ingest s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for summary in summaries:
        ours = next(
            (s for s in summaries if s.scenario == summary.scenario and s.contender == "ours"),
            None,
        )
        ratio = (
            f"{ours.rows_per_second / summary.rows_per_second:.2f}x"
            if ours and summary.contender != "ours" and summary.rows_per_second
            else ""
        )
        split = ""
        if summary.ingest_seconds is not None and summary.run_seconds is not None:
            split = f"{summary.run_seconds:.2f} / {summary.ingest_seconds:.2f}"
        lines.append(
            f"| {summary.scenario.label} | {summary.contender} | {summary.runs} | "
            f"{summary.rows:,} | {summary.wall:.2f} | {summary.rows_per_second:,.0f} | {ratio} | "
            f"{summary.peak_rss_mib:.0f} | {summary.cpu_seconds:.1f} | {summary.requests} | "
            f"{split} |"
        )
    return "\n".join(lines)


def whole_process_table(summaries: list[Summary]) -> str:
    """Each contender timed from process start to exit, and net of its empty-day run."""
    lines = [
        "| shape, latency | contender | rows | process s | fixed s (empty day) | net s | "
        "net rows/s | ours ÷ this (net) | CPU s | fixed CPU s | CPU us/row (net) | "
        "peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for summary in summaries:
        ours = _ours(summaries, summary.scenario)
        ratio = ""
        if ours and summary.contender != "ours":
            mine, theirs = ours.net_rows_per_second, summary.net_rows_per_second
            ratio = f"{mine / theirs:.2f}x" if mine and theirs else ""
        fixed = _number(summary.fixed_process_seconds, ".2f")
        if summary.fixed_spread_seconds:
            fixed += f" ±{summary.fixed_spread_seconds / 2:.2f}"
        net_rate = _number(summary.net_rows_per_second, ",.0f")
        if summary.net_seconds is not None and not summary.net_measurable:
            net_rate = "within the fixed cost's spread"
        lines.append(
            f"| {summary.scenario.label} | {summary.contender} | {summary.rows:,} | "
            f"{summary.process_seconds:.2f} | {fixed} | "
            f"{_number(summary.net_seconds, '.2f')} | {net_rate} | {ratio} | "
            f"{summary.cpu_seconds:.2f} | {_number(summary.fixed_cpu_seconds, '.2f')} | "
            f"{_number(summary.cpu_us_per_row, '.1f')} | {summary.peak_rss_mib:.0f} |"
        )
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _ours(summaries: list[Summary], scenario: Scenario) -> Summary | None:
    return next((s for s in summaries if s.scenario == scenario and s.contender == "ours"), None)


def cpu_budget_us(rows: dict[str, int]) -> float | None:
    """Issue 17's CPU budget per stored row for a load of these rows per report."""
    budgeted = {name: count for name, count in rows.items() if name in CPU_US_PER_ROW}
    total = sum(budgeted.values())
    if not total:
        return None
    return sum(CPU_US_PER_ROW[name] * count for name, count in budgeted.items()) / total


def whole_process_targets(
    summaries: list[Summary], rows_by_shape: dict[Shape, dict[str, int]]
) -> list[str]:
    """Issue 17's targets per shape and latency, on whole processes net of fixed cost."""
    lines = [
        "| shape, latency | measure | measured | target | verdict |",
        "|---|---|---:|---:|---|",
    ]
    for scenario in dict.fromkeys(s.scenario for s in summaries):
        ours = _ours(summaries, scenario)
        if ours is None or ours.fixed_process_seconds is None:
            continue
        at_zero = scenario.latency_ms == 0
        if ours.net_rows_per_second is None:
            lines.append(
                f"| {scenario.label} | ours' net time | {ours.net_seconds:.2f} s | > the fixed "
                f"cost's spread, {ours.fixed_spread_seconds:.2f} s | no verdict: lost in "
                "the noise of the fixed cost |"
            )
        others = [
            (
                "dlt-parquet" if at_zero else "dlt (best)",
                ["dlt-parquet"] if at_zero else ["dlt", "dlt-parquet"],
                3.0,
            ),
            ("floor", ["floor"], 0.6 if at_zero else 2.0),
        ]
        for label, names, target in others:
            found = [
                s
                for s in summaries
                if s.scenario == scenario and s.contender in names and s.net_rows_per_second
            ]
            if not found or ours.net_rows_per_second is None:
                continue
            other = max(found, key=lambda s: s.net_rows_per_second or 0.0)
            ratio = ours.net_rows_per_second / (other.net_rows_per_second or 1.0)
            lines.append(
                f"| {scenario.label} | ours ÷ {label}, net rows/s | {ratio:.2f}x | "
                f">= {target:g}x | {_verdict(ratio >= target)} |"
            )
        budget = cpu_budget_us(rows_by_shape.get(scenario.shape, {}))
        if at_zero and budget is not None and ours.cpu_us_per_row is not None:
            lines.append(
                f"| {scenario.label} | ours' CPU per stored row (net) | "
                f"{ours.cpu_us_per_row:.1f} us | <= {budget:.1f} us | "
                f"{_verdict(ours.cpu_us_per_row <= budget)} |"
            )
    return lines


def _counts(rows: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {name}" for name, count in rows.items())


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets(summaries: list[Summary], range_summaries: list[Summary]) -> list[str]:
    """The issue's targets, each computed from the medians."""
    lines = []
    scenarios = list(dict.fromkeys(s.scenario for s in summaries))
    for scenario in scenarios:
        ours = _best(summaries, scenario, ["ours"])
        if ours is None:
            continue
        dlt = _best(summaries, scenario, ["dlt", "dlt-parquet"])
        floor = _best(summaries, scenario, ["floor"])
        ingest_rate = ours.rows / ours.ingest_seconds if ours.ingest_seconds else None
        parts = []
        if scenario.latency_ms == 0:
            if dlt:
                ratio = ours.rows_per_second / dlt.rows_per_second
                parts.append(
                    f"ours/{dlt.contender} {ratio:.2f}x (target >= 2x: {_verdict(ratio >= 2)})"
                )
            if floor:
                ratio = ours.rows_per_second / floor.rows_per_second
                parts.append(f"ours/floor {ratio:.2f}x (target >= 0.8x: {_verdict(ratio >= 0.8)})")
                if ingest_rate:
                    parts.append(f"ingest only/floor {ingest_rate / floor.rows_per_second:.2f}x")
        else:
            for other in (floor, dlt):
                if other:
                    ratio = ours.rows_per_second / other.rows_per_second
                    verdict = _verdict(ratio >= 3)
                    parts.append(f"ours/{other.contender} {ratio:.2f}x (target >= 3x: {verdict})")
        lines.append(f"- {scenario.label}: " + "; ".join(parts))
    for latency in sorted({s.latency_ms for s in scenarios}):
        ours_by_volume = sorted(
            (
                s
                for s in summaries
                if s.contender == "ours"
                and s.scenario.latency_ms == latency
                and s.scenario.shape.name == "workload"
            ),
            key=lambda s: s.rows,
        )
        if len(ours_by_volume) >= 2:
            small, large = ours_by_volume[0], ours_by_volume[-1]
            growth = large.peak_rss_mib / small.peak_rss_mib - 1
            lines.append(
                f"- memory at {latency:g} ms: ours' peak RSS {small.peak_rss_mib:.0f} MiB for "
                f"{small.rows:,} rows -> {large.peak_rss_mib:.0f} MiB for {large.rows:,} rows "
                f"({large.rows / small.rows:.1f}x the rows): +{growth:.0%} "
                f"(target < +30%: {_verdict(growth < 0.3)})"
            )
    for long_run in (s for s in range_summaries if s.contender == "ours"):
        same_volume = [
            s
            for s in summaries
            if s.contender == "ours"
            and s.scenario.shape.name == "workload"
            and s.scenario.leads_per_day == long_run.scenario.leads_per_day
            and s.scenario.latency_ms == long_run.scenario.latency_ms
        ]
        if same_volume:
            base = same_volume[0]
            growth = long_run.peak_rss_mib / base.peak_rss_mib - 1
            lines.append(
                f"- {long_run.scenario.days}-day single run: ours' peak RSS "
                f"{long_run.peak_rss_mib:.0f} MiB for {long_run.rows:,} rows vs "
                f"{base.peak_rss_mib:.0f} MiB for {base.scenario.days} days: +{growth:.0%} "
                f"(target < +30%: {_verdict(growth < 0.3)})"
            )
    return lines


def machine_description() -> list[str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory_kib = int(info.readline().split()[1])
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- CPU: {os.cpu_count()} x {cpu} (nproc {len(os.sched_getaffinity(0))})",
        f"- memory: {memory_kib / 2**20:.1f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; {'; '.join(versions)}",
        f"- load average when the run started: {load}",
    ]


def render(
    args: argparse.Namespace,
    machine: list[str],
    probes: dict[Shape, ProbeResult],
    summaries: list[Summary],
    range_summaries: list[Summary],
    samples: list[Sample],
    problems: list[str],
    profile: str | None,
    elapsed: float,
) -> str:
    """The whole report as markdown."""
    command = "python benchmarks/ingest.py " + shlex.join(args.argv)
    lines = [
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command.strip()}` "
        f"in {elapsed / 60:.1f} min.",
        "",
        "### Machine",
        "",
        *machine,
        "",
        "### Whole processes (medians)",
        "",
        "Each contender timed from process start to exit (interpreter start, imports, "
        "definitions, the load, exit), as the parent sees it; fixed = the same process "
        "loading an empty day of the same shape (same calls, no rows); net = process - "
        "fixed; CPU = the child's user + system CPU (``wait4``), net of the empty day's.",
        "",
        whole_process_table(summaries)
        if any(s.fixed_process_seconds is not None for s in summaries)
        else "(not measured: run with `--whole-process`)",
        "",
        "### Targets (issue 17: whole processes, net of fixed cost)",
        "",
        *whole_process_targets(summaries, {shape: p.rows for shape, p in probes.items()}),
        "",
        "### Results in process (medians)",
        "",
        "rows = the rows stored; wall = the timed load in the child "
        "(after imports); ours' run s = Dagster's RUN_START..RUN_SUCCESS, ingest s = time "
        "inside `load_report` (pull, stage, write), the rest being Dagster, checks and "
        "metadata; ours ÷ this = ours' rows/s over this contender's.",
        "",
        results_table(summaries),
    ]
    if range_summaries:
        lines += ["", "### Long range (single run)", "", results_table(range_summaries)]
    lines += ["", "### The sandbox alone", ""]
    for shape, probe in probes.items():
        fastest = max(
            (
                s.rows_per_second
                for s in summaries
                if s.scenario.latency_ms == 0 and s.scenario.shape == shape
            ),
            default=0,
        )
        serving = max(probe.rows_per_second.values())
        margin = serving / fastest if fastest else float("inf")
        lines.append(
            f"- {shape.label}: the API holds {_counts(probe.rows)}; serves "
            + ", ".join(
                f"{rate:,.0f} rows/s on {threads} connection(s)"
                for threads, rate in probe.rows_per_second.items()
            )
            + f" (warm-up {probe.warmup_seconds:.1f} s); fastest contender at 0 ms reads "
            f"{fastest:,.0f} rows/s: margin {margin:.1f}x "
            + ("(ok)" if margin >= SANDBOX_MARGIN else "(**too small: the sandbox is measured**)")
        )
    busy: dict[str, list[float]] = {}
    for sample in samples:
        if sample.measurement.ok and sample.scenario.latency_ms == 0:
            share = sample.sandbox_cpu_seconds / sample.measurement.process_seconds
            busy.setdefault(sample.measurement.contender, []).append(share)
    if busy:
        lines.append(
            "- sandbox CPU while each contender ran at 0 ms (share of one core, median): "
            + ", ".join(f"{name} {statistics.median(v):.0%}" for name, v in busy.items())
        )
    misses = sum(sample.cache_misses for sample in samples)
    lines.append(f"- page-cache misses during the timed loads: {misses} (0 = every page was warm)")
    lines += ["", "### Verification", ""]
    if problems:
        lines += [f"- **{problem}**" for problem in problems]
    else:
        checked = [s for s in samples if s.tables]
        lines.append(
            f"- all {len(checked)} loads stored, per scenario, the same row counts and the same "
            "key sets (md5 of the sorted keys) as each other and as the API's TotalCount."
        )
    lines += ["", "### Issue 6's targets (in process)", "", *targets(summaries, range_summaries)]
    if profile:
        lines += ["", "### Profile of ours", "", profile]
    return "\n".join(lines)


def write_out(path: Path, generated: str) -> None:
    """Replace the generated section of ``path`` (or create it), keeping the rest."""
    block = f"{GENERATED_START}\n{generated}\n{GENERATED_END}"
    if path.exists():
        text = path.read_text()
        if GENERATED_START in text and GENERATED_END in text:
            head, rest = text.split(GENERATED_START, 1)
            tail = rest.split(GENERATED_END, 1)[1]
            path.write_text(head + block + tail)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Ingest benchmark results\n\n{block}\n")


# --------------------------------------------------------------------------- main


def shapes_of(args: argparse.Namespace) -> list[Shape]:
    """The shapes asked for, in order (the workload once per volume)."""
    shapes: list[Shape] = []
    for name in args.shapes:
        if name == "workload":
            shapes += [Shape("workload", volume, args.days) for volume in args.leads_per_day]
        elif name == "busy-day":
            shapes.append(Shape(name, args.busy_day_leads, 1, 3, (1,), ("all_leads",)))
        elif name == "busy-day-actions":
            leads = max(1, round(args.busy_day_leads / ACTIONS_PER_LEAD))
            shapes.append(Shape(name, leads, 1, 3, (1,), ("all_actions",)))
        else:
            shapes.append(Shape(name, args.many_types_leads, 1, args.many_types))
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    machine = machine_description()
    work_dir = args.work_dir.resolve()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    shapes = shapes_of(args)
    longest = max([shape.days for shape in shapes] + [args.range_days or 0])
    # days whose leads' whole history (LEAD_MAX_AGE) lies in the past: the sandbox serves
    # recent days as they stand at its clock, so their rows would change between runs
    settled = LEAD_MAX_AGE.days + 2
    first_day = args.first_day or date.today() - timedelta(days=longest + settled)
    largest = max(args.leads_per_day)
    samples: list[Sample] = []
    empty_samples: list[Sample] = []
    range_samples: list[Sample] = []
    probes: dict[Shape, ProbeResult] = {}
    problems: list[str] = []

    def workload(sandbox: SandboxProcess, shape: Shape, days: int | None = None) -> Workload:
        return Workload(
            base_url=sandbox.base_url,
            first_day=first_day,
            days=days or shape.days,
            db_path="",
            work_dir=str(work_dir),
            chunk_days=args.chunk_days,
            concurrency=args.concurrency,
            reports=shape.reports,
            lead_type_uids=shape.lead_type_uids,
        )

    def check(group: list[Sample], expected: dict[str, int]) -> None:
        loads = {
            f"{s.measurement.contender}#{s.run + 1}": s.tables for s in group if s.measurement.ok
        }
        problems.extend(
            f"{group[0].scenario.label}: {problem}" for problem in disagreements(loads, expected)
        )
        problems.extend(
            f"{s.scenario.label}: {s.measurement.contender} run {s.run + 1} failed"
            for s in group
            if not s.measurement.ok
        )

    def runs_of(shape: Shape) -> int:
        if shape.name == "workload" and shape.leads_per_day == largest:
            return args.runs_at_largest or args.runs
        return args.runs

    print("machine:", *machine, sep="\n  ")
    for index, shape in enumerate(shapes):
        sandbox = SandboxProcess(shape.leads_per_day, lead_types=shape.lead_types)
        try:
            base = workload(sandbox, shape)
            probe = probe_sandbox(sandbox, base, work_dir / f"s{index}")
            probes[shape] = probe
            print(
                f"sandbox {shape.label}: {_counts(probe.rows)}; "
                f"warm-up {probe.warmup_seconds:.1f} s; serves "
                + ", ".join(
                    f"{r:,.0f} rows/s ({t} conn)" for t, r in probe.rows_per_second.items()
                ),
                flush=True,
            )
            for latency in args.latency_ms:
                sandbox.set_latency(latency)
                scenario = Scenario(shape, latency, runs_of(shape))
                group = []
                for run in range(scenario.runs):
                    for contender in args.contender_list:
                        if skipped(args.skip, contender, scenario):
                            continue
                        group.append(
                            run_sample(
                                sandbox,
                                scenario,
                                run,
                                contender,
                                base,
                                work_dir / f"s{index}-{latency:g}ms",
                            )
                        )
                check(group, probe.rows)
                samples += group
        finally:
            sandbox.stop()

    if args.whole_process:  # the fixed costs: the same loads of an empty day
        for lead_types in dict.fromkeys(shape.lead_types for shape in shapes):
            sandbox = SandboxProcess(0, lead_types=lead_types)
            try:
                for index, shape in enumerate(shapes):
                    if shape.lead_types != lead_types:
                        continue
                    base = workload(sandbox, shape)
                    for latency in args.latency_ms:
                        sandbox.set_latency(latency)
                        scenario = Scenario(shape, latency, runs_of(shape))
                        for run in range(scenario.runs):
                            for contender in args.contender_list:
                                if skipped(args.skip, contender, scenario):
                                    continue
                                sample = run_sample(
                                    sandbox,
                                    scenario,
                                    run,
                                    contender,
                                    base,
                                    work_dir / f"empty{index}-{latency:g}ms",
                                    verify=False,
                                )
                                if not sample.measurement.ok:
                                    problems.append(
                                        f"{scenario.label}: {contender}'s empty-day run failed"
                                    )
                                empty_samples.append(sample)
            finally:
                sandbox.stop()

    if args.range_days:
        leads_per_day = args.range_leads_per_day or min(args.leads_per_day)
        names = (args.range_contenders or "ours,floor").split(",")
        shape = Shape("workload", leads_per_day, args.range_days)
        sandbox = SandboxProcess(leads_per_day)
        try:
            base = workload(sandbox, shape)
            started_warm = time.perf_counter()
            warm = warm_up(base, work_dir / "range-warm")
            expected = {
                name[len(ROWS_PHASE_PREFIX) :]: int(value)
                for name, value in warm.phases.items()
                if name.startswith(ROWS_PHASE_PREFIX)
            }
            print(
                f"sandbox {leads_per_day:,} leads/day x {args.range_days} d: warm-up "
                f"{time.perf_counter() - started_warm:.1f} s",
                flush=True,
            )
            scenario = Scenario(shape, 0.0, 1)
            group = [
                run_sample(sandbox, scenario, 0, name, base, work_dir / "range") for name in names
            ]
            check(group, expected)
            range_samples += group
        finally:
            sandbox.stop()

    profile = None
    if args.profile:
        wanted = args.profile_shape or ("busy-day" if "busy-day" in args.shapes else "workload")
        shape = min(
            (s for s in shapes if s.name == wanted),
            key=lambda s: s.leads_per_day,
            default=shapes[0],
        )
        sandbox = SandboxProcess(shape.leads_per_day, lead_types=shape.lead_types)
        try:
            base = workload(sandbox, shape)
            warm_up(base, work_dir / "profile-warm")
            profile_dir = work_dir / "profile"
            profile_dir.mkdir(parents=True, exist_ok=True)
            pstats_path = profile_dir / "ours.pstats"
            profiled = run_contender(
                "ours",
                replace(base, concurrency=1, db_path=str(profile_dir / "load-ours.duckdb")),
                profile_dir,
                profile_to=pstats_path,
            )
            if profiled.ok:
                profile = f"{shape.label} at 0 ms, max_concurrent_requests=1.\n\n" + summarize(
                    pstats_path, profiled.load_seconds
                )
                print(f"profile written to {pstats_path}", flush=True)
            else:
                problems.append(f"the profiled run of ours failed: {profiled.error}")
        finally:
            sandbox.stop()

    summaries = summarize_samples(samples)
    add_fixed_costs(summaries, empty_samples)
    range_summaries = summarize_samples(range_samples)
    report = render(
        args,
        machine,
        probes,
        summaries,
        range_summaries,
        samples + range_samples,
        problems,
        profile,
        time.perf_counter() - started,
    )
    print()
    print(report)
    if args.out is not None:
        write_out(args.out, report)
        print(f"\nwritten to {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
