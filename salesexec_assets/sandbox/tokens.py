"""Auth tokens: issued at login, counted at every use, dead after their last use.

Counting uses (not only time) lets the token-expiry fault make a token die in the
middle of a paged read, which is what a client's re-login logic must survive.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

TOKEN_LIFETIME = timedelta(hours=24)


class TokenState(Enum):
    """What a presented token turned out to be."""

    LIVE = "live"
    UNKNOWN = "unknown"  # missing, malformed or never issued
    EXPIRED = "expired"  # issued, but used up or past its ExpiresUtc


@dataclass
class _Token:
    expires: datetime
    uses: int = 0


class TokenStore:
    """The tokens issued by one server; thread-safe."""

    def __init__(self, lifetime: timedelta = TOKEN_LIFETIME) -> None:
        self._lifetime = lifetime
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def issue(self, now: datetime) -> tuple[str, datetime]:
        """A new token (a random uuid4) and when it expires."""
        token = str(uuid.uuid4())
        expires = now + self._lifetime
        with self._lock:
            self._tokens[token] = _Token(expires)
        return token, expires

    def issued(self) -> tuple[str, ...]:
        """Every token issued so far, live or not: tests search their output for them."""
        with self._lock:
            return tuple(self._tokens)

    def use(self, token: str | None, max_uses: int | None, now: datetime) -> TokenState:
        """Spend one use of ``token``; ``max_uses`` is the token-expiry fault's limit."""
        if not token:
            return TokenState.UNKNOWN
        with self._lock:
            entry = self._tokens.get(token.strip())
            if entry is None:
                return TokenState.UNKNOWN
            if now >= entry.expires or (max_uses is not None and entry.uses >= max_uses):
                return TokenState.EXPIRED
            entry.uses += 1
        return TokenState.LIVE
