"""A SalesExec REST client: login, retries, paging, counters. Knows nothing of Dagster.

Why it looks the way it does:

- One ``requests.Session`` with explicit connect and read timeouts; the token travels in
  the ``AuthToken`` header, and a 401 on a call triggers one fresh login and one repeat.
  A call fails after a few fresh tokens that served no call at all (the API refuses it);
  tokens that worked and then ran out (expired, or used up by concurrent pages) are
  renewed as often as needed, within a generous bound.
- Transient failures (429, 5xx, connection errors, timeouts, a 200 whose JSON is cut
  short) are retried with exponential backoff and jitter, bounded by a number of attempts
  AND a total wait. ``Retry-After`` is honoured in seconds and as an HTTP date; a zero or
  past value falls back to backoff, so a server that says "now" never causes a hot loop.
- Reports are read page by page and handed on page by page: memory does not grow with a
  report's size. Pages after the first may be fetched concurrently (bounded), which is
  what makes a high-latency API fast; they are still yielded in order.
- Offset paging over live data can repeat a row (rows added meanwhile shift the offsets)
  or miss one. Rows are de-duplicated by the report's key, and when a pass over the
  window read fewer distinct rows than the API's final ``TotalCount`` the window is read
  again, yielding only rows not seen yet; each re-read is judged by what it read itself.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from salesexec_assets.api import contract
from salesexec_assets.api.errors import (
    AuthorizationError,
    BadCredentialsError,
    MalformedResponseError,
    RetriesExhaustedError,
    SalesExecRequestError,
)
from salesexec_assets.api.timestamps import format_api_instant, to_naive_utc

MAX_RELOGINS_PER_CALL = 3  # fresh logins whose token no call could use: a real refusal
MAX_TOKEN_REFRESHES_PER_CALL = 50  # refreshes of tokens that worked, then ran out
PAGES_AHEAD_PER_REQUEST = 4  # pages held ahead of the consumer, per concurrent request

Record = dict[str, Any]
Page = list[Record]


@dataclass(frozen=True)
class RetrySettings:
    """How long a transient failure is retried."""

    max_attempts: int = 8
    max_total_wait_seconds: float = 300.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Exponential backoff with "equal jitter": never near zero, never synchronized."""
        ceiling = min(
            self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (retry_number - 1)
        )
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect and to wait for each read of a response."""

    connect_seconds: float = 10.0
    read_seconds: float = 120.0


@dataclass
class ClientStats:
    """What the client did; assets show it as metadata. Safe to update from threads."""

    requests: int = 0
    pages: int = 0
    rows: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait_seconds: float = 0.0
    backoff_wait_seconds: float = 0.0
    bytes_received: int = 0
    logins: int = 0
    duplicates_dropped: int = 0
    window_rereads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            values = {item.name: getattr(self, item.name) for item in fields(self) if item.compare}
        return {
            name: round(value, 3) if isinstance(value, float) else value
            for name, value in values.items()
        }


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth retrying."""

    def __init__(self, status: str, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return seconds if seconds > 0 else None


def split_window(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Cut ``[start, end)`` into consecutive windows no longer than the API accepts."""
    windows = []
    while start < end:
        stop = min(end, start + contract.MAX_WINDOW)
        windows.append((start, stop))
        start = stop
    return windows


def record_key(report: contract.Report, record: Record) -> tuple[Hashable, ...] | None:
    """The record's identity for de-duplication; None when a key field is missing."""
    values = tuple(record.get(name) for name in report.key)
    if any(value is None or isinstance(value, (dict, list)) for value in values):
        return None
    return values


def _plain_keys(
    report: contract.Report, records: list[Any]
) -> set[tuple[Hashable, ...]] | None:
    """The keys of a page whose records are all objects with distinct int or text keys
    of one field (the usual page), or None: then each record is looked at on its own."""
    if len(report.key) != 1 or set(map(type, records)) - {dict}:
        return None
    name = report.key[0]
    values = [record.get(name) for record in records]
    if set(map(type, values)) - {int, str}:
        return None
    keys = set(zip(values))  # 1-tuples, as record_key makes them
    return keys if len(keys) == len(values) else None


class SalesExecClient:
    """Talks to one SalesExec account. Usable without Dagster."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        retry: RetrySettings | None = None,
        timeouts: Timeouts | None = None,
        page_size: int = contract.TAKE_MAX,
        max_concurrent_requests: int = 8,
        max_window_rereads: int = 3,
        logger: logging.Logger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= page_size <= contract.TAKE_MAX:
            raise ValueError(
                f"page_size must be between 1 and {contract.TAKE_MAX}, got {page_size}"
            )
        if max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.__password = password
        self.retry = retry or RetrySettings()
        self.timeouts = timeouts or Timeouts()
        self.page_size = page_size
        self.max_concurrent_requests = max_concurrent_requests
        self.max_window_rereads = max_window_rereads
        self.log = logger or logging.getLogger(__name__)
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._token: str | None = None
        self._token_generation = 0
        self._served_generation = 0  # the newest token generation that served a call
        self._token_lock = threading.Lock()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=max_concurrent_requests + 2, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"Accept": "application/json"})

    def __repr__(self) -> str:
        return f"SalesExecClient(base_url={self.base_url!r}, username={self.username!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SalesExecClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- authentication -----------------------------------------------------------
    def authenticate(self) -> None:
        """Log in (again) and keep the token for later calls."""
        body = {contract.LOGIN_USERNAME: self.username, contract.LOGIN_PASSWORD: self.__password}
        payload = self._request("POST", contract.AUTHENTICATE_PATH, json_body=body, login=True)
        token = payload.get(contract.LOGIN_TOKEN) if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponseError(
                f"SalesExec {contract.AUTHENTICATE_PATH} answered 200 without an "
                f"{contract.LOGIN_TOKEN}"
            )
        with self._token_lock:
            self._token = token
            self._token_generation += 1
        self.stats.add(logins=1)

    def _current_token(self) -> tuple[str, int]:
        with self._token_lock:
            token, generation = self._token, self._token_generation
        if token is None:
            self.authenticate()
            return self._current_token()
        return token, generation

    def _token_served(self, generation: int) -> bool:
        """Whether the token of ``generation`` (or a newer one) served a call."""
        with self._token_lock:
            return self._served_generation >= generation > 0

    def _note_served(self, generation: int) -> None:
        with self._token_lock:
            self._served_generation = max(self._served_generation, generation)

    def _refresh_token(self, seen_generation: int) -> None:
        """Log in again unless another thread already did since ``seen_generation``."""
        with self._token_lock:
            if self._token_generation != seen_generation:
                return
        self.authenticate()

    # --- one call, with retries -------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        login: bool = False,
    ) -> Any:
        """Send one call until it succeeds, fails for good, or the retry budget runs out."""
        endpoint = f"{method} {path}"
        attempts = 0
        waited = 0.0
        relogins = refreshes = 0
        while True:
            attempts += 1
            try:
                return self._attempt(method, path, params, json_body, login)
            except _TokenRejected as rejected:
                # One fresh login per rejection. A token that served some call before it
                # was refused ran out (expired, or used up by concurrent pages): that is
                # not the API refusing this call, so it counts against a far larger limit.
                refreshes += 1
                if not self._token_served(rejected.generation):
                    relogins += 1
                if relogins > MAX_RELOGINS_PER_CALL or refreshes > MAX_TOKEN_REFRESHES_PER_CALL:
                    raise AuthorizationError(
                        f"SalesExec refused {endpoint} even after {refreshes - 1} fresh "
                        f"login(s): {rejected.api_message or 'HTTP 401'}"
                    ) from None
                attempts -= 1  # a token refresh is not a failed attempt
                self._refresh_token(rejected.generation)
            except _Retryable as failure:
                if attempts >= self.retry.max_attempts:
                    raise RetriesExhaustedError(
                        endpoint, failure.status, attempts, waited, self.base_url
                    ) from None
                rate_limited = failure.retry_after is not None
                delay = (
                    failure.retry_after if rate_limited else self.retry.backoff(attempts, self._rng)
                )
                if waited + delay > self.retry.max_total_wait_seconds:
                    raise RetriesExhaustedError(
                        endpoint, failure.status, attempts, waited, self.base_url
                    ) from None
                self.log.warning(
                    "SalesExec %s: %s; retry %d of %d in %.1f s",
                    endpoint,
                    failure.status,
                    attempts,
                    self.retry.max_attempts - 1,
                    delay,
                )
                self.stats.add(retries=1)
                if rate_limited:
                    self.stats.add(rate_limit_wait_seconds=delay)
                else:
                    self.stats.add(backoff_wait_seconds=delay)
                time.sleep(delay)
                waited += delay

    def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json_body: dict[str, Any] | None,
        login: bool,
    ) -> Any:
        headers: dict[str, str] = {}
        generation = 0
        if not login:
            token, generation = self._current_token()
            headers[contract.AUTH_HEADER] = token
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=json_body,
                headers=headers,
                timeout=(self.timeouts.connect_seconds, self.timeouts.read_seconds),
            )
        except requests.Timeout:
            self.stats.add(requests=1)
            raise _Retryable("timeout") from None
        except requests.ConnectionError as error:
            self.stats.add(requests=1)
            raise _Retryable(f"connection error ({_short_reason(error)})") from None
        except requests.RequestException as error:  # e.g. a body cut short mid-stream
            self.stats.add(requests=1)
            raise _Retryable(f"transport error ({type(error).__name__})") from None
        self.stats.add(requests=1, bytes_received=len(response.content))
        status = response.status_code
        endpoint = f"{method} {path}"
        if status == 200:
            if not login:
                self._note_served(generation)
            return self._json_body(response, endpoint)
        if status == 429:
            self.stats.add(rate_limited=1)
            retry_after = parse_retry_after(response.headers.get(contract.RETRY_AFTER_HEADER))
            raise _Retryable("HTTP 429 (rate limited)", retry_after)
        if status in contract.TRANSIENT_STATUSES:
            raise _Retryable(f"HTTP {status}")
        self._refuse_html(response, endpoint)  # a web server's error page: not the API
        message = _api_message(response)
        if status == 401:
            if login:
                raise BadCredentialsError(self.username, message)
            raise _TokenRejected(generation, message)
        raise SalesExecRequestError(_describe(endpoint, params), status, message)

    def _refuse_html(self, response: requests.Response, endpoint: str) -> None:
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type.lower():
            raise MalformedResponseError(
                f"SalesExec {endpoint} at {self.base_url} answered HTML, not JSON "
                f"(HTTP {response.status_code}): is SALESEXEC_BASE_URL the SalesExec REST API?"
            )

    def _json_body(self, response: requests.Response, endpoint: str) -> Any:
        self._refuse_html(response, endpoint)
        try:
            return json.loads(response.content)  # bytes: no text decoding step first
        except ValueError:
            raise _Retryable("HTTP 200 with a body that is not valid JSON (truncated?)") from None

    # --- the API's calls --------------------------------------------------------------------
    def lead_types(self) -> list[Record]:
        """Every lead type of the account (UID, GUID, name): the connector's menu."""
        lead_types: list[Record] = []
        skip = 0
        while True:
            envelope = self._get_page(contract.LEAD_TYPES_PATH, {}, skip)
            results = envelope[contract.ENVELOPE_RESULTS]
            lead_types.extend(results)
            skip += len(results)
            if not results or skip >= envelope[contract.ENVELOPE_TOTAL]:
                return lead_types

    def awaiting_import_count(self, lead_type_uid: int) -> Record:
        """The number of leads awaiting import for a lead type, as of now."""
        report = contract.REPORTS_BY_NAME["leads_awaiting_import_count"]
        payload = self._request(
            "GET", report.path, params={contract.PARAM_LEAD_TYPE: lead_type_uid}
        )
        if not isinstance(payload, dict):
            raise MalformedResponseError(
                f"SalesExec GET {report.path} answered {type(payload).__name__}, not an object"
            )
        self.stats.add(rows=1)
        return payload

    # --- webhook subscriptions (an assumed endpoint: see the contract) -------------------
    def webhook_subscriptions(self) -> list[Record]:
        """The account's webhook subscriptions (their URLs may hold a secret)."""
        payload = self._request("GET", contract.WEBHOOK_SUBSCRIPTIONS_PATH)
        if not isinstance(payload, list):
            raise MalformedResponseError(
                f"SalesExec GET {contract.WEBHOOK_SUBSCRIPTIONS_PATH} answered "
                f"{type(payload).__name__}, not a list"
            )
        return payload

    def subscribe_webhook(self, url: str, types: list[int]) -> Record:
        """Subscribe ``url`` to the webhook ``types`` (JSON deliveries)."""
        body = {
            contract.SUBSCRIPTION_URL: url,
            contract.SUBSCRIPTION_TYPES: types,
            contract.SUBSCRIPTION_DATA_TYPE: contract.SUBSCRIPTION_DATA_TYPE_JSON,
        }
        return self._request("POST", contract.WEBHOOK_SUBSCRIPTIONS_PATH, json_body=body)

    def delete_webhook_subscription(self, subscription_id: str) -> None:
        """Delete one subscription (404 from the API: :class:`SalesExecRequestError`)."""
        self._request("DELETE", f"{contract.WEBHOOK_SUBSCRIPTIONS_PATH}/{subscription_id}")

    def iter_report_pages(
        self,
        report: contract.Report,
        lead_type_uid: int,
        start: datetime,
        end: datetime,
    ) -> Iterator[Page]:
        """Yield the report's records in ``[start, end)`` page by page, each record once.

        ``start`` and ``end`` are UTC instants (naive = UTC). Windows longer than the API
        allows are split. Records with no usable key are passed on (not de-duplicated),
        so that the caller can quarantine them instead of losing them silently.
        """
        if not report.paged:
            raise ValueError(f"{report.title} is not a paged report")
        for window_start, window_end in split_window(to_naive_utc(start), to_naive_utc(end)):
            params = {
                contract.PARAM_LEAD_TYPE: lead_type_uid,
                contract.PARAM_START: format_api_instant(window_start),
                contract.PARAM_END: format_api_instant(window_end),
            }
            yield from self._iter_window(report, params)

    def _iter_window(self, report: contract.Report, params: dict[str, Any]) -> Iterator[Page]:
        seen: set[tuple[Hashable, ...]] = set()
        for reread in range(self.max_window_rereads + 1):
            total = 0
            # A pass is complete by what IT read: rows seen by an earlier pass cannot stand
            # in for a row this pass missed, or a row inserted during a re-read (which
            # shifts the offsets of that re-read) could go unnoticed and be lost.
            read: set[tuple[Hashable, ...]] = set()
            keyless = 0
            # a re-read takes the largest pages: fewer calls, less time for the data to move
            page_size = self.page_size if reread == 0 else contract.TAKE_MAX
            for envelope in self._iter_envelopes(report.path, params, page_size):
                total = envelope[contract.ENVELOPE_TOTAL]
                results = envelope[contract.ENVELOPE_RESULTS]
                keys = _plain_keys(report, results)
                if keys is not None and seen.isdisjoint(keys):  # the usual page: all new
                    read.update(keys)
                    seen.update(keys)
                    self.stats.add(rows=len(results))
                    if results:
                        yield results
                    continue
                page: Page = []
                for record in results:
                    key = record_key(report, record) if isinstance(record, dict) else None
                    if key is None:
                        keyless += 1
                        if reread == 0:
                            page.append(record)
                        continue
                    read.add(key)
                    if key in seen:
                        self.stats.add(duplicates_dropped=1)
                        continue
                    seen.add(key)
                    page.append(record)
                self.stats.add(rows=len(page))
                if page:
                    yield page
            if len(read) + keyless >= total:
                return
            self.stats.add(window_rereads=1)
            self.log.info(
                "SalesExec %s %s: %d distinct rows but TotalCount is now %d (rows added while "
                "paging); reading the window again for the missing ones",
                report.path,
                _describe_params(params),
                len(read) + keyless,
                total,
            )
        self.log.warning(
            "SalesExec %s %s: still %d rows short after %d re-reads; the data changed "
            "faster than it could be read",
            report.path,
            _describe_params(params),
            total - len(read) - keyless,
            self.max_window_rereads,
        )

    def _iter_envelopes(
        self, path: str, params: dict[str, Any], page_size: int
    ) -> Iterator[dict[str, Any]]:
        """The first page, then the rest fetched concurrently (bounded) and yielded in order.

        At most ``max_concurrent_requests`` calls are in flight, and up to
        ``PAGES_AHEAD_PER_REQUEST`` times as many pages are fetched ahead of the consumer:
        the requests go on while the caller converts and stages a batch, so a slow API
        and a busy CPU overlap instead of taking turns.
        """
        first = self._get_page(path, params, 0, page_size)
        yield first
        total = first[contract.ENVELOPE_TOTAL]
        offsets = deque(range(page_size, total, page_size))
        if not offsets:
            return
        if self.max_concurrent_requests == 1:
            for skip in offsets:
                yield self._get_page(path, params, skip, page_size)
            return
        ahead = self.max_concurrent_requests * PAGES_AHEAD_PER_REQUEST
        with ThreadPoolExecutor(max_workers=self.max_concurrent_requests) as pool:
            in_flight: deque[Future[dict[str, Any]]] = deque()
            try:
                while offsets or in_flight:
                    while offsets and len(in_flight) < ahead:
                        in_flight.append(
                            pool.submit(self._get_page, path, params, offsets.popleft(), page_size)
                        )
                    yield in_flight.popleft().result()
            finally:
                for future in in_flight:
                    future.cancel()

    def _get_page(
        self, path: str, params: dict[str, Any], skip: int, page_size: int | None = None
    ) -> dict[str, Any]:
        take = page_size or self.page_size
        page_params = {**params, contract.PARAM_SKIP: skip, contract.PARAM_TAKE: take}
        envelope = self._request("GET", path, params=page_params)
        _check_envelope(envelope, f"GET {path}")
        self.stats.add(pages=1)
        return envelope


class _TokenRejected(Exception):
    """Internal: the API refused the token (expired or unknown)."""

    def __init__(self, generation: int, api_message: str | None) -> None:
        super().__init__(api_message)
        self.generation = generation
        self.api_message = api_message


def _check_envelope(envelope: Any, endpoint: str) -> None:
    if not isinstance(envelope, dict):
        raise MalformedResponseError(
            f"SalesExec {endpoint} answered {type(envelope).__name__}, not a list envelope"
        )
    results = envelope.get(contract.ENVELOPE_RESULTS)
    total = envelope.get(contract.ENVELOPE_TOTAL)
    if not isinstance(results, list) or not isinstance(total, int) or isinstance(total, bool):
        raise MalformedResponseError(
            f"SalesExec {endpoint} answered an object without a {contract.ENVELOPE_RESULTS} "
            f"list and an integer {contract.ENVELOPE_TOTAL}: keys {sorted(envelope)[:10]}"
        )


def _api_message(response: requests.Response) -> str | None:
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] or None
    if isinstance(payload, dict):
        message = payload.get(contract.ERROR_MESSAGE)
        return str(message) if message is not None else json.dumps(payload)[:200]
    return None


def _describe_params(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    return "(" + ", ".join(f"{name}={value}" for name, value in params.items()) + ")"


def _describe(endpoint: str, params: dict[str, Any] | None) -> str:
    return f"{endpoint} {_describe_params(params)}".strip()


def _short_reason(error: Exception) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "reset"):
        if marker in text:
            return marker
    return type(error).__name__
