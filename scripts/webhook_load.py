#!/usr/bin/env python3
"""The webhook receiver under load, at any scale, then killed with SIGKILL mid-load.

    python scripts/webhook_load.py --senders 20 --events 20000 --kill-after 5000

It runs the very function ``salesexec_assets_tests/test_webhook_load.py`` runs in CI at a
small scale (``salesexec_assets_tests/webhook_load.py``): ``salesexec webhooks serve`` as
a child process on a free loopback port, concurrent senders with a ledger of every event
acknowledged, the ledger compared with the inbox, events/s and p50/p99 latency; then the
same with ``kill -9`` after ``--kill-after`` acknowledged events, a restart on the same
inbox, and the rest sent again. The receiver's log goes to ``receiver.log`` in the work
directory and is scanned for the secret. Exit status 0 when every promise held.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests are not installed

from salesexec_assets_tests.webhook_load import run_load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=20, help="concurrent senders")
    parser.add_argument("--events", type=int, default=5000, help="events per run")
    parser.add_argument(
        "--kill-after",
        type=int,
        default=None,
        help="acknowledged events before kill -9 (default: a third of --events; 0: no kill run)",
    )
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per run at most")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp directory")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="webhook-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    secret = "whsec-load-" + uuid.uuid4().hex
    kill_after = args.events // 3 if args.kill_after is None else args.kill_after
    ok = True
    runs = [("load", None)] + ([("kill -9", kill_after)] if kill_after else [])
    for name, kill in runs:
        run_dir = workdir / name.replace(" ", "").replace("-", "")
        run_dir.mkdir(exist_ok=True)
        report, output = run_load(
            run_dir,
            senders=args.senders,
            events=args.events,
            kill_after=kill,
            time_limit=args.time_limit,
            secret=secret,
        )
        leaked = secret in output
        print(f"{name}: {report.summary()}; secret in output: {leaked}")
        every_one_acknowledged = kill is not None or report.acknowledged == report.events
        ok = ok and report.ok and not leaked and every_one_acknowledged
    print(f"work directory: {workdir}; {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
