"""``salesexec webhooks subscribe|list|delete`` against the sandbox's subscription endpoint
(real HTTP on loopback), and the secret never printed."""

from __future__ import annotations

import uuid

import pytest
import requests

from salesexec_assets.api import contract
from salesexec_assets.cli import main
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.webhooks.settings import SECRET_VAR, WEBHOOK_PATH
from salesexec_assets_tests.conftest import PointEnv

SECRET = "whsec-sub-canary-" + uuid.uuid4().hex


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["webhooks", *argv])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert SECRET not in output
    return code, output


def test_subscribe_list_and_delete_through_the_api_without_printing_the_secret(
    sandbox: SandboxServer,
    point_env_at: PointEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_env_at(sandbox)
    monkeypatch.setenv(SECRET_VAR, SECRET)
    code, output = run(capsys, "subscribe", "--url", "https://hooks.example.com/")
    assert code == 0, output
    assert f"https://hooks.example.com{WEBHOOK_PATH}/***" in output
    (subscription,) = sandbox.webhooks.subscriptions()
    assert subscription.url == f"https://hooks.example.com{WEBHOOK_PATH}/{SECRET}"
    assert subscription.types == (100, 101, 102, 103)

    code, output = run(capsys, "subscribe", "--url", "https://hooks.example.com")
    assert code == 0 and "already subscribed" in output
    assert len(sandbox.webhooks.subscriptions()) == 1

    code, output = run(capsys, "list")
    assert code == 0 and f"{subscription.id}  https://hooks.example.com{WEBHOOK_PATH}/***" in output

    code, output = run(capsys, "delete", str(subscription.id))
    assert code == 0 and sandbox.webhooks.subscriptions() == []
    code, output = run(capsys, "delete", str(subscription.id))
    assert code == 1 and "404" in output


def test_subscription_commands_refuse_to_run_without_the_secret(
    sandbox: SandboxServer,
    point_env_at: PointEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_env_at(sandbox)
    monkeypatch.delenv(SECRET_VAR, raising=False)
    code, output = run(capsys, "subscribe", "--url", "https://hooks.example.com")
    assert code == 2 and SECRET_VAR in output
    assert sandbox.webhooks.subscriptions() == []


def test_the_subscription_endpoint_needs_a_token(sandbox: SandboxServer) -> None:
    answer = requests.get(sandbox.base_url + contract.WEBHOOK_SUBSCRIPTIONS_PATH, timeout=30)
    assert answer.status_code == 401
