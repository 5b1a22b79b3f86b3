"""The sandbox's webhooks: subscriptions, lead events, and deliveries with their faults.

SalesExec pushes a webhook to every subscriber when a lead is created, returned, changed
or changes status. The sandbox does the same: a change made through
:meth:`SandboxWebhooks.lead_event` (or its test endpoint ``POST /_sandbox/lead-events``)
changes the sandbox's data, hence its ground truth, and queues the public payload for each
subscription. A background thread delivers each payload as its own ``POST`` with a
timeout and a few retries, as ClickPoint documents for its sister product. Switchable
faults (:class:`WebhookFaults`) lose, duplicate and reorder deliveries, so the receiver,
its inbox and the sensor can be tested against what a real sender does.

The subscription endpoint (``contract.WEBHOOK_SUBSCRIPTIONS_PATH``) is an assumption, as
in the contract module.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from salesexec_assets.api import contract

LEAD_EVENTS_PATH = "/_sandbox/lead-events"  # the sandbox's own test endpoint, not the API's
SANDBOX_ACCOUNT_GUID = "5a1d0c3e-7b2f-4e8a-9c6d-1f0e2d3c4b5a"
RETURNED_STATUS = "Returned"
DELIVERY_TIMEOUT_SECONDS = 30.0


def format_webhook_instant(instant: datetime) -> str:
    """A naive-UTC instant as .NET writes it in webhooks: 7 fractional digits and ``Z``."""
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{instant.microsecond:06d}0Z"


def webhook_payload(number: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """The public payload of webhook type ``number``, its fields taken from ``values``
    (datetimes are written as the API writes them), and the type field."""
    webhook_type = contract.WEBHOOK_TYPES_BY_NUMBER[number]
    payload: dict[str, Any] = {contract.WEBHOOK_TYPE_FIELDS[0]: number}
    for name in webhook_type.fields:
        value = values.get(name)
        payload[name] = format_webhook_instant(value) if isinstance(value, datetime) else value
    return payload
