"""Fault injection: rate limits, server errors, latency, cut bodies, offset drift and rows
leaving a window mid-read.

One seeded RNG behind a lock decides every fault, so a run with a single-threaded
client replays exactly; every fault that fires is counted, for test summaries.
"""

from __future__ import annotations

import random
import threading
import time
from email.utils import formatdate

from salesexec_assets.api.contract import RETRY_AFTER_HEADER
from salesexec_assets.sandbox.config import Faults
from salesexec_assets.sandbox.messages import Response, error_response

COUNT_429 = "429"
COUNT_5XX = "5xx"
COUNT_TOKEN_EXPIRED = "token_expired"
COUNT_TRUNCATED = "truncated"
COUNT_DROPPED = "dropped"
COUNT_DELAYED = "delayed"
COUNT_DRIFT_INSERTED = "drift_inserted"
COUNT_ROW_LEFT = "row_left"
FAULT_COUNT_NAMES = (
    COUNT_429,
    COUNT_5XX,
    COUNT_TOKEN_EXPIRED,
    COUNT_TRUNCATED,
    COUNT_DROPPED,
    COUNT_DELAYED,
    COUNT_DRIFT_INSERTED,
    COUNT_ROW_LEFT,
)

SERVER_ERRORS: dict[int, str] = {
    500: "An error has occurred.",
    502: "Bad gateway: the upstream server did not answer correctly.",
    503: "The service is unavailable.",
    504: "Gateway timeout: the upstream server did not answer in time.",
}
RATE_LIMITED_MESSAGE = "Too many requests. Retry after the time given in Retry-After."


class FaultInjector:
    """Decides, per request, which faults strike; thread-safe."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._counts = dict.fromkeys(FAULT_COUNT_NAMES, 0)

    @property
    def faults(self) -> Faults:
        return self._faults

    def update(self, faults: Faults) -> None:
        """Switch to new fault settings (and their seed); counts keep running."""
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)

    def counts(self) -> dict[str, int]:
        """How often each fault fired so far (a snapshot)."""
        with self._lock:
            return dict(self._counts)

    def _strikes(self, share: float) -> bool:
        """Draw whether a fault with this share strikes (the lock is held)."""
        return share > 0 and self._rng.random() < share

    def delay(self) -> None:
        """Sleep for the configured latency."""
        latency_ms = self._faults.latency_ms
        if latency_ms > 0:
            with self._lock:
                self._counts[COUNT_DELAYED] += 1
            time.sleep(latency_ms / 1000)

    def transient_failure(self) -> Response | None:
        """A 429 or a 5xx answer in place of the real one, or None."""
        with self._lock:
            faults = self._faults
            if self._strikes(faults.p429):
                retry_after = self._retry_after(self._counts[COUNT_429], faults)
                self._counts[COUNT_429] += 1
                return error_response(
                    429, RATE_LIMITED_MESSAGE, ((RETRY_AFTER_HEADER, retry_after),)
                )
            if self._strikes(faults.p5xx):
                status = self._rng.choice(tuple(SERVER_ERRORS))
                self._counts[COUNT_5XX] += 1
                return error_response(status, SERVER_ERRORS[status])
        return None

    @staticmethod
    def _retry_after(nth: int, faults: Faults) -> str:
        """Retry-After alternates between delay-seconds and an HTTP date; every 5th is "0".

        Both forms are legal (RFC 9110) and a client must honour both.
        """
        if nth % 5 == 4:
            return "0"
        if nth % 2 == 0:
            return str(faults.retry_after_seconds)
        return formatdate(int(time.time()) + faults.retry_after_seconds, usegmt=True)

    def truncate(self, response: Response) -> Response:
        """A 200 answer, maybe with its body cut short (no longer valid JSON, with a
        matching Content-Length), or its connection dropped mid-body (a Content-Length
        of the whole body, part of it sent, then the connection closed)."""
        if response.status != 200 or len(response.body) < 2:
            return response
        with self._lock:
            if self._strikes(self._faults.ptruncate):
                cut = self._rng.randint(1, len(response.body) - 1)
                self._counts[COUNT_TRUNCATED] += 1
                return response.with_body(response.body[:cut])
            if self._strikes(self._faults.pdrop):
                sent = self._rng.randint(0, len(response.body) - 1)
                self._counts[COUNT_DROPPED] += 1
                return response.dropped_after(sent)
        return response

    def drift(self, skip: int) -> bool:
        """Whether a paged read at offset ``skip`` gets a lead inserted before it."""
        if skip <= 0:
            return False
        with self._lock:
            if not self._strikes(self._faults.pdrift):
                return False
            self._counts[COUNT_DRIFT_INSERTED] += 1
        return True

    def removal(self, skip: int, take: int) -> int | None:
        """For a paged read at ``skip``: the offset of a row that leaves the window first,
        or None. The row is one the first page (offsets below ``take``) already served, so
        a client that does not notice loses the row at its next page boundary."""
        if skip <= 0:
            return None
        with self._lock:
            if not self._strikes(self._faults.premove):
                return None
            return self._rng.randrange(min(skip, take))

    def note_row_left(self) -> None:
        """Count a read during which a row left its window."""
        with self._lock:
            self._counts[COUNT_ROW_LEFT] += 1

    def note_token_expired(self) -> None:
        """Count a call refused because its token was used up."""
        with self._lock:
            self._counts[COUNT_TOKEN_EXPIRED] += 1
