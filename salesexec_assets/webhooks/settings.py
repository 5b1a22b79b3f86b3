"""The receiver's settings: its route, its default address, and the shared secret.

Kept apart from the receiver so that commands which only need the secret (``salesexec
webhooks subscribe``) do not load the web server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_VAR = "SALESEXEC_WEBHOOK_SECRET"
SECRET_HEADER = "X-Webhook-Secret"
WEBHOOK_PATH = "/webhooks/salesexec"
MIN_SECRET_LENGTH = 16
DEFAULT_HOST = "127.0.0.1"  # loopback: expose it through TLS termination, never directly
DEFAULT_PORT = 8787

_SECRET_IN_PATH = re.compile(rf"^({re.escape(WEBHOOK_PATH)}/)[^/?]*")


class SecretError(RuntimeError):
    """The webhook secret is missing or too weak to stand alone as authentication."""


def load_secret(environ: Mapping[str, str] | None = None) -> str:
    """``SALESEXEC_WEBHOOK_SECRET``, at least 16 characters; the message never holds it."""
    env = os.environ if environ is None else environ
    secret = env.get(SECRET_VAR, "").strip()
    if not secret:
        raise SecretError(
            f"{SECRET_VAR} is not set: the receiver refuses to start without the shared "
            "secret that authenticates deliveries (e.g. export "
            f"{SECRET_VAR}=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\")"
        )
    if len(secret) < MIN_SECRET_LENGTH or "/" in secret:
        raise SecretError(
            f"{SECRET_VAR} must be at least {MIN_SECRET_LENGTH} characters without '/' "
            f"(it has {len(secret)}): it is the only authentication of a delivery"
        )
    return secret


def redact_path(path: str) -> str:
    """The request path as it may be logged: the secret segment becomes ``***``."""
    return _SECRET_IN_PATH.sub(r"\1***", path)
