"""The receiver under load from concurrent senders, and killed with SIGKILL mid-load
(small scale here; ``scripts/webhook_load.py`` takes the full scale as arguments)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from salesexec_assets_tests.webhook_load import run_load

SENDERS = int(os.environ.get("SALESEXEC_WEBHOOK_LOAD_SENDERS", "20"))
EVENTS = int(os.environ.get("SALESEXEC_WEBHOOK_LOAD_EVENTS", "1500"))


def test_every_acknowledged_event_is_in_the_inbox_exactly_once_under_load(
    tmp_path: Path,
) -> None:
    secret = "whsec-load-canary-" + uuid.uuid4().hex
    report, output = run_load(tmp_path, senders=SENDERS, events=EVENTS, secret=secret)
    print(report.summary())
    assert report.acknowledged == EVENTS
    assert report.ok, report.summary()
    assert report.inbox_rows == EVENTS
    assert secret not in output and secret not in report.summary()
    assert "POST /webhooks/salesexec/*** 202" in output  # the access log, redacted


def test_a_receiver_killed_mid_load_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    secret = "whsec-kill-canary-" + uuid.uuid4().hex
    kill_after = EVENTS // 3
    report, output = run_load(
        tmp_path, senders=SENDERS, events=EVENTS, kill_after=kill_after, secret=secret
    )
    print(report.summary())
    assert kill_after <= report.acknowledged < EVENTS  # the kill cut the load short
    assert report.survived_kill == report.acknowledged  # every 202 before the kill is stored
    assert report.lost_in_kill == 0, report.summary()
    assert report.complete_after_resend and report.ok, report.summary()
    assert secret not in output
