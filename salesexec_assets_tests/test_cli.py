"""`salesexec check` and `salesexec lead-types`: the connector's credential pane and menu."""

import os
import subprocess
import sys
from pathlib import Path

from salesexec_assets.sandbox import SandboxServer
from salesexec_assets_tests.conftest import SANDBOX_PASSWORD, salesexec_environment


def salesexec(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SALESEXEC_")}
    return subprocess.run(
        [sys.executable, "-m", "salesexec_assets.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lead_types_lists_uid_and_name_of_every_lead_type(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    done = salesexec("lead-types", env=salesexec_environment(sandbox, tmp_path / "w.duckdb"))
    assert done.returncode == 0, done.stderr
    for lead_type in sandbox.data.lead_types():
        assert f"{lead_type['LeadTypeUID']:>6}  {lead_type['Name']}" in done.stdout
    assert SANDBOX_PASSWORD not in done.stdout + done.stderr


def test_check_says_the_credentials_work(sandbox: SandboxServer, tmp_path: Path) -> None:
    done = salesexec("check", env=salesexec_environment(sandbox, tmp_path / "w.duckdb"))
    assert done.returncode == 0, done.stderr
    assert "OK: logged in" in done.stdout and "'sandbox'" in done.stdout


def test_check_with_a_wrong_password_fails_clearly_without_printing_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = salesexec_environment(sandbox, tmp_path / "w.duckdb")
    env["SALESEXEC_PASSWORD"] = "wrong-pw-never-printed"
    done = salesexec("check", env=env)
    assert done.returncode == 1
    assert "bad credentials for user 'sandbox'" in done.stderr
    assert "wrong-pw-never-printed" not in done.stdout + done.stderr


def test_without_credentials_it_answers_from_the_embedded_sandbox_and_says_so() -> None:
    done = salesexec("lead-types", env={})
    assert done.returncode == 0, done.stderr
    assert "embedded sandbox" in done.stdout
    assert "Mortgage" in done.stdout


def test_a_malformed_setting_is_a_clear_error() -> None:
    done = salesexec("check", env={"SALESEXEC_TIMEZONE": "Mars/Olympus"})
    assert done.returncode == 1
    assert "SALESEXEC_TIMEZONE" in done.stderr
