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
  or miss one (a row already read leaves the window: it is deleted, updated out of a
  past day, reopened; the row at the next page boundary slides onto the page just read).
  Counting rows cannot see the second case, so pages overlap by one row: each page must
  start with the row the page before ended with, be as long as its ``TotalCount`` says,
  and that total must not change. Any change to the window during the read breaks one of
  these, whatever order the pages were fetched in; the window is then read again (a
  bounded number of times), yielding only rows not seen yet (de-duplicated by key).
- Contract overrides (``SALESEXEC_CONTRACT_OVERRIDES``) apply at the HTTP boundary, in
  :meth:`SalesExecClient._request` alone: paths, parameters and body fields go out under
  the API's names, answers come back under the contract's, and nothing else changes.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Generator, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import orjson
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
from salesexec_assets.api.overrides import ContractOverrides
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


_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def decode_json(body: bytes) -> Any:
    """A response body decoded exactly as ``json.loads`` decodes it, about twice as fast.

    orjson builds the same objects as the standard library, except that it reads an
    integer beyond 64 bits as a float and refuses ``NaN``, ``1e400``, lone surrogates
    and a byte-order mark. A body with a run of 19 digits or more (which any integer
    beyond 64 bits has; one C pass finds it) or one orjson refuses is decoded by
    ``json.loads``; a body neither reads raises ValueError.
    """
    if _NINETEEN_DIGITS not in body.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)  # bytes: no text decoding step first


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


def _plain_keys(report: contract.Report, records: list[Any]) -> set[tuple[Hashable, ...]] | None:
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
        contract_overrides: ContractOverrides | None = None,
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
        # the API's names where they differ from the contract's; default: the environment's
        self.overrides = contract_overrides or contract.effective()
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._token: str | None = None
        self._token_generation = 0
        self._served_generation = 0  # the newest token generation that served a call
        self._token_lock = threading.Lock()
        self._login_lock = threading.Lock()  # one login at a time: the others wait for it
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
        with self._login_lock:
            self._login()

    def _login(self) -> None:
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
            self._refresh_token(generation)
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
        """Log in again unless another thread already did since ``seen_generation``.

        Single flight: when a token dies under N concurrent pages, all N are refused at
        once; one of them logs in while the others wait for that login, then use its token.
        """
        with self._login_lock:
            with self._token_lock:
                if self._token_generation != seen_generation:
                    return
            self._login()

    # --- one call, with retries -------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        login: bool = False,
        as_sent: bool = False,
        stop: threading.Event | None = None,
    ) -> Any:
        """Send one call until it succeeds, fails for good, or the retry budget runs out
        (or ``stop`` is set: another page of the same read failed for good).

        ``path``, ``params`` and ``json_body`` use the contract's names and so does the
        answer (``as_sent``: the answer as the API wrote it).
        """
        path = self.overrides.api_path(path)
        params = self.overrides.api_params(params)
        if json_body is not None:
            json_body = self.overrides.api_record(json_body)
        endpoint = f"{method} {path}"
        attempts = 0
        waited = 0.0
        relogins = refreshes = 0
        while True:
            if stop is not None and stop.is_set():
                raise _Stopped()
            attempts += 1
            try:
                answer = self._attempt(method, path, params, json_body, login)
                return answer if as_sent else self.overrides.contract_payload(answer)
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
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    raise _Stopped() from None
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
            return decode_json(response.content)
        except ValueError:
            raise _Retryable("HTTP 200 with a body that is not valid JSON (truncated?)") from None

    # --- the API's calls --------------------------------------------------------------------
    def get_document(self, path: str) -> Any:
        """A JSON document of the API that is not a report (its Swagger), logged in, as sent."""
        return self._request("GET", path, as_sent=True)

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

    def first_page(self, path: str, params: dict[str, Any], take: int) -> dict[str, Any]:
        """The first page (``Skip=0``) of a list endpoint: the probe's one call."""
        return self._get_page(path, params, 0, take)

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
            # a re-read takes the largest pages: fewer calls, less time for the data to move
            page_size = self.page_size if reread == 0 else contract.TAKE_MAX
            change = yield from self._read_pass(report, params, page_size, seen, reread == 0)
            if change is None:
                return
            if reread == self.max_window_rereads:
                break
            self.stats.add(window_rereads=1)
            self.log.info(
                "SalesExec %s %s: the window changed while it was read (%s); reading it "
                "again for the rows that shifted past a page boundary",
                report.path,
                _describe_params(params),
                change,
            )
        self.log.warning(
            "SalesExec %s %s: the window still changed during each of %d re-reads (%s); "
            "the data changed faster than it could be read, so rows may be missing",
            report.path,
            _describe_params(params),
            self.max_window_rereads,
            change,
        )

    def _read_pass(
        self,
        report: contract.Report,
        params: dict[str, Any],
        page_size: int,
        seen: set[tuple[Hashable, ...]],
        first_pass: bool,
    ) -> Generator[Page, None, str | None]:
        """One pass over the window, yielding the rows not ``seen`` yet; returns None if the
        window provably did not change under it, else what changed.

        Pages overlap by one row (see :meth:`_iter_envelopes`). The pass is complete when
        each page's first row is the row the page before ended with (same key and same
        window instant), every page is as long as its ``TotalCount`` says, and that total
        never changed. Then every row that stayed in the window was read, whenever each
        page was fetched: a row removed, added or moved anywhere before a boundary shifts
        that boundary, and one added after the last page changes the total. Rows read
        before they left the window stay as they were read.
        """
        change: str | None = None
        first_total: int | None = None
        boundary: Any = _NO_BOUNDARY
        for skip, envelope in self._iter_envelopes(report.path, params, page_size):
            total = envelope[contract.ENVELOPE_TOTAL]
            results = envelope[contract.ENVELOPE_RESULTS]
            if first_total is None:
                first_total = total
            expected_rows = max(0, min(_overlapping(page_size), total - skip))
            if change is None:
                if total != first_total:
                    change = f"TotalCount went from {first_total} to {total}"
                elif len(results) != expected_rows:
                    change = f"{len(results)} rows at Skip={skip}, not {expected_rows}"
                elif skip and (not results or _boundary(report, results[0]) != boundary):
                    change = f"the rows before Skip={skip} shifted"
            if skip and results and _boundary(report, results[0]) == boundary:
                results = results[1:]  # the overlap row: handed on with the page before
            boundary = _boundary(report, results[-1]) if results else _NO_BOUNDARY
            page = self._new_rows(report, results, seen, first_pass)
            if page:
                yield page
        return change

    def _new_rows(
        self,
        report: contract.Report,
        results: list[Any],
        seen: set[tuple[Hashable, ...]],
        first_pass: bool,
    ) -> Page:
        """The records of a page not handed on yet (records without a key: on the first
        pass only, so that the caller can quarantine them instead of losing them)."""
        keys = _plain_keys(report, results)
        if keys is not None and seen.isdisjoint(keys):  # the usual page: all new
            seen.update(keys)
            self.stats.add(rows=len(results))
            return results
        page: Page = []
        for record in results:
            key = record_key(report, record) if isinstance(record, dict) else None
            if key is None:
                if first_pass:
                    page.append(record)
                continue
            if key in seen:
                self.stats.add(duplicates_dropped=1)
                continue
            seen.add(key)
            page.append(record)
        self.stats.add(rows=len(page))
        return page

    def _iter_envelopes(
        self, path: str, params: dict[str, Any], page_size: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(skip, page)``: the first page, then the rest fetched concurrently (bounded)
        and yielded in order. Each page after the first starts at the last row of the page
        before it (an overlap of one row), so that a shift of the rows between two
        fetches shows.

        At most ``max_concurrent_requests`` calls are in flight, and up to
        ``PAGES_AHEAD_PER_REQUEST`` times as many pages are fetched ahead of the consumer:
        the requests go on while the caller converts and stages a batch, so a slow API
        and a busy CPU overlap instead of taking turns.
        """
        take = _overlapping(page_size)
        first = self._get_page(path, params, 0, take)
        yield 0, first
        total = first[contract.ENVELOPE_TOTAL]
        # page n covers offsets n*(take-1) .. n*(take-1) + take-1, the last one total-1
        offsets = deque(range(take - 1, total - 1, take - 1))
        if not offsets:
            return
        if self.max_concurrent_requests == 1:
            for skip in offsets:
                yield skip, self._get_page(path, params, skip, take)
            return
        ahead = self.max_concurrent_requests * PAGES_AHEAD_PER_REQUEST
        # Set when the read ends early (any page failed for good, or the caller stopped):
        # the pages in flight give up at once instead of running their retries to the end.
        stop = threading.Event()
        failures: list[BaseException] = []

        def fail_fast(future: Future[dict[str, Any]]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None and not isinstance(error, _Stopped):
                failures.append(error)
                stop.set()

        with ThreadPoolExecutor(max_workers=self.max_concurrent_requests) as pool:
            in_flight: deque[tuple[int, Future[dict[str, Any]]]] = deque()
            try:
                while offsets or in_flight:
                    while offsets and len(in_flight) < ahead:
                        skip = offsets.popleft()
                        future = pool.submit(self._get_page, path, params, skip, take, stop)
                        future.add_done_callback(fail_fast)
                        in_flight.append((skip, future))
                    skip, future = in_flight.popleft()
                    try:
                        page = future.result()
                    except _Stopped:  # a later page failed for good first: that is the error
                        raise failures[0] from None
                    yield skip, page
            finally:
                stop.set()
                for _, future in in_flight:
                    future.cancel()

    def _get_page(
        self,
        path: str,
        params: dict[str, Any],
        skip: int,
        page_size: int | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        take = page_size or self.page_size
        page_params = {**params, contract.PARAM_SKIP: skip, contract.PARAM_TAKE: take}
        envelope = self._request("GET", path, params=page_params, stop=stop)
        _check_envelope(envelope, f"GET {path}")
        self.stats.add(pages=1)
        return envelope


_NO_BOUNDARY = object()  # no row to compare a page's first row with


def _overlapping(page_size: int) -> int:
    """The Take of overlapping pages: at least 2, or a page would add no row."""
    return max(2, page_size)


def _boundary(report: contract.Report, record: Any) -> Any:
    """What places a record in the API's order: its window instant and its key (the
    record itself when it is not an object)."""
    if not isinstance(record, dict):
        return record
    names = (report.window_field, *report.key) if report.window_field else report.key
    return tuple(record.get(name) for name in names)


class _Stopped(Exception):
    """Internal: the read this call belongs to ended (another page failed for good)."""


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
