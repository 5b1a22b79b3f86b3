"""`salesexec check` and `salesexec lead-types`: the connector's credential pane and menu."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from salesexec_assets.sandbox import SandboxServer
from salesexec_assets_tests.conftest import SANDBOX_PASSWORD, salesexec_environment


def salesexec(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The command in ``cwd`` (default: an empty directory, so no ``.env`` of the
    repository is read), with no ``SALESEXEC_*`` variable but those of ``env``."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SALESEXEC_")}
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run(
            [sys.executable, "-m", "salesexec_assets.cli", *args],
            env={**clean, **env},
            cwd=cwd or empty,
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


@pytest.mark.parametrize("command", ["check", "lead-types"])
def test_a_wrong_password_fails_clearly_printing_nothing_before_nor_the_password(
    sandbox: SandboxServer, tmp_path: Path, command: str
) -> None:
    """No "OK", and no table header of ``lead-types`` before the login error."""
    env = salesexec_environment(sandbox, tmp_path / "w.duckdb")
    env["SALESEXEC_PASSWORD"] = "wrong-pw-never-printed"
    done = salesexec(command, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "bad credentials for user 'sandbox'" in done.stderr
    assert "wrong-pw-never-printed" not in done.stdout + done.stderr


def test_without_credentials_check_and_lead_types_refuse_and_say_no_credentials_are_set() -> None:
    for command in ("check", "lead-types"):
        done = salesexec(command, env={})
        assert done.returncode == 1, command
        assert done.stdout == "", command  # no "OK", no sandbox lead types
        assert "no SalesExec credentials set" in done.stderr
        assert "SALESEXEC_USERNAME" in done.stderr and "--sandbox" in done.stderr


def test_with_the_sandbox_flag_it_answers_from_the_embedded_sandbox_and_says_so() -> None:
    done = salesexec("lead-types", "--sandbox", env={})
    assert done.returncode == 0, done.stderr
    assert "embedded sandbox" in done.stdout and "not a SalesExec account" in done.stdout
    assert "Mortgage" in done.stdout
    checked = salesexec("check", "--sandbox", env={})
    assert checked.returncode == 0, checked.stderr
    assert "embedded sandbox" in checked.stdout and "OK: logged in" in checked.stdout


def test_check_reads_the_dotenv_file_whose_values_win_over_the_shell(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A ``.env`` holding a wrong password: the check fails (it does not answer from the
    sandbox, nor with the shell's right password), as ``dagster dev`` would use it."""
    env = salesexec_environment(sandbox, tmp_path / "w.duckdb")
    dotenv = {**env, "SALESEXEC_PASSWORD": "wrong-pw-in-dotenv"}
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in dotenv.items()))
    done = salesexec("check", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "bad credentials for user 'sandbox'" in done.stderr
    assert "OK" not in done.stdout
    assert "wrong-pw-in-dotenv" not in done.stdout + done.stderr
    alone = salesexec("check", env={}, cwd=tmp_path)  # credentials from .env only
    assert alone.returncode == 1 and "bad credentials for user 'sandbox'" in alone.stderr


def test_base_url_sandbox_with_credentials_says_the_credentials_are_not_used() -> None:
    env = {
        "SALESEXEC_BASE_URL": "sandbox",
        "SALESEXEC_USERNAME": "someone",
        "SALESEXEC_PASSWORD": "pw-not-used",
    }
    done = salesexec("check", env=env)
    assert done.returncode == 0, done.stderr
    assert "SALESEXEC_BASE_URL=sandbox" in done.stdout
    assert "are not used" in done.stdout
    assert "no SalesExec credentials set" not in done.stdout + done.stderr


def test_a_malformed_setting_is_a_clear_error() -> None:
    done = salesexec("check", env={"SALESEXEC_TIMEZONE": "Mars/Olympus"})
    assert done.returncode == 1
    assert "SALESEXEC_TIMEZONE" in done.stderr
