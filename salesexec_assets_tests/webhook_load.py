"""The webhook receiver under load, and killed with SIGKILL in the middle of it.

The receiver runs as its own process (``salesexec webhooks serve`` on a free loopback
port), as in production. Concurrent senders post distinct events and keep a ledger of
every event the receiver acknowledged (202). Afterwards the ledger is compared with the
inbox: every acknowledged event must be there exactly once, and nothing that was never
sent. With ``kill_after``, the receiver gets ``kill -9`` once that many events were
acknowledged; it is restarted on the same inbox, which must still hold every event
acknowledged before the kill; then the unacknowledged events are sent again, and the
inbox must hold every event exactly once (an event stored but not acknowledged before
the kill is de-duplicated, not doubled).

Used by ``test_webhook_load.py`` at a small scale and by ``scripts/webhook_load.py`` at
any scale. Loopback only, bounded in events and in time.
"""

from __future__ import annotations

import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import requests

from salesexec_assets.api import contract
from salesexec_assets.sandbox.webhooks import webhook_payload
from salesexec_assets.webhooks.inbox import INBOX_VAR, InboxReader
from salesexec_assets.webhooks.payloads import canonical_json
from salesexec_assets.webhooks.settings import SECRET_VAR, WEBHOOK_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def make_events(count: int, seed: int = 0) -> list[dict]:
    """``count`` distinct events of the four types."""
    base = datetime.now(UTC).replace(tzinfo=None)
    events = []
    for index in range(count):
        number = 100 + index % 4
        values = {
            contract.WEBHOOK_ACCOUNT_GUID: str(uuid.UUID(int=seed + 1)),
            contract.WEBHOOK_LEAD_GUID: str(uuid.uuid4()),
            contract.WEBHOOK_LEAD_TYPE_GUID: str(uuid.UUID(int=seed + 2)),
            contract.WEBHOOK_LEAD_FIELD_GUID: str(uuid.UUID(int=seed + 3)),
            contract.WEBHOOK_VALUE: f"value {index}",
            contract.WEBHOOK_NEW_STAGE_NAME: "Working",
            contract.WEBHOOK_NEW_STATUS_NAME: "Contacted",
            contract.WEBHOOK_TYPES_BY_NUMBER[number].instant_field: base
            - timedelta(microseconds=index),
        }
        events.append(webhook_payload(number, values))
    return events


class ReceiverProcess:
    """``salesexec webhooks serve`` in a child process, on a free loopback port."""

    def __init__(self, inbox: Path, secret: str, log: IO[str]) -> None:
        env = {**os.environ, SECRET_VAR: secret, INBOX_VAR: str(inbox)}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "salesexec_assets.cli",
                "webhooks",
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                "0",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "listening on http://127.0.0.1:PORT/..."
        if "listening on http://" not in line:
            self.process.kill()
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.base_url = line.split("listening on ")[1].split(WEBHOOK_PATH)[0]
        self.output_lines = [line]
        self._drain = threading.Thread(target=self._read_stdout, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 60
        while True:  # uvicorn is up once /healthz answers
            try:
                if requests.get(self.base_url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not answer /healthz")
            time.sleep(0.05)

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output_lines.append(line)

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@dataclass
class LoadReport:
    """What a load run measured and found."""

    senders: int
    events: int
    acknowledged: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    inbox_rows: int = 0
    missing_acknowledged: int = 0  # acknowledged, not in the inbox: must be 0
    never_sent: int = 0  # in the inbox, never sent: must be 0
    duplicate_rows: int = 0  # must be 0
    killed_after: int | None = None
    survived_kill: int = 0  # acknowledged before the kill and found after the restart
    lost_in_kill: int = 0  # acknowledged before the kill, gone after it: must be 0
    stored_unacknowledged: int = 0  # committed, but the kill came before the 202
    resent: int = 0
    complete_after_resend: bool = True

    @property
    def events_per_second(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0

    def percentile_ms(self, share: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def ok(self) -> bool:
        return (
            self.missing_acknowledged == 0
            and self.never_sent == 0
            and self.duplicate_rows == 0
            and self.lost_in_kill == 0
            and self.complete_after_resend
        )

    def summary(self) -> str:
        text = (
            f"{self.senders} senders, {self.events} events: {self.acknowledged} acknowledged in "
            f"{self.seconds:.1f} s = {self.events_per_second:.0f} events/s, latency p50 "
            f"{self.percentile_ms(0.5):.1f} ms, p99 {self.percentile_ms(0.99):.1f} ms "
            f"(mean {statistics.fmean(self.latencies_ms) if self.latencies_ms else 0:.1f} ms); "
            f"inbox {self.inbox_rows} rows, acknowledged but missing {self.missing_acknowledged}, "
            f"never sent {self.never_sent}, duplicate rows {self.duplicate_rows}"
        )
        if self.killed_after is not None:
            text += (
                f"; kill -9 after {self.killed_after} acknowledged: {self.survived_kill} "
                f"acknowledged before the kill found after restart, {self.lost_in_kill} lost, "
                f"{self.stored_unacknowledged} stored but not yet acknowledged; "
                f"{self.resent} resent, every event exactly once: {self.complete_after_resend}"
            )
        return text


def _send_all(
    base_url: str,
    secret: str,
    events: list[dict],
    senders: int,
    deadline: float,
    on_ack: threading.Event | None = None,
    ack_target: int | None = None,
) -> tuple[dict[str, float], set[str]]:
    """Post every event once from ``senders`` threads: (acknowledged body -> latency ms,
    bodies not acknowledged)."""
    work: queue.Queue[dict] = queue.Queue()
    for event in events:
        work.put(event)
    acknowledged: dict[str, float] = {}
    failed: set[str] = set()
    lock = threading.Lock()
    url = f"{base_url}{WEBHOOK_PATH}/{secret}"

    def sender() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                try:
                    event = work.get_nowait()
                except queue.Empty:
                    return
                body = canonical_json(event)
                started = time.perf_counter()
                try:
                    answer = session.post(
                        url,
                        data=body.encode(),
                        timeout=30,
                        headers={"Content-Type": "application/json"},
                    )
                    ok = answer.status_code == 202
                except requests.RequestException:
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if ok:
                        acknowledged[body] = elapsed
                        if on_ack is not None and ack_target and len(acknowledged) >= ack_target:
                            on_ack.set()
                    else:
                        failed.add(body)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while not work.empty():  # the deadline passed: the rest was never sent
        failed.add(canonical_json(work.get_nowait()))
    return acknowledged, failed


def run_load(
    workdir: Path,
    *,
    senders: int = 20,
    events: int = 2000,
    kill_after: int | None = None,
    time_limit: float = 300.0,
    secret: str | None = None,
    log_name: str = "receiver.log",
) -> tuple[LoadReport, str]:
    """One load run (see the module docstring): the report, and everything the receiver
    printed (its log goes to ``log_name`` in ``workdir`` too)."""
    secret = secret or "whsec-load-" + uuid.uuid4().hex
    inbox = workdir / "inbox.sqlite"
    payloads = make_events(events)
    report = LoadReport(senders=senders, events=events, killed_after=kill_after)
    printed: list[str] = []
    deadline = time.monotonic() + time_limit
    with open(workdir / log_name, "a", encoding="utf-8") as log:
        receiver = ReceiverProcess(inbox, secret, log)
        killer = None
        try:
            if kill_after is not None:
                reached = threading.Event()

                def kill_when_reached() -> None:
                    if reached.wait(timeout=time_limit):
                        receiver.kill9()

                killer = threading.Thread(target=kill_when_reached, daemon=True)
                killer.start()
            else:
                reached = None
            started = time.perf_counter()
            acknowledged, failed = _send_all(
                receiver.base_url, secret, payloads, senders, deadline, reached, kill_after
            )
            report.seconds = time.perf_counter() - started
            report.acknowledged = len(acknowledged)
            report.latencies_ms = list(acknowledged.values())
            if killer is not None:
                killer.join(timeout=60)
                receiver.stop()
                printed.extend(receiver.output_lines)
                receiver = ReceiverProcess(inbox, secret, log)  # restart on the same inbox
                stored = set(InboxReader(inbox).bodies())
                report.survived_kill = len(set(acknowledged) & stored)
                report.lost_in_kill = len(set(acknowledged) - stored)
                report.stored_unacknowledged = len(stored - set(acknowledged))
                resend = [e for e in payloads if canonical_json(e) in failed]
                report.resent = len(resend)
                again, still_failed = _send_all(
                    receiver.base_url, secret, resend, senders, deadline + time_limit
                )
                acknowledged.update(again)
                report.complete_after_resend = not still_failed
        finally:
            receiver.stop()
            printed.extend(receiver.output_lines)
    bodies = InboxReader(inbox).bodies()
    sent = {canonical_json(e) for e in payloads}
    report.inbox_rows = len(bodies)
    report.duplicate_rows = len(bodies) - len(set(bodies))
    report.missing_acknowledged = len(set(acknowledged) - set(bodies))
    report.never_sent = len(set(bodies) - sent)
    if kill_after is not None and report.complete_after_resend:
        report.complete_after_resend = set(bodies) == sent and report.duplicate_rows == 0
    output = "".join(printed) + (workdir / log_name).read_text(encoding="utf-8")
    return report, output
