"""``salesexec``: check the credentials and list the account's lead types.

The connector's credential pane and its "Lead Type UID" menu, on the command line:

    salesexec check         # logs in; exit 0 when the credentials work
    salesexec lead-types    # UID and name of every lead type (for SALESEXEC_LEAD_TYPE_UIDS)
    salesexec probe         # each endpoint once: status, TotalCount, latency, field names
    salesexec contract diff # the API's Swagger document against the contract in effect
    salesexec reset-source --schema X  # forget the source a warehouse schema recorded

It reads the same ``SALESEXEC_*`` variables as the pipeline; without credentials it
answers from the embedded sandbox, and says so.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from salesexec_assets import contract_command, probe, reset_source_command
from salesexec_assets.api import contract
from salesexec_assets.api.client import RetrySettings, SalesExecClient
from salesexec_assets.api.errors import SalesExecError
from salesexec_assets.settings import (
    PASSWORD_VAR,
    USERNAME_VAR,
    SettingsError,
    load_settings,
)

CLI_RETRY = RetrySettings(max_attempts=4, max_total_wait_seconds=30)


@contextmanager
def account_client() -> Iterator[tuple[SalesExecClient, bool]]:
    """A client for the configured account, or for a sandbox started for this command."""
    settings = load_settings()
    if not settings.uses_embedded_sandbox:
        base_url = settings.base_url or contract.DEFAULT_BASE_URL
        with SalesExecClient(
            base_url, os.environ[USERNAME_VAR], os.environ[PASSWORD_VAR], retry=CLI_RETRY
        ) as client:
            yield client, False
        return
    from salesexec_assets.sandbox import SandboxConfig, run_sandbox

    config = SandboxConfig()
    with (
        run_sandbox(config, contract_overrides=contract.effective()) as server,
        SalesExecClient(
            server.base_url, config.username, config.password, retry=CLI_RETRY
        ) as client,
    ):
        yield client, True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="salesexec", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="log in with SALESEXEC_USERNAME/SALESEXEC_PASSWORD")
    commands.add_parser("lead-types", help="list the account's lead types (UID and name)")
    commands.add_parser("probe", help="call each endpoint once: status, TotalCount, field names")
    contract_command.add_parser(commands)
    reset_source_command.add_parser(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "contract":
        return contract_command.main(args, account_client)
    if args.command == reset_source_command.COMMAND:
        return reset_source_command.main(args)
    try:
        with account_client() as (client, sandbox):
            if sandbox:
                print("(no SalesExec credentials set: answering from the embedded sandbox)")
            if args.command == "probe":
                return probe.main(client, load_settings().lead_type_uids)
            if args.command == "check":
                client.authenticate()
                print(f"OK: logged in to {client.base_url} as {client.username!r}")
            else:
                print(f"{'UID':>6}  NAME")
                for lead_type in client.lead_types():
                    uid = lead_type.get(contract.LEAD_TYPE_UID)
                    print(f"{uid:>6}  {lead_type.get(contract.LEAD_TYPE_NAME, '')}")
    except (SettingsError, SalesExecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
