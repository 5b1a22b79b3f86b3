"""The webhook receiver, served by real uvicorn on a free loopback port, writing a real
SQLite inbox: every bad input gets its status and stores exactly what the rules say."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from salesexec_assets.api import contract
from salesexec_assets.webhooks.inbox import INBOX_VAR, InboxReader
from salesexec_assets.webhooks.payloads import MAX_BODY_BYTES
from salesexec_assets.webhooks.receiver import RunningReceiver, run_receiver
from salesexec_assets.webhooks.settings import SECRET_HEADER, SECRET_VAR, WEBHOOK_PATH

SECRET = "whsec-canary-" + uuid.uuid4().hex  # distinctive: a leak is found by search
REPO_ROOT = Path(__file__).resolve().parents[1]


def created(guid: str | None = None, instant: str = "2026-11-20T10:00:00.1234567Z") -> dict:
    return {
        contract.WEBHOOK_TYPE_FIELDS[0]: 100,
        contract.WEBHOOK_ACCOUNT_GUID: str(uuid.uuid4()),
        contract.WEBHOOK_LEAD_GUID: guid or str(uuid.uuid4()),
        contract.WEBHOOK_LEAD_TYPE_GUID: str(uuid.uuid4()),
        "LeadCreatedUtc": instant,
    }


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningReceiver]:
    inbox = tmp_path_factory.mktemp("inbox") / "webhooks.sqlite"
    with run_receiver(inbox, SECRET, header_timeout=1.0, body_timeout=1.0) as running:
        yield running


def kinds(receiver: RunningReceiver) -> list[str]:
    return [event.kind for event in InboxReader(receiver.writer.path).events_after(0)]


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


OVERSIZED = body_of([created() for _ in range(MAX_BODY_BYTES // 150)])
assert len(OVERSIZED) > MAX_BODY_BYTES

# case -> (path suffix, headers, body, status, kinds stored)
BAD_INPUT_TABLE: dict[str, tuple[str, dict[str, str], bytes, int, list[str]]] = {
    "wrong secret": ("/" + "x" * len(SECRET), {}, body_of(created()), 401, []),
    "no secret": ("", {}, body_of(created()), 401, []),
    "wrong header secret": ("", {SECRET_HEADER: SECRET[:-1] + "?"}, body_of(created()), 401, []),
    "not JSON": ("/" + SECRET, {}, b"LeadGuid=1&x=2", 400, []),
    "oversized": ("/" + SECRET, {}, OVERSIZED, 413, []),
    "a JSON scalar": ("/" + SECRET, {}, b"42", 400, []),
    "an array holding a scalar": ("/" + SECRET, {}, body_of([created(), 1]), 400, []),
    "an empty array": ("/" + SECRET, {}, b"[]", 400, []),
    "an empty body": ("/" + SECRET, {}, b"", 400, []),
    "nested too deeply": ("/" + SECRET, {}, b"[" * 100_000 + b"]" * 100_000, 400, []),
    "an object nested too deeply": (
        "/" + SECRET,
        {},
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
        400,
        [],
    ),
    "a known type with a bad timestamp": (
        "/" + SECRET,
        {},
        body_of(created(instant="2026-13-45T99:00:00Z")),
        202,
        ["unknown"],
    ),
    "a known type with a bad LeadGuid": (
        "/" + SECRET,
        {},
        body_of(created(guid="not-a-guid")),
        202,
        ["unknown"],
    ),
    "an unknown type": ("/" + SECRET, {}, body_of({"WebHookType": 999, "X": 1}), 202, ["unknown"]),
    "an unknown shape": ("/" + SECRET, {}, body_of({"Hello": "world"}), 202, ["unknown"]),
    "a valid event, secret in the path": ("/" + SECRET, {}, body_of(created()), 202, ["100"]),
    "a valid event, secret in the header": (
        "",
        {SECRET_HEADER: SECRET},
        body_of(created()),
        202,
        ["100"],
    ),
    "an array of three": (
        "/" + SECRET,
        {},
        body_of([created() for _ in range(3)]),
        202,
        ["100"] * 3,
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT_TABLE))
def test_each_input_gets_its_status_and_stores_exactly_what_the_rules_say(
    receiver: RunningReceiver, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    suffix, headers, body, status, stored = BAD_INPUT_TABLE[case]
    before = kinds(receiver)
    caplog.set_level(logging.INFO)
    response = requests.post(
        receiver.base_url + WEBHOOK_PATH + suffix,
        data=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert kinds(receiver)[len(before) :] == stored
    if status == 401:
        assert response.json() == {"error": "unauthorized"}  # no hint which part was wrong
    assert SECRET not in response.text
    assert SECRET not in caplog.text


def test_an_oversized_body_without_content_length_is_refused_while_streaming(
    receiver: RunningReceiver,
) -> None:
    before = kinds(receiver)
    chunks = (OVERSIZED[i : i + 8192] for i in range(0, len(OVERSIZED), 8192))
    response = requests.post(f"{receiver.base_url}{WEBHOOK_PATH}/{SECRET}", data=chunks, timeout=30)
    assert response.status_code == 413
    assert kinds(receiver) == before


def test_a_redelivered_event_is_stored_once_and_counted_as_a_duplicate(
    receiver: RunningReceiver,
) -> None:
    event = created()
    url = f"{receiver.base_url}{WEBHOOK_PATH}/{SECRET}"
    first = requests.post(url, json=event, timeout=30).json()
    # the same event again, alone and inside a batch with a new one, keys in another order
    again = requests.post(url, json=dict(reversed(list(event.items()))), timeout=30).json()
    batch = requests.post(url, json=[event, created()], timeout=30).json()
    assert first == {"stored": 1, "duplicates": 0, "unknown": 0}
    assert again == {"stored": 0, "duplicates": 1, "unknown": 0}
    assert batch == {"stored": 1, "duplicates": 1, "unknown": 0}
    bodies = InboxReader(receiver.writer.path).bodies()
    assert sum(json.loads(body) == event for body in bodies) == 1


def test_the_access_log_shows_the_route_with_the_secret_redacted(
    receiver: RunningReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    requests.post(f"{receiver.base_url}{WEBHOOK_PATH}/{SECRET}", json=created(), timeout=30)
    deadline = time.monotonic() + 10  # the line is written just after the answer is sent
    while f"POST {WEBHOOK_PATH}/*** 202" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert f"POST {WEBHOOK_PATH}/*** 202" in caplog.text
    assert SECRET not in caplog.text


def test_healthz_answers_without_a_secret(receiver: RunningReceiver) -> None:
    response = requests.get(receiver.base_url + "/healthz", timeout=30)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_a_client_that_stalls_before_its_headers_is_disconnected(
    receiver: RunningReceiver,
) -> None:
    with socket.create_connection((receiver.host, receiver.port), timeout=30) as sock:
        sock.sendall(b"POST /webhooks/salesexec HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = time.monotonic()
        assert sock.recv(1024) == b""  # the server closed the connection
    assert time.monotonic() - started < 20


def test_a_kept_alive_connection_outlives_the_header_deadline_between_requests(
    receiver: RunningReceiver,
) -> None:
    def request() -> bytes:
        body = json.dumps(created()).encode()
        head = (
            f"POST {WEBHOOK_PATH}/{SECRET} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    with socket.create_connection((receiver.host, receiver.port), timeout=30) as sock:
        sock.sendall(request())
        assert sock.recv(4096).startswith(b"HTTP/1.1 202")
        time.sleep(1.5)  # longer than the header deadline (1 s), shorter than keep-alive (5 s)
        sock.sendall(request())
        assert sock.recv(4096).startswith(b"HTTP/1.1 202")


def test_a_body_that_stalls_gets_408_and_stores_nothing(receiver: RunningReceiver) -> None:
    before = kinds(receiver)
    with socket.create_connection((receiver.host, receiver.port), timeout=30) as sock:
        head = (
            f"POST {WEBHOOK_PATH}/{SECRET} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"WebHookType": 100, ')  # the rest never comes
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert kinds(receiver) == before


def test_serve_refuses_to_start_without_the_secret_and_names_the_variable(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != SECRET_VAR}
    env.update(PYTHONPATH=str(REPO_ROOT), **{INBOX_VAR: str(tmp_path / "inbox.sqlite")})
    result = subprocess.run(
        [sys.executable, "-m", "salesexec_assets.cli", "webhooks", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert SECRET_VAR in result.stderr
    assert not (tmp_path / "inbox.sqlite").exists()


def test_serve_binds_loopback_by_default_and_never_prints_the_secret(tmp_path: Path) -> None:
    env = {**os.environ, SECRET_VAR: SECRET, INBOX_VAR: str(tmp_path / "inbox.sqlite")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "salesexec_assets.cli", "webhooks", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("salesexec webhooks: listening on http://127.0.0.1:"), line
        base_url = line.split("listening on ")[1].split(WEBHOOK_PATH)[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.post(
                    f"{base_url}{WEBHOOK_PATH}/{SECRET}", json=created(), timeout=5
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 202
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert f"POST {WEBHOOK_PATH}/*** 202" in output
    assert SECRET not in line + output
