"""The SalesExec client against a real sandbox server on loopback."""

from __future__ import annotations

import http.server
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesexec_assets.api import contract
from salesexec_assets.api.client import (
    MAX_RELOGINS_PER_CALL,
    RetrySettings,
    SalesExecClient,
    decode_json,
    parse_retry_after,
    split_window,
)
from salesexec_assets.api.errors import (
    AuthorizationError,
    BadCredentialsError,
    MalformedResponseError,
    RetriesExhaustedError,
    SalesExecRequestError,
)
from salesexec_assets.sandbox import SandboxConfig, SandboxData, run_sandbox
from salesexec_assets.sandbox.state import ChangeKind
from salesexec_assets_tests.truth import canonical_record, truth_rows

SECRET = "pw-Zq81-never-print-me"
FAST_RETRY = RetrySettings(
    max_attempts=12,
    max_total_wait_seconds=30,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
)
DAY = datetime(2026, 11, 20)
CLOCK = DAY + timedelta(days=4, hours=12, minutes=30)
ALL_LEADS = contract.REPORTS_BY_NAME["all_leads"]
DELETED = ChangeKind.DELETED
PAGED = [report for report in contract.REPORTS if report.paged]


def sandbox(**settings: object):
    """A sandbox whose password is distinctive, so that a leak is visible. Its clock stands
    still a few days after DAY: DAY's leads are served as they stood then (their history
    runs on for two weeks), the same for the read and for the truth asked later."""
    return run_sandbox(password=SECRET, clock=lambda: CLOCK, **settings)


def make_client(base_url: str, *, password: str = SECRET, **options: object) -> SalesExecClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("rng", random.Random(1))
    return SalesExecClient(base_url, "sandbox", password, **options)  # type: ignore[arg-type]


def read_all(
    client: SalesExecClient, report: contract.Report, lead_type: int, start: datetime, end: datetime
) -> list[dict]:
    return [
        canonical_record(report, record)
        for page in client.iter_report_pages(report, lead_type, start, end)
        for record in page
    ]


def assert_equals_truth(
    server, client, report=ALL_LEADS, lead_type=1, start=DAY, end=DAY + timedelta(days=1)
) -> list[dict]:
    got = read_all(client, report, lead_type, start, end)
    expected = truth_rows(server, report, lead_type, start, end)
    assert len(got) == len(expected)
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    return got


def test_login_and_many_pages_return_exactly_the_ground_truth() -> None:
    with sandbox(leads_per_day=60) as server, make_client(server.base_url, page_size=7) as client:
        rows = assert_equals_truth(server, client)
        assert client.stats.pages >= len(rows) // 7
        assert client.stats.logins == 1


def test_pages_are_read_concurrently_and_still_in_order() -> None:
    with sandbox(leads_per_day=60, latency_ms=5) as server:
        with make_client(server.base_url, page_size=5, max_concurrent_requests=6) as client:
            keys = [
                record[contract.LEAD_UID]
                for page in client.iter_report_pages(ALL_LEADS, 1, DAY, DAY + timedelta(days=1))
                for record in page
            ]
        expected = [
            row[contract.LEAD_UID]
            for row in server.truth("all_leads", 1, DAY, DAY + timedelta(days=1))
        ]
        assert keys == expected


def test_lead_types_list_the_account_menu() -> None:
    with sandbox() as server, make_client(server.base_url) as client:
        lead_types = client.lead_types()
    assert {lt[contract.LEAD_TYPE_UID] for lt in lead_types} == {
        lt[contract.LEAD_TYPE_UID] for lt in SandboxData(SandboxConfig()).lead_types()
    }
    assert all(lt[contract.LEAD_TYPE_NAME] for lt in lead_types)


def test_bad_credentials_name_the_user_and_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "hunter2-wrong-password"
    caplog.set_level(logging.DEBUG)
    with sandbox() as server, make_client(server.base_url, password=secret) as client:
        with pytest.raises(BadCredentialsError) as raised:
            client.lead_types()
    text = str(raised.value)
    assert "bad credentials" in text and "'sandbox'" in text
    assert secret not in text + repr(raised.value) + caplog.text + repr(client)


def test_an_expired_token_mid_read_logs_in_again_and_loses_nothing() -> None:
    with sandbox(leads_per_day=60, token_uses=3) as server:
        with make_client(server.base_url, page_size=10) as client:
            assert_equals_truth(server, client)
            assert client.stats.logins > 1
            assert server.fault_counts["token_expired"] >= 1


def test_unknown_lead_type_is_a_clear_error_without_retries() -> None:
    with sandbox() as server, make_client(server.base_url) as client:
        with pytest.raises(SalesExecRequestError) as raised:
            list(client.iter_report_pages(ALL_LEADS, 999, DAY, DAY + timedelta(days=1)))
    assert raised.value.status == 404
    assert "999" in str(raised.value)
    assert client.stats.retries == 0


def test_a_window_longer_than_31_days_is_split_into_windows_the_api_accepts() -> None:
    start, end = DAY - timedelta(days=40), DAY
    assert len(split_window(start, end)) == 2
    with sandbox(leads_per_day=2) as server, make_client(server.base_url) as client:
        assert_equals_truth(server, client, start=start, end=end)


def test_offset_drift_gives_no_duplicates_and_no_missing_rows() -> None:
    with sandbox(leads_per_day=80, pdrift=0.5) as server:
        with make_client(server.base_url, page_size=10, max_concurrent_requests=1) as client:
            rows = assert_equals_truth(server, client)
        assert server.fault_counts["drift_inserted"] >= 1
        assert len({row[contract.LEAD_UID] for row in rows}) == len(rows)
        assert client.stats.duplicates_dropped + client.stats.window_rereads >= 1


# each fault alone, and the sandbox counter that proves it fired
SINGLE_FAULTS = {
    "429": {"p429": 0.3, "retry_after_seconds": 0},
    "5xx": {"p5xx": 0.3},
    "token_expired": {"token_uses": 2},
    "delayed": {"latency_ms": 20},
    "truncated": {"ptruncate": 0.3},
    "dropped": {"pdrop": 0.3},
    "drift_inserted": {"pdrift": 0.3},
    "row_left": {"premove": 0.3},
}


@pytest.mark.parametrize("counter", SINGLE_FAULTS)
def test_each_fault_alone_still_yields_the_ground_truth(counter: str) -> None:
    with sandbox(leads_per_day=40, **SINGLE_FAULTS[counter]) as server:
        with make_client(server.base_url, page_size=8) as client:
            for name in ("all_leads", "all_actions"):
                report = contract.REPORTS_BY_NAME[name]
                got = read_all(client, report, 1, DAY, DAY + timedelta(days=1))
                assert_read_the_truth_as_it_changed(
                    server, report, 1, DAY, DAY + timedelta(days=1), got
                )
        fired = {name for name, count in server.fault_counts.items() if count}
        assert fired == {counter}, server.fault_counts


def test_all_faults_together_still_yield_the_ground_truth_for_every_paged_report() -> None:
    faults = dict(
        p429=0.15,
        retry_after_seconds=0,
        p5xx=0.15,
        token_uses=3,
        latency_ms=2,
        ptruncate=0.15,
        pdrop=0.1,
        pdrift=0.2,
        premove=0.15,
    )
    end = DAY + timedelta(days=1)
    with sandbox(leads_per_day=30, **faults) as server:
        with make_client(server.base_url, page_size=6) as client:
            for report in PAGED:
                got = read_all(client, report, 2, DAY, end)
                assert_read_the_truth_as_it_changed(server, report, 2, DAY, end, got)
        injected = server.fault_counts
        assert all(injected.values()), f"faults that never fired: {injected}"
        assert client.stats.retries >= injected["429"] + injected["5xx"] + injected["dropped"]


def test_retry_after_is_honoured_in_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("2", now) == 2
    later = format_datetime(now + timedelta(seconds=3), usegmt=True)
    assert parse_retry_after(later, now) == pytest.approx(3)
    # zero, past dates and garbage fall back to backoff (None), never to a hot loop
    assert parse_retry_after("0", now) is None
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) is None
    assert parse_retry_after("soon", now) is None


def test_rate_limits_are_waited_out_and_counted() -> None:
    with sandbox(leads_per_day=40, p429=0.4, retry_after_seconds=1) as server:
        with make_client(server.base_url, page_size=5) as client:
            assert_equals_truth(server, client)
        assert client.stats.rate_limited == server.fault_counts["429"] > 0
        assert client.stats.rate_limit_wait_seconds > 0


def test_exhausted_retries_name_the_endpoint_the_status_and_the_attempts() -> None:
    retry = RetrySettings(max_attempts=3, backoff_initial_seconds=0.01, backoff_max_seconds=0.02)
    with sandbox(p5xx=1.0) as server, make_client(server.base_url, retry=retry) as client:
        with pytest.raises(RetriesExhaustedError) as raised:
            client.lead_types()
    message = str(raised.value)
    assert contract.AUTHENTICATE_PATH in message
    assert "HTTP 5" in message and "3 attempts" in message


def test_the_total_wait_bounds_retries_as_well_as_the_attempts() -> None:
    retry = RetrySettings(
        max_attempts=100,
        max_total_wait_seconds=0.5,
        backoff_initial_seconds=0.2,
        backoff_max_seconds=0.4,
    )
    with sandbox(p5xx=1.0) as server, make_client(server.base_url, retry=retry) as client:
        with pytest.raises(RetriesExhaustedError) as raised:
            client.lead_types()
    assert raised.value.attempts < 100


def test_a_refused_connection_is_a_clear_error() -> None:
    retry = RetrySettings(max_attempts=2, backoff_initial_seconds=0.01)
    with make_client("http://127.0.0.1:9", retry=retry) as client:
        with pytest.raises(RetriesExhaustedError, match=r"Connection refused|connection error"):
            client.lead_types()


@pytest.fixture
def html_server() -> Iterator[str]:
    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html><body>Welcome to nginx</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve(Html) as base_url:
        yield base_url


@contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on loopback answering with ``handler``; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_base_url_that_answers_html_is_a_clear_error_at_once(html_server: str) -> None:
    with make_client(html_server) as client, pytest.raises(MalformedResponseError, match="HTML"):
        client.lead_types()
    assert client.stats.retries == 0


def test_an_api_that_refuses_every_fresh_token_fails_the_call_after_a_few_logins() -> None:
    logins: list[int] = []

    class RefusesEveryToken(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the login works...
            logins.append(1)
            self._answer(200, {contract.LOGIN_TOKEN: f"token-{len(logins)}"})

        def do_GET(self) -> None:  # ...but no call is ever authorized
            self._answer(401, {contract.ERROR_MESSAGE: "Authorization has been denied"})

        def _answer(self, status: int, payload: dict[str, str]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve(RefusesEveryToken) as base_url, make_client(base_url) as client:
        with pytest.raises(AuthorizationError, match="refused GET /api/LeadTypes even after 3"):
            client.lead_types()
    assert len(logins) == 1 + MAX_RELOGINS_PER_CALL


def test_a_token_used_up_by_concurrent_pages_is_renewed_as_often_as_needed() -> None:
    """Tokens good for 2 calls, 8 pages in flight: most refusals hit tokens that worked."""
    with sandbox(leads_per_day=60, token_uses=2) as server:
        with make_client(server.base_url, page_size=5, max_concurrent_requests=8) as client:
            assert_equals_truth(server, client, report=contract.REPORTS_BY_NAME["all_actions"])
            stats = client.stats
            assert stats.logins >= stats.pages / 2  # a token serves two calls at most
        assert server.fault_counts["token_expired"] > 0


def test_counters_describe_the_work_done() -> None:
    with sandbox(leads_per_day=30) as server, make_client(server.base_url, page_size=10) as client:
        rows = assert_equals_truth(server, client)
        stats = client.stats.as_dict()
    assert stats["rows"] == len(rows)
    assert stats["requests"] == stats["pages"] + stats["logins"] + 0
    assert stats["bytes_received"] > 0


def test_no_secret_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with sandbox(leads_per_day=20, token_uses=2, p5xx=0.2) as server:
        with make_client(server.base_url, page_size=5) as client:
            assert_equals_truth(server, client)
            assert_equals_truth(server, client, report=contract.REPORTS_BY_NAME["all_actions"])
            text = caplog.text + repr(client) + repr(client.stats)
        tokens = server.issued_tokens
    assert len(tokens) > 3  # tokens die every two calls: many were issued
    assert SECRET not in text
    leaked = [token for token in tokens if token in text]  # every token, not only the last
    assert not leaked


# --- rows that leave a window while it is paged ---------------------------------------
def first_read_truth(server, report, lead_type, start, end, before: int) -> list[dict]:
    """Each row as a client that read it first saw it: the truth at version ``before``,
    plus the rows of the final truth that were not in it yet. Rows that left the window
    after they were read stay, as read; every row in the final truth is there."""
    old = truth_rows(server, report, lead_type, start, end, before)
    known = by_keys(report, old)
    new = by_keys(report, truth_rows(server, report, lead_type, start, end))
    return old + [row for key, row in new.items() if key not in known]


def test_a_row_that_leaves_its_window_after_the_first_page_takes_no_other_row_with_it() -> None:
    """~1,500 leads, Take=500: a lead read on the first page is deleted before the second
    is fetched. Every later offset shifts back by one, so the row at the next page
    boundary would be skipped while the count of distinct rows still matched."""
    end = DAY + timedelta(days=1)
    with sandbox(leads_per_day=1_500) as server:
        with make_client(server.base_url, page_size=500) as client:
            pages = client.iter_report_pages(ALL_LEADS, 1, DAY, end)
            first = next(pages)
            (left,) = server.data.change_leads(1, [first[100][contract.LEAD_UID]], DELETED)
            got = [canonical_record(ALL_LEADS, r) for page in [first, *pages] for r in page]
        final = {row[contract.LEAD_UID] for row in truth_rows(server, ALL_LEADS, 1, DAY, end)}
        read = [row[contract.LEAD_UID] for row in got]
        assert len(read) == len(set(read))
        assert final - set(read) == set(), "rows of the window were never read"
        assert set(read) == final | {left.lead_uid}
        assert sorted(got, key=repr) == sorted(
            first_read_truth(server, ALL_LEADS, 1, DAY, end, before=0), key=repr
        )
        assert client.stats.window_rereads >= 1


def assert_read_the_truth_as_it_changed(
    server, report: contract.Report, lead_type: int, start: datetime, end: datetime, got: list
) -> None:
    """Nothing lost, nothing twice, nothing made up: every row of the final truth was
    read; each row read is the truth of its key at some data version (a row read before
    it left its window stays as it was read)."""

    read = by_keys(report, got)
    assert len(read) == len(got), "a row was read twice"
    versions = [
        by_keys(report, truth_rows(server, report, lead_type, start, end, version))
        for version in range(server.data.version + 1)
    ]
    lost = versions[-1].keys() - read.keys()
    assert not lost, f"{report.name}: rows of the window never read: {sorted(lost)[:5]}"
    made_up = [key for key, row in read.items() if all(v.get(key) != row for v in versions)]
    assert not made_up, f"{report.name}: rows that were never the truth: {made_up[:5]}"


@pytest.mark.parametrize("report", PAGED, ids=lambda report: report.name)
@pytest.mark.parametrize("concurrency", [1, 8])
def test_a_row_leaving_after_the_first_page_loses_nothing_in_any_paged_report(
    report: contract.Report, concurrency: int
) -> None:
    """A lead deleted (All Leads, All Actions, Branch Lead Count), updated out of its past
    day (Last Updated Leads) or reopened (Closed Leads) right after the first page."""
    end = DAY + timedelta(days=1)
    page_size = 2 if report.pull is contract.Pull.DAILY_AGGREGATE else 7
    with sandbox(leads_per_day=60) as server:
        options = {"page_size": page_size, "max_concurrent_requests": concurrency}
        with make_client(server.base_url, **options) as client:
            pages = client.iter_report_pages(report, 2, DAY, end)
            first = next(pages)
            changes = server.data.remove_from_window(report, 2, DAY, end, 0, report.name)
            got = [canonical_record(report, r) for page in [first, *pages] for r in page]
        assert changes, "no row left the window"
        assert_read_the_truth_as_it_changed(server, report, 2, DAY, end, got)
        before = by_keys(report, truth_rows(server, report, 2, DAY, end, 0))
        after = by_keys(report, truth_rows(server, report, 2, DAY, end))
        assert before.keys() - after.keys(), "the change made no row leave"
        assert client.stats.window_rereads >= 1


@pytest.mark.parametrize("report", PAGED, ids=lambda report: report.name)
def test_rows_leaving_and_rows_arriving_at_random_while_paging_lose_nothing(
    report: contract.Report,
) -> None:
    """The sandbox's premove fault alone and mixed with offset drift, pages concurrent."""
    end = DAY + timedelta(days=2)
    page_size = 2 if report.pull is contract.Pull.DAILY_AGGREGATE else 9
    for faults in ({"premove": 0.3}, {"premove": 0.3, "pdrift": 0.3}):
        with sandbox(leads_per_day=60, **faults) as server:
            with make_client(
                server.base_url, page_size=page_size, max_concurrent_requests=4
            ) as client:
                got = read_all(client, report, 3, DAY, end)
            assert server.fault_counts["row_left"] >= 1, faults
            assert_read_the_truth_as_it_changed(server, report, 3, DAY, end, got)


def by_keys(report: contract.Report, rows: list[dict]) -> dict[tuple, dict]:
    return {tuple(row[name] for name in report.key): row for row in rows}


# --- token renewal and failures under concurrent pages ----------------------------------
def test_a_token_dying_under_concurrent_pages_is_renewed_by_one_login_at_a_time() -> None:
    """Tokens good for 10 calls, 8 pages in flight: when a token dies, every page in flight
    is refused at once, and one login serves them all (not one login per page)."""
    with sandbox(leads_per_day=400, token_uses=10, latency_ms=3) as server:
        with make_client(server.base_url, page_size=5, max_concurrent_requests=8) as client:
            assert_equals_truth(server, client)
            data_calls = client.stats.requests - client.stats.logins
        logins = len(server.issued_tokens)
        assert logins == client.stats.logins
        # each token serves 10 calls; a burst would log in once per refused page instead
        assert logins <= -(-data_calls // 10) + 1, (logins, data_calls)


@pytest.mark.parametrize("refused", [4, 12], ids=["the next page", "a later page"])
def test_a_page_that_fails_for_good_stops_the_retries_of_the_pages_in_flight(
    refused: int,
) -> None:
    """One page is refused (400) while the other pages are answered 503 again and again:
    the read fails at once with the 400 (even while the pages before the refused one are
    still being retried), and the other pages stop retrying."""
    attempts: dict[int, int] = {}
    lock = threading.Lock()

    class OnePageRefused(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(200, {contract.LOGIN_TOKEN: "token"})

        def do_GET(self) -> None:
            skip = int(self.path.split(f"{contract.PARAM_SKIP}=")[1].split("&")[0])
            with lock:
                attempts[skip] = attempts.get(skip, 0) + 1
            if skip == 0:
                rows = [{contract.LEAD_UID: n, contract.DATE_ADDED: None} for n in range(5)]
                self._answer(200, {contract.ENVELOPE_TOTAL: 100, contract.ENVELOPE_RESULTS: rows})
            elif skip == refused:
                time.sleep(0.2)  # the others are retrying by now
                self._answer(400, {contract.ERROR_MESSAGE: "The request is invalid."})
            else:
                self._answer(503, {contract.ERROR_MESSAGE: "The service is unavailable."})

        def _answer(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    retry = RetrySettings(max_attempts=8, backoff_initial_seconds=0.3, backoff_max_seconds=1)
    with serve(OnePageRefused) as base_url:
        with make_client(base_url, page_size=5, max_concurrent_requests=4, retry=retry) as c:
            with pytest.raises(SalesExecRequestError, match="HTTP 400"):
                list(c.iter_report_pages(ALL_LEADS, 1, DAY, DAY + timedelta(days=1)))
    others = {skip: count for skip, count in attempts.items() if skip not in (0, refused)}
    assert others, "no other page was in flight"
    # without the stop, each would run its 8 attempts (several seconds of backoff)
    assert max(others.values()) <= 2, others


def test_a_window_that_changes_during_every_read_is_read_a_bounded_number_of_times_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every page after the first makes a row leave: no pass can settle. The client gives
    up after its re-reads and warns, naming the window; what it read is still true."""
    end = DAY + timedelta(days=1)
    with sandbox(leads_per_day=1_200, premove=1.0) as server:
        with make_client(server.base_url, page_size=500, max_window_rereads=2) as client:
            got = read_all(client, ALL_LEADS, 1, DAY, end)
        assert client.stats.window_rereads == 2
        assert len({row[contract.LEAD_UID] for row in got}) == len(got)
        ever = {
            row[contract.LEAD_UID]
            for version in range(server.data.version + 1)
            for row in truth_rows(server, ALL_LEADS, 1, DAY, end, version)
        }
        assert {row[contract.LEAD_UID] for row in got} <= ever
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("still changed during each of 2 re-reads" in text for text in warnings), warnings
    assert any("LeadTypeUID=1" in text for text in warnings)


# --- body decoding: orjson where it reads exactly what json.loads reads -------------------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits too
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _same(left: object, right: object) -> bool:
    """Equal, NaN included (repr tells NaN, -0.0 and types apart)."""
    return repr(left) == repr(right)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES, st.booleans())
def test_page_bodies_decode_exactly_as_json_loads_does(value: object, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _same(decode_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"LeadUID": 123456789012345678901234567890}',  # orjson: a float
        b'{"LeadUID": -9223372036854775809}',  # below int64: orjson: a float
        b'{"LeadUID": 18446744073709551615}',
        b'{"Score": NaN, "Other": -Infinity}',  # orjson refuses these
        b'{"Big": 1e400}',
        b'{"Text": "\\ud800"}',  # a lone surrogate
        b'\xef\xbb\xbf{"A": 1}',  # a byte-order mark
        b'{"A": 1, "A": 2}',
    ],
)
def test_bodies_orjson_reads_differently_decode_as_json_loads_does(body: bytes) -> None:
    assert _same(decode_json(body), json.loads(body))


@pytest.mark.parametrize("body", [b'{"Results": [', b"", b"<html>", b'{"A": 1} x'])
def test_a_body_neither_decoder_reads_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(body)
