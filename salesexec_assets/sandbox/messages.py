"""Requests and responses as plain values, so the API's behaviour can be written (and
faults applied) without touching sockets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from salesexec_assets.api.contract import ERROR_MESSAGE

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the sandbox sees it."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive lookups
    body: bytes = b""

    def param(self, name: str) -> str | None:
        """A query parameter's first value, like ASP.NET binds a simple parameter."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Response:
    """One HTTP response: status, JSON body and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    drop_after: int | None = None  # send only this many body bytes, then close

    def with_body(self, body: bytes) -> Response:
        """The same answer with another body (a cut one, for the truncation fault)."""
        return Response(self.status, body, self.headers)

    def dropped_after(self, sent: int) -> Response:
        """The same answer, its connection closed after ``sent`` bytes of the body."""
        return Response(self.status, self.body, self.headers, sent)


def json_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A response carrying JSON text that is already serialized."""
    return Response(status, text.encode("utf-8"), headers)


def error_response(
    status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """The contract's error shape: ``{"Message": "..."}``."""
    return json_response(status, json.dumps({ERROR_MESSAGE: message}), headers)
