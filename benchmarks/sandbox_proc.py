"""The benchmark's sandbox: the project's ``SandboxServer`` in its own process, made fast.

Why a wrapper and not ``salesexec-sandbox`` as it is:

- The plain sandbox generates days and serializes pages on demand, with small LRU
  caches: reading 90 days, or a second contender reading the same days, regenerates
  them, and the benchmark would measure the sandbox. Here every 200 answer of a report
  page is cached as bytes (keyed by the parsed window, skip and take), so after one
  warm-up pass a page costs the HTTP server's work only. Tokens are still checked.
- Request counts must reach the driver, another process: ``GET /__bench/stats``
  answers them (the control paths are not counted), and ``POST /__bench/latency?ms=50``
  changes the latency of the running server so the warm caches survive a latency
  change.
- A large account has many lead types; the sandbox has three. ``--lead-types N`` serves
  N, the extra ones cycling through the three's own fields (see
  :func:`serve_lead_types`).

Prints the base URL alone on the first line of stdout, like ``salesexec-sandbox``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from types import FrameType

import requests

from benchmarks.harness import REPO_ROOT, child_environment
from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import TimestampError, parse_api_timestamp
from salesexec_assets.sandbox import (
    SandboxConfig,
    SandboxServer,
    catalog,
    configure,
    generate,
    state,
)
from salesexec_assets.sandbox.messages import Request, Response, json_response

CONTROL_PREFIX = "/__bench/"
_PAGED_PATHS = frozenset(report.path.lower() for report in contract.REPORTS if report.paged)

PageKey = tuple[str, int, datetime, datetime, int, int]
_LEAD_TYPES_PER_DAY = 100  # LeadUID = (day ordinal * 100 + lead type) * 10**6 + index


def serve_lead_types(count: int) -> None:
    """Make this process's sandbox serve ``count`` lead types (3 by default).

    Lead types 4.. reuse the fields of 1-3 in turn, under their own UID and name. The
    sandbox packs the lead type into a lead's UID as one decimal digit; beyond 9 lead
    types two digits are used, in this process only, so that UIDs stay unique.
    """
    base = catalog.LEAD_TYPES[:3]
    if count <= len(base):
        catalog.LEAD_TYPES = base[:count]
    else:
        if count >= _LEAD_TYPES_PER_DAY:
            raise ValueError(f"at most {_LEAD_TYPES_PER_DAY - 1} lead types")
        extra = tuple(
            dataclasses.replace(like, uid=uid, name=f"{like.name} {uid}")
            for uid in range(len(base) + 1, count + 1)
            for like in [base[(uid - 1) % len(base)]]
        )
        catalog.LEAD_TYPES = base + extra
        factor = generate._LEAD_INDEX_FACTOR

        def lead_uid(spec: catalog.LeadTypeSpec, day: object, index: int) -> int:
            return (day.toordinal() * _LEAD_TYPES_PER_DAY + spec.uid) * factor + index  # type: ignore[attr-defined]

        def lead_day(uid: int) -> object:
            return datetime.fromordinal(uid // factor // _LEAD_TYPES_PER_DAY).date()

        generate.lead_uid = lead_uid  # type: ignore[assignment]
        generate.lead_day = lead_day  # type: ignore[assignment]
        state.lead_day = lead_day  # type: ignore[attr-defined]
    catalog.LEAD_TYPES_BY_UID = {spec.uid: spec for spec in catalog.LEAD_TYPES}


def page_key(request: Request) -> PageKey | None:
    """The identity of a report page request, independent of how the instants are spelled."""
    path = request.path.rstrip("/").lower()
    if request.method != "GET" or path not in _PAGED_PATHS:
        return None
    try:
        return (
            path,
            int(request.param(contract.PARAM_LEAD_TYPE) or ""),
            parse_api_timestamp(request.param(contract.PARAM_START) or ""),
            parse_api_timestamp(request.param(contract.PARAM_END) or ""),
            int(request.param(contract.PARAM_SKIP) or 0),
            int(request.param(contract.PARAM_TAKE) or contract.TAKE_DEFAULT),
        )
    except (ValueError, TimestampError):
        return None  # the sandbox answers the 400 itself


class BenchSandbox(SandboxServer):
    """``SandboxServer`` with a page cache, its own counters and two control endpoints.

    Its attributes are prefixed ``_bench_`` so that none shadows one of the server's own.
    """

    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(config, host, port)
        self._bench_pages: dict[PageKey, Response] = {}
        self._bench_tokens: set[str] = set()
        self._bench_lock = threading.Lock()
        self._bench_counts = {"requests": 0, "cache_hits": 0, "cache_misses": 0, "cached_bytes": 0}

    def respond(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        key = page_key(request)
        with self._bench_lock:
            self._bench_counts["requests"] += 1
            cached = self._bench_pages.get(key) if key is not None else None
        token = request.headers.get(contract.AUTH_HEADER)
        if cached is not None and token in self._bench_tokens:
            with self._bench_lock:
                self._bench_counts["cache_hits"] += 1
            latency_ms = self.faults.latency_ms
            if latency_ms > 0:
                time.sleep(latency_ms / 1000)
            return cached
        response = super().respond(request)
        if response.status == 200 and key is not None:
            with self._bench_lock:
                self._bench_counts["cache_misses"] += 1
                self._bench_pages[key] = response
                self._bench_counts["cached_bytes"] += len(response.body)
        elif response.status == 200 and request.path.lower() == contract.AUTHENTICATE_PATH.lower():
            token_issued = json.loads(response.body).get(contract.LOGIN_TOKEN)
            with self._bench_lock:
                self._bench_tokens.add(token_issued)
        return response

    def _control(self, request: Request) -> Response:
        command = request.path[len(CONTROL_PREFIX) :].strip("/")
        if command == "latency" and request.method == "POST":
            latency_ms = float(request.param("ms") or 0)
            self.set_faults(dataclasses.replace(self.faults, latency_ms=latency_ms))
        elif command != "stats":
            return json_response(404, json.dumps({contract.ERROR_MESSAGE: "unknown control"}))
        with self._bench_lock:
            stats = {
                **self._bench_counts,
                "cached_pages": len(self._bench_pages),
                "latency_ms": self.faults.latency_ms,
            }
        return json_response(200, json.dumps(stats))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--leads-per-day", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lead-types", type=int, default=3)
    args = parser.parse_args(argv)
    serve_lead_types(args.lead_types)
    config = configure(
        SandboxConfig(seed=args.seed, leads_per_day=args.leads_per_day),
        latency_ms=args.latency_ms,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    with BenchSandbox(config, args.host, args.port) as server:
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


# --------------------------------------------------------------------------- driver side


class SandboxProcess:
    """The benchmark sandbox as a child process, for the driver: start, control, stop."""

    def __init__(self, leads_per_day: int, latency_ms: float = 0.0, lead_types: int = 3) -> None:
        self.leads_per_day = leads_per_day
        self.lead_types = lead_types
        command = [sys.executable, "-m", "benchmarks.sandbox_proc"]
        command += ["--leads-per-day", str(leads_per_day), "--latency-ms", str(latency_ms)]
        command += ["--lead-types", str(lead_types)]
        self._process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise RuntimeError("the benchmark sandbox did not start")
        self._session = requests.Session()

    @property
    def pid(self) -> int:
        return self._process.pid

    def stats(self) -> dict[str, float]:
        """Requests served, cache hits and misses, cached pages, latency."""
        answer = self._session.get(f"{self.base_url}{CONTROL_PREFIX}stats", timeout=10)
        answer.raise_for_status()
        stats: dict[str, float] = answer.json()
        return stats

    def set_latency(self, latency_ms: float) -> None:
        answer = self._session.post(
            f"{self.base_url}{CONTROL_PREFIX}latency", params={"ms": latency_ms}, timeout=10
        )
        answer.raise_for_status()

    def cpu_seconds(self) -> float:
        """The sandbox process's CPU time so far (user + system); NaN without psutil."""
        try:
            import psutil  # the benchmark extra; the smoke test may run without it
        except ImportError:
            return float("nan")
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


if __name__ == "__main__":
    sys.exit(main())
