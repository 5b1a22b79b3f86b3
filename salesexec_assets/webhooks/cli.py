"""``salesexec webhooks serve|subscribe|list|delete``: the receiver, and the account's
webhook subscriptions.

    salesexec webhooks serve [--host 127.0.0.1] [--port 8787]
    salesexec webhooks subscribe --url https://hooks.example.com   # + /webhooks/salesexec/<secret>
    salesexec webhooks list
    salesexec webhooks delete ID

The secret comes from ``SALESEXEC_WEBHOOK_SECRET`` only (never from the command line, which
shell history and ``ps`` would keep), and every URL printed has it replaced by ``***``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from salesexec_assets.webhooks.inbox import inbox_path
from salesexec_assets.webhooks.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SecretError,
    load_secret,
)

COMMAND = "webhooks"


def add_webhook_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``salesexec webhooks ...`` on the main parser's subcommands."""
    parser = commands.add_parser(COMMAND, help="receive SalesExec webhooks; manage subscriptions")
    actions = parser.add_subparsers(dest="webhooks_command", required=True)
    serve = actions.add_parser("serve", help="run the receiver (needs SALESEXEC_WEBHOOK_SECRET)")
    serve.add_argument("--host", default=DEFAULT_HOST, help="default: loopback only")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: a free port")
    subscribe = actions.add_parser("subscribe", help="subscribe the receiver to the account")
    subscribe.add_argument(
        "--url", required=True, help="the receiver's public base URL (https://...)"
    )
    actions.add_parser("list", help="list the account's webhook subscriptions")
    delete = actions.add_parser("delete", help="delete a webhook subscription")
    delete.add_argument("id", help="the subscription's id (see list)")


def run_webhook_command(args: argparse.Namespace) -> int:
    """Run ``salesexec webhooks ...``; returns the exit code."""
    try:
        secret = load_secret()
    except SecretError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.webhooks_command == "serve":
        from salesexec_assets.webhooks.receiver import serve_forever  # the web server

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        serve_forever(inbox_path(), secret, args.host, args.port)
        return 0
    from salesexec_assets.webhooks.subscriptions import run_subscription_command

    return run_subscription_command(args, secret)
