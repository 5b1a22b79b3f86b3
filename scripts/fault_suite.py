#!/usr/bin/env python3
"""The fault suite at any scale: every scenario of issue 5, then one line of figures.

    python scripts/fault_suite.py --leads-per-day 200 --partitions 21 --kills 6 --writers 4

It runs the very functions ``salesexec_assets_tests/test_faults.py`` runs in CI at a
small scale (``salesexec_assets_tests/fault_scenarios.py``): the real pipeline through
``dagster asset materialize`` and Dagster's Python API, against sandboxes with faults on,
every stored partition compared with the ground truth. Dagster's output goes to
``suite.log`` in the work directory (and into the secret scan), not to the terminal.
Exit status 0 when every promise held.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests are not installed

from salesexec_assets_tests.fault_scenarios import SCENARIOS, Lab, Scale
from salesexec_assets_tests.figures import Figures
from salesexec_assets_tests.postgres_server import PostgresServer, run_postgres

SCALE_HELP = {
    "leads_per_day": "sandbox volume, per lead type and day (2 or more)",
    "partitions": "days per range (14 or more for the issue's all-faults run)",
    "kills": "kill -9 runs, aimed alternately at a pull and at a write",
    "writers": "CLI processes writing one destination at once",
    "seed": "data, faults and kill moments",
}


def _parser() -> argparse.ArgumentParser:
    defaults = Scale()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, text in SCALE_HELP.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(defaults, name), help=text)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the scenarios whose name contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the files and suite.log here (default: a temporary directory)",
    )
    parser.epilog = "scenarios: " + "; ".join(SCENARIOS)
    return parser


class LazyPostgres:
    """The Postgres scenarios' server: started by the first that asks, stopped at the end."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._server: PostgresServer | None = None

    def __call__(self) -> PostgresServer:
        if self._server is None:
            self._server = self._stack.enter_context(run_postgres())
        return self._server


def run_scenarios(scale: Scale, work: Path, only: Sequence[str]) -> tuple[Figures, list[str]]:
    """Each scenario in a lab of its own; returns the figures and the failures."""
    figures = Figures()
    failures: list[str] = []
    servers = ExitStack()
    postgres = LazyPostgres(servers)
    with servers, (work / "suite.log").open("a") as log:
        for name, scenario in SCENARIOS.items():
            if only and not any(text in name for text in only):
                continue
            root = work / re.sub(r"\W+", "-", name).strip("-")
            root.mkdir()
            output = io.StringIO()
            lab = Lab(root, scale, figures)
            lab.postgres = postgres
            started = time.monotonic()
            try:
                with redirect_stdout(output), redirect_stderr(output), lab:
                    try:
                        scenario(lab)
                    finally:
                        lab.secrets.add(f"{name}: output", output.getvalue())
                status = "ok  "
            except Exception as error:
                status = "FAIL"
                failures.append(f"{name}: {type(error).__name__}: {error}"[:2000])
                output.write(traceback.format_exc())
            log.write(f"===== {name}\n{output.getvalue()}\n")
            print(f"{status} {name} ({time.monotonic() - started:.1f} s)", flush=True)
            for note in lab.notes:
                print(f"     {note}", flush=True)
    return figures, failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        scale = Scale(**{name: getattr(args, name) for name in SCALE_HELP})
    except ValueError as error:
        parser.error(str(error))
    print(f"fault suite at {scale}", flush=True)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        figures, failures = run_scenarios(scale, args.work_dir.resolve(), args.only)
    else:
        with tempfile.TemporaryDirectory(prefix="fault-suite-") as work:
            figures, failures = run_scenarios(scale, Path(work), args.only)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(figures.summary(), flush=True)
    broken = failures or figures.rows_lost or figures.duplicates_found or figures.secrets_leaked
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
