"""Webhook notifications, with the URL's secret never written to a log.

Webhook URLs carry their credential in the path or query (``https://hooks.slack.com/
services/T000/B000/XXXX``). Anything that may reach a log (our messages, and the
exceptions ``requests`` raises, which quote the URL) therefore shows only
``scheme://host/…``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

TIMEOUT_SECONDS = (5.0, 10.0)  # connect, read
_LOGGER = logging.getLogger(__name__)


class NotificationError(RuntimeError):
    """A webhook could not be reached or refused the message; the text is redacted."""


def redact_url(url: str) -> str:
    """``https://user:pw@hooks.example.com:8443/T0/B0/secret?x=1`` -> ``https://hooks.example.com:8443/…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparseable URL)"
    scheme = parts.scheme or "?"
    return f"{scheme}://{host}{port}/…"


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    logger: logging.Logger | None = None,
    session: requests.Session | None = None,
) -> int:
    """POST ``payload`` as JSON; return the HTTP status, or raise a redacted error."""
    log = logger or _LOGGER
    shown = redact_url(url)
    poster = session or requests
    try:
        response = poster.post(url, json=dict(payload), timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        # the exception's text quotes the full URL: replace it, and drop the chain
        raise NotificationError(
            f"webhook {shown} could not be reached ({type(error).__name__})"
        ) from None
    if response.status_code >= 400:
        raise NotificationError(f"webhook {shown} answered HTTP {response.status_code}")
    log.info("notification posted to %s (HTTP %d)", shown, response.status_code)
    return response.status_code
