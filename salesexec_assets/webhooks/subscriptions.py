"""``salesexec webhooks subscribe|list|delete``: the account's webhook subscriptions.

The receiver's URL carries the secret in its path, because SalesExec signs nothing.
``subscribe --url BASE`` therefore appends ``/webhooks/salesexec/<secret>`` itself, from
``SALESEXEC_WEBHOOK_SECRET``, and every URL printed shows ``***`` in its place. Subscribing
a URL that is already subscribed does nothing (the API call may be retried on a
transient error, and a second subscription would deliver every event twice).
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote, urlsplit

from salesexec_assets.api import contract
from salesexec_assets.api.errors import SalesExecError
from salesexec_assets.settings import SettingsError
from salesexec_assets.webhooks.settings import WEBHOOK_PATH, redact_path


def receiver_url(base_url: str, secret: str) -> str:
    """The URL SalesExec posts to: the receiver's base URL, its route, and the secret."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"--url must be an http(s) URL like https://hooks.example.com, not {base_url!r}"
        )
    return f"{base_url.rstrip('/')}{WEBHOOK_PATH}/{quote(secret, safe='')}"


def redact_url(url: str, secret: str) -> str:
    """``url`` fit to print: our secret, and any receiver path secret, become ``***``."""
    parts = urlsplit(url.replace(secret, "***").replace(quote(secret, safe=""), "***"))
    return parts._replace(path=redact_path(parts.path)).geturl()


def _describe(record: dict, secret: str) -> str:
    types = ",".join(str(t) for t in record.get(contract.SUBSCRIPTION_TYPES) or [])
    url = redact_url(str(record.get(contract.SUBSCRIPTION_URL, "")), secret)
    return f"{record.get(contract.SUBSCRIPTION_ID)!s:>6}  {url}  types {types}"


def run_subscription_command(args: argparse.Namespace, secret: str) -> int:
    """``subscribe``, ``list`` or ``delete``; returns the exit code."""
    from salesexec_assets.cli import account_client  # the CLI's client for the account

    try:
        # never the embedded sandbox: its subscriptions would end with this command
        with account_client(False) as (client, sandbox_reason):
            if sandbox_reason:
                print(f"({sandbox_reason}, whose subscriptions end with this command)")
            if args.webhooks_command == "list":
                print(f"{'ID':>6}  URL  TYPES")
                for record in client.webhook_subscriptions():
                    print(_describe(record, secret))
            elif args.webhooks_command == "delete":
                client.delete_webhook_subscription(args.id)
                print(f"deleted subscription {args.id}")
            else:
                url = receiver_url(args.url, secret)
                for record in client.webhook_subscriptions():
                    if record.get(contract.SUBSCRIPTION_URL) == url:
                        print(f"already subscribed: {_describe(record, secret)}")
                        return 0
                types = sorted(contract.WEBHOOK_TYPES_BY_NUMBER)
                record = client.subscribe_webhook(url, types)
                print(f"subscribed: {_describe(record, secret)}")
    except (SettingsError, SalesExecError, ValueError) as error:
        print(f"error: {redact_url(str(error), secret)}", file=sys.stderr)
        return 1
    return 0
