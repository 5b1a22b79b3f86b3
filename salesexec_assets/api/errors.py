"""Errors of the SalesExec client: each names what failed, and never a secret."""

from __future__ import annotations


class SalesExecError(RuntimeError):
    """Base class of every error the client raises."""


class BadCredentialsError(SalesExecError):
    """The login itself was refused (401 from the authentication call)."""

    def __init__(self, username: str, api_message: str | None) -> None:
        detail = f": {api_message}" if api_message else ""
        super().__init__(
            f"SalesExec bad credentials for user {username!r}{detail} "
            "Check SALESEXEC_USERNAME and SALESEXEC_PASSWORD."
        )
        self.username = username


class AuthorizationError(SalesExecError):
    """A call was refused even after a fresh login."""


class SalesExecRequestError(SalesExecError):
    """The API refused a request (400, 404, ...): retrying would not help."""

    def __init__(self, endpoint: str, status: int, api_message: str | None) -> None:
        super().__init__(
            f"SalesExec refused {endpoint} with HTTP {status}: {api_message or '(no message)'}"
        )
        self.endpoint = endpoint
        self.status = status
        self.api_message = api_message


class RetriesExhaustedError(SalesExecError):
    """A transient failure outlasted the retry budget (attempts or total wait)."""

    def __init__(
        self, endpoint: str, last_status: str, attempts: int, waited: float, base_url: str
    ) -> None:
        # the base URL too: "connection refused" is most often a wrong SALESEXEC_BASE_URL
        super().__init__(
            f"SalesExec {endpoint} at {base_url} still failing after {attempts} attempts "
            f"({waited:.1f} s waited); last status: {last_status}"
        )
        self.endpoint = endpoint
        self.base_url = base_url
        self.last_status = last_status
        self.attempts = attempts


class MalformedResponseError(SalesExecError):
    """A response that no retry can fix: not the API (HTML), or not the contract's shape."""
