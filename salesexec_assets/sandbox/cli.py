"""``salesexec-sandbox``: run the sandbox in the foreground until SIGINT or SIGTERM.

Prints the base URL (alone, on the first line of stdout) so that scripts can read it;
the password is never printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from types import FrameType

from salesexec_assets.api.overrides import OverridesError
from salesexec_assets.sandbox.config import Faults, SandboxConfig
from salesexec_assets.sandbox.server import SandboxServer

PASSWORD_ENV = "SALESEXEC_SANDBOX_PASSWORD"


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share within [0, 1], got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesexec-sandbox",
        description="A local SalesExec API (the project's working contract) with "
        "deterministic data and optional faults.",
    )
    serve = parser.add_argument_group("server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--username", default="sandbox")
    serve.add_argument(
        "--password",
        default=os.environ.get(PASSWORD_ENV, "sandbox"),
        help=f"default: ${PASSWORD_ENV} or 'sandbox'",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.add_argument(
        "--contract-overrides",
        metavar="FILE",
        default=None,
        help="speak the API dialect of this contract overrides file (renamed paths, "
        "parameters, fields) instead of the contract; /swagger/docs/v1 says so too",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--seed", type=int, default=7)
    data.add_argument("--leads-per-day", type=int, default=50, help="per lead type and day")
    data.add_argument(
        "--schema-drift-from",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="leads added from this day on gain a field and have a number turned to text",
    )
    faults = parser.add_argument_group("faults (all off by default)")
    faults.add_argument("--fault-seed", type=int, default=None, help="default: --seed")
    faults.add_argument("--p429", type=_share, default=0.0, help="share answered 429")
    faults.add_argument("--retry-after-seconds", type=int, default=1)
    faults.add_argument("--p5xx", type=_share, default=0.0, help="share answered 5xx")
    faults.add_argument("--token-uses", type=int, default=None, help="a token dies after N uses")
    faults.add_argument("--latency-ms", type=float, default=0.0)
    faults.add_argument("--ptruncate", type=_share, default=0.0, help="share of cut 200 bodies")
    faults.add_argument(
        "--pdrop", type=_share, default=0.0, help="share of 200 answers dropped mid-body"
    )
    faults.add_argument(
        "--pdrift", type=_share, default=0.0, help="share of Skip>0 reads that insert a lead"
    )
    faults.add_argument(
        "--premove",
        type=_share,
        default=0.0,
        help="share of Skip>0 reads that make an already served row leave the window",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox config the command line describes."""
    faults = Faults(
        seed=args.seed if args.fault_seed is None else args.fault_seed,
        p429=args.p429,
        retry_after_seconds=args.retry_after_seconds,
        p5xx=args.p5xx,
        token_uses=args.token_uses,
        latency_ms=args.latency_ms,
        ptruncate=args.ptruncate,
        pdrop=args.pdrop,
        pdrift=args.pdrift,
        premove=args.premove,
        schema_drift_from=args.schema_drift_from,
    )
    return SandboxConfig(
        seed=args.seed,
        leads_per_day=args.leads_per_day,
        username=args.username,
        password=args.password,
        faults=faults,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; exit 0 on SIGINT/SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    try:
        server = SandboxServer(
            config,
            args.host,
            args.port,
            verbose=args.verbose,
            contract_overrides=args.contract_overrides,
        )
    except OverridesError as error:
        parser.error(str(error))
    with server:
        print(server.base_url, flush=True)
        print(
            f"SalesExec sandbox: user {config.username!r}, seed {config.seed}, "
            f"{config.leads_per_day} leads per lead type and day, faults {config.faults}, "
            f"contract overrides {server.dialect.overrides.describe()}. "
            "Ctrl+C stops.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
