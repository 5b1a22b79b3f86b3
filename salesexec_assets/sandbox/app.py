"""The API contract's endpoints: a :class:`Request` in, a :class:`Response` out.

Routing, authentication, parameter validation and the JSON shapes live here; transient
faults (429, 5xx, latency, cut bodies) are applied around this by the server. The two
faults that need the API's own knowledge are decided here: token expiry (a use count)
offset drift (a lead inserted during a paged read) and rows leaving a window during a
paged read (a lead deleted, updated or reopened).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from salesexec_assets.api.contract import (
    AUTH_HEADER,
    AUTHENTICATE_PATH,
    ENVELOPE_RESULTS,
    ENVELOPE_SKIP,
    ENVELOPE_TAKE,
    ENVELOPE_TOTAL,
    LEAD_TYPES_PATH,
    LOGIN_EXPIRES,
    LOGIN_PASSWORD,
    LOGIN_TOKEN,
    LOGIN_USER_ACCOUNT_UID,
    LOGIN_USERNAME,
    MAX_WINDOW,
    PARAM_END,
    PARAM_LEAD_TYPE,
    PARAM_SKIP,
    PARAM_START,
    PARAM_TAKE,
    REPORTS,
    TAKE_DEFAULT,
    TAKE_MAX,
    Report,
)
from salesexec_assets.api.timestamps import TimestampError, format_api_instant, parse_api_timestamp
from salesexec_assets.sandbox.catalog import SANDBOX_USER_ACCOUNT_UID
from salesexec_assets.sandbox.config import SandboxConfig
from salesexec_assets.sandbox.data import UnknownLeadType
from salesexec_assets.sandbox.faults import FaultInjector
from salesexec_assets.sandbox.generate import Row
from salesexec_assets.sandbox.messages import Request, Response, error_response, json_response
from salesexec_assets.sandbox.state import LiveData
from salesexec_assets.sandbox.tokens import TokenState, TokenStore

INVALID_LOGIN_MESSAGE = "Invalid user name or password."
DENIED_MESSAGE = "Authorization has been denied for this request."
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_TOTAL, _SKIP, _TAKE, _RESULTS = map(
    json.dumps, (ENVELOPE_TOTAL, ENVELOPE_SKIP, ENVELOPE_TAKE, ENVELOPE_RESULTS)
)


class BadRequest(ValueError):
    """A request the contract rejects with 400; the message says why."""


@dataclass(frozen=True)
class _Route:
    method: str
    handler: Callable[[Request], Response]
    needs_token: bool = True


def envelope(total: int, skip: int, take: int, rows: Sequence[Row]) -> Response:
    """The contract's list envelope around rows whose JSON is already serialized."""
    results = ",".join(row.json for row in rows)
    text = f"{{{_TOTAL}:{total},{_SKIP}:{skip},{_TAKE}:{take},{_RESULTS}:[{results}]}}"
    return json_response(200, text)


def not_found(path: str) -> Response:
    """ASP.NET's answer to a path it has no route for."""
    return error_response(404, f"No HTTP resource was found that matches the request URI '{path}'.")


def _integer(request: Request, name: str, default: int | None = None) -> int:
    """A required (or defaulted) integer query parameter."""
    value = request.param(name)
    if value is None or value == "":
        if default is None:
            raise BadRequest(f"The request is invalid: the parameter {name} is required.")
        return default
    if not _INTEGER.match(value.strip()):
        raise BadRequest(f"The request is invalid: {name} must be an integer, got {value!r}.")
    return int(value)


def _instant(request: Request, name: str) -> datetime:
    """A required ISO-8601 instant, in any form the contract allows, as naive UTC."""
    value = request.param(name)
    if not value:
        raise BadRequest(f"The request is invalid: the parameter {name} is required.")
    try:
        return parse_api_timestamp(value)
    except TimestampError:
        raise BadRequest(
            f"The request is invalid: {name} must be an ISO-8601 instant, got {value!r}."
        ) from None


def _window(request: Request) -> tuple[datetime, datetime]:
    """The half-open window [StartDate, EndDate), at most 31 days long."""
    start, end = _instant(request, PARAM_START), _instant(request, PARAM_END)
    if end <= start:
        raise BadRequest(f"The request is invalid: {PARAM_END} must be later than {PARAM_START}.")
    if end - start > MAX_WINDOW:
        raise BadRequest(
            f"The request is invalid: the window from {PARAM_START} to {PARAM_END} is longer "
            f"than {MAX_WINDOW.days} days."
        )
    return start, end


def _paging(request: Request) -> tuple[int, int]:
    """Skip (0 or more) and Take (1..500, default 100)."""
    skip = _integer(request, PARAM_SKIP, default=0)
    take = _integer(request, PARAM_TAKE, default=TAKE_DEFAULT)
    if skip < 0:
        raise BadRequest(f"The request is invalid: {PARAM_SKIP} must be 0 or more.")
    if not 1 <= take <= TAKE_MAX:
        raise BadRequest(f"The request is invalid: {PARAM_TAKE} must be between 1 and {TAKE_MAX}.")
    return skip, take


class SandboxApp:
    """The SalesExec API as the contract describes it, served from :class:`LiveData`."""

    def __init__(
        self, config: SandboxConfig, data: LiveData, faults: FaultInjector, tokens: TokenStore
    ) -> None:
        self._config = config
        self._data = data
        self._faults = faults
        self._tokens = tokens
        routes = {
            AUTHENTICATE_PATH: _Route("POST", self._login, needs_token=False),
            LEAD_TYPES_PATH: _Route("GET", self._lead_types),
        }
        for report in REPORTS:
            routes[report.path] = _Route("GET", self._report_handler(report))
        self._routes = {_route_key(path): route for path, route in routes.items()}

    def handle(self, request: Request) -> Response:
        """Answer one request as the contract says (errors included)."""
        route = self._routes.get(_route_key(request.path))
        if route is None:
            return not_found(request.path)
        if request.method != route.method:
            return error_response(
                405,
                f"The requested resource does not support http method '{request.method}'.",
                (("Allow", route.method),),
            )
        if route.needs_token and (refusal := self.token_refusal(request)) is not None:
            return refusal
        try:
            return route.handler(request)
        except BadRequest as error:
            return error_response(400, str(error))
        except UnknownLeadType as error:
            return error_response(404, str(error.args[0]))

    def token_refusal(self, request: Request) -> Response | None:
        """The 401 for a request without a live token, or None (the token is used once)."""
        state = self._tokens.use(
            request.headers.get(AUTH_HEADER), self._faults.faults.token_uses, self._data.now()
        )
        if state is TokenState.EXPIRED:
            self._faults.note_token_expired()
        return None if state is TokenState.LIVE else error_response(401, DENIED_MESSAGE)

    # --- endpoints -----------------------------------------------------------------------
    def _login(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise BadRequest(
                f"The request is invalid: the body must be JSON with {LOGIN_USERNAME} and "
                f"{LOGIN_PASSWORD}."
            )
        username, password = body.get(LOGIN_USERNAME), body.get(LOGIN_PASSWORD)
        if not (isinstance(username, str) and isinstance(password, str)) or not (
            _same(username, self._config.username) and _same(password, self._config.password)
        ):
            return error_response(401, INVALID_LOGIN_MESSAGE)
        token, expires = self._tokens.issue(self._data.now())
        answer = {
            LOGIN_TOKEN: token,
            LOGIN_USER_ACCOUNT_UID: SANDBOX_USER_ACCOUNT_UID,
            LOGIN_EXPIRES: format_api_instant(expires),
        }
        return json_response(200, json.dumps(answer))

    def _lead_types(self, request: Request) -> Response:
        skip, take = _paging(request)
        rows = self._data.lead_type_rows()
        return envelope(len(rows), skip, take, rows[skip : skip + take])

    def _report_handler(self, report: Report) -> Callable[[Request], Response]:
        if report.paged:
            return lambda request: self._paged_report(report, request)
        return self._awaiting_import_count

    def _paged_report(self, report: Report, request: Request) -> Response:
        lead_type_uid = _integer(request, PARAM_LEAD_TYPE)
        start, end = _window(request)
        skip, take = _paging(request)
        self._data.spec(lead_type_uid)
        if start <= self._data.visible_now() and self._faults.drift(skip):
            # A lead created during the read sorts first and shifts every later offset.
            self._data.insert_lead(lead_type_uid, start, report.name, (start, end))
        leaving = self._faults.removal(skip, take)
        if leaving is not None and self._data.remove_from_window(
            report, lead_type_uid, start, end, leaving, during=report.name
        ):
            # A row already served leaves: every later offset shifts back by one.
            self._faults.note_row_left()
        rows = self._data.rows(report, lead_type_uid, start, end)
        return envelope(len(rows), skip, take, rows[skip : skip + take])

    def _awaiting_import_count(self, request: Request) -> Response:
        lead_type_uid = _integer(request, PARAM_LEAD_TYPE)
        return json_response(200, self._data.awaiting_import_row(lead_type_uid).json)


def _route_key(path: str) -> str:
    """ASP.NET routes ignore case and a trailing slash."""
    return path.rstrip("/").lower()


def _same(given: str, expected: str) -> bool:
    """Compare credentials in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
