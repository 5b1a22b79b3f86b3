"""``salesexec``: check the credentials and list the account's lead types.

The connector's credential pane and its "Lead Type UID" menu, on the command line:

    salesexec check         # logs in; exit 0 when the credentials work
    salesexec lead-types    # UID and name of every lead type (for SALESEXEC_LEAD_TYPE_UIDS)
    salesexec probe         # each endpoint once: status, TotalCount, latency, field names
    salesexec contract diff # the API's Swagger document against the contract in effect
    salesexec reset-source --schema X  # forget the source a warehouse schema recorded

It reads the same ``SALESEXEC_*`` variables as the pipeline, and a ``.env`` file in the
working directory as Dagster does (its values win over the shell's). Without credentials
it refuses, so that it never answers for the sandbox when the account was meant:
``--sandbox`` (or ``SALESEXEC_BASE_URL=sandbox``) asks the embedded sandbox instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from dotenv import dotenv_values

from salesexec_assets import contract_command, probe, reset_source_command
from salesexec_assets.api import contract
from salesexec_assets.api.client import RetrySettings, SalesExecClient
from salesexec_assets.api.errors import SalesExecError
from salesexec_assets.settings import (
    BASE_URL_VAR,
    PASSWORD_VAR,
    SANDBOX,
    USERNAME_VAR,
    SettingsError,
    load_settings,
)
from salesexec_assets.webhooks.cli import COMMAND as WEBHOOKS_COMMAND
from salesexec_assets.webhooks.cli import add_webhook_commands, run_webhook_command

CLI_RETRY = RetrySettings(max_attempts=4, max_total_wait_seconds=30)
ENV_FILE = ".env"


def read_env_file(directory: Path) -> dict[str, str]:
    """``directory/.env`` put into ``os.environ``, its values winning over the shell's, as
    ``dagster dev`` and ``dagster asset materialize`` do. Returns what it set."""
    path = directory / ENV_FILE
    if not path.is_file():
        return {}
    values = {name: value for name, value in dotenv_values(path).items() if value is not None}
    os.environ.update(values)
    return values


class NoCredentials(SettingsError):
    """No credentials and no explicit request for the sandbox."""


@contextmanager
def account_client(allow_sandbox: bool) -> Iterator[tuple[SalesExecClient, str | None]]:
    """A client for the configured account, or for a sandbox started for this command;
    the second value says why the sandbox answers (None: the account does)."""
    settings = load_settings()
    if settings.base_url == SANDBOX:
        why = f"{BASE_URL_VAR}=sandbox: answering from the embedded sandbox"
        if settings.has_credentials:
            why += f" ({USERNAME_VAR}/{PASSWORD_VAR} are not used)"
    elif not settings.has_credentials and allow_sandbox:
        why = "--sandbox: answering from the embedded sandbox"
    elif not settings.has_credentials:
        raise NoCredentials(
            f"no SalesExec credentials set: set {USERNAME_VAR} and {PASSWORD_VAR} (in the "
            f"environment or in {ENV_FILE}), or pass --sandbox to ask the embedded sandbox"
        )
    else:
        base_url = settings.base_url or contract.DEFAULT_BASE_URL
        with SalesExecClient(
            base_url, os.environ[USERNAME_VAR], os.environ[PASSWORD_VAR], retry=CLI_RETRY
        ) as client:
            yield client, None
        return
    from salesexec_assets.sandbox import SandboxConfig, run_sandbox

    config = SandboxConfig()
    with (
        run_sandbox(config, contract_overrides=contract.effective()) as server,
        SalesExecClient(
            server.base_url, config.username, config.password, retry=CLI_RETRY
        ) as client,
    ):
        yield client, why


def add_sandbox_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--sandbox",
        action="store_true",
        help="without credentials, ask the embedded sandbox (generated demo data)",
    )


def answer(command: str, client: SalesExecClient) -> list[str]:
    """The command's output lines; nothing is printed until they are all known."""
    if command == "check":
        client.authenticate()
        return [f"OK: logged in to {client.base_url} as {client.username!r}"]
    lines = [f"{'UID':>6}  NAME"]
    for lead_type in client.lead_types():
        uid = lead_type.get(contract.LEAD_TYPE_UID)
        lines.append(f"{uid:>6}  {lead_type.get(contract.LEAD_TYPE_NAME, '')}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="salesexec", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("check", "log in with SALESEXEC_USERNAME/SALESEXEC_PASSWORD"),
        ("lead-types", "list the account's lead types (UID and name)"),
        ("probe", "call each endpoint once: status, TotalCount, latency, field names"),
    ):
        add_sandbox_flag(commands.add_parser(name, help=help_text))
    contract_command.add_parser(commands, add_sandbox_flag)
    reset_source_command.add_parser(commands)
    add_webhook_commands(commands)
    args = parser.parse_args(argv)
    read_env_file(Path.cwd())
    if args.command == WEBHOOKS_COMMAND:
        return run_webhook_command(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "contract":
        return contract_command.main(args, partial(account_client, args.sandbox))
    if args.command == reset_source_command.COMMAND:
        return reset_source_command.main(args)
    try:
        with account_client(args.sandbox) as (client, sandbox_reason):
            if args.command == "probe":
                if sandbox_reason:
                    print(f"({sandbox_reason}, not a SalesExec account)")
                return probe.main(client, load_settings().lead_type_uids)
            lines = answer(args.command, client)
    except (SettingsError, SalesExecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if sandbox_reason:
        print(f"({sandbox_reason}, not a SalesExec account)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
