"""The SalesExec sandbox speaks the API contract over real HTTP, serves deterministic data
that matches its ground truth, and injects every fault at its configured rate."""

from __future__ import annotations

import http.client
import json
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from salesexec_assets.api.contract import (
    AUTH_HEADER,
    AUTHENTICATE_PATH,
    BRANCH_UID,
    CLOSED,
    DATE_ADDED,
    ENVELOPE_RESULTS,
    ENVELOPE_SKIP,
    ENVELOPE_TAKE,
    ENVELOPE_TOTAL,
    ERROR_MESSAGE,
    LAST_UPDATED,
    LEAD_COUNT,
    LEAD_FIELDS_OBJECT,
    LEAD_TYPES_PATH,
    LEAD_UID,
    LIFE_CYCLE_STAGE,
    LOGIN_PASSWORD,
    LOGIN_TOKEN,
    LOGIN_USERNAME,
    PARAM_END,
    PARAM_LEAD_TYPE,
    PARAM_SKIP,
    PARAM_START,
    PARAM_TAKE,
    REPORTS,
    REPORTS_BY_NAME,
    RETRY_AFTER_HEADER,
    TAKE_MAX,
    FieldType,
    Pull,
    Report,
)
from salesexec_assets.api.timestamps import format_api_instant, parse_api_timestamp
from salesexec_assets.sandbox import Faults, SandboxConfig, SandboxData, SandboxServer, run_sandbox
from salesexec_assets.sandbox.catalog import DRIFT_NEW_FIELD, DRIFT_NOT_AVAILABLE
from salesexec_assets.sandbox.state import LEAVES_BY, ChangeKind

USER, PASSWORD = "sandbox", "sandbox"
DAY = datetime(2026, 3, 10)
WINDOW = (DAY, DAY + timedelta(days=3))
PAGED_REPORTS = [report for report in REPORTS if report.paged]
ALL_LEADS = REPORTS_BY_NAME["all_leads"]
ALL_ACTIONS = REPORTS_BY_NAME["all_actions"]
BRANCH_LEAD_COUNT = REPORTS_BY_NAME["branch_lead_count"]
AWAITING = next(report for report in REPORTS if report.pull is Pull.NOW)
MORTGAGE, INSURANCE, SOLAR = 1, 2, 3


# --- helpers ------------------------------------------------------------------------------
def login(base_url: str, username: str = USER, password: str = PASSWORD) -> requests.Session:
    """A session that carries a fresh token."""
    session = requests.Session()
    answer = session.post(
        base_url + AUTHENTICATE_PATH, json={LOGIN_USERNAME: username, LOGIN_PASSWORD: password}
    )
    assert answer.status_code == 200, answer.text
    session.headers[AUTH_HEADER] = answer.json()[LOGIN_TOKEN]
    return session


def window_params(
    lead_type: int, start: datetime, end: datetime, skip: int = 0, take: int = 100
) -> dict[str, Any]:
    return {
        PARAM_LEAD_TYPE: lead_type,
        PARAM_START: format_api_instant(start),
        PARAM_END: format_api_instant(end),
        PARAM_SKIP: skip,
        PARAM_TAKE: take,
    }


def read_all(
    session: requests.Session, base_url: str, report: Report, lead_type: int, take: int
) -> list[dict[str, Any]]:
    """Every served record of a report in WINDOW, page by page, as served."""
    records: list[dict[str, Any]] = []
    while True:
        params = window_params(lead_type, *WINDOW, skip=len(records), take=take)
        page = session.get(base_url + report.path, params=params).json()
        records += page[ENVELOPE_RESULTS]
        if len(records) >= page[ENVELOPE_TOTAL]:
            return records


def canonical(record: dict[str, Any], report: Report) -> dict[str, Any]:
    """A served record with its timestamps parsed: comparable with the ground truth."""
    return {
        name: parse_api_timestamp(value)
        if report.record.get(name) is FieldType.TIMESTAMP and value is not None
        else value
        for name, value in record.items()
    }


def timestamp_fields(report: Report) -> list[str]:
    return [name for name, kind in report.record.items() if kind is FieldType.TIMESTAMP]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """One fault-free sandbox for the tests that only read."""
    with run_sandbox(leads_per_day=20) as server:
        yield server


@pytest.fixture(scope="module")
def session(sandbox: SandboxServer) -> requests.Session:
    return login(sandbox.base_url)


# --- authentication -----------------------------------------------------------------------
def test_login_with_the_right_credentials_returns_a_guid_token(sandbox: SandboxServer) -> None:
    answer = requests.post(
        sandbox.base_url + AUTHENTICATE_PATH,
        json={LOGIN_USERNAME: USER, LOGIN_PASSWORD: PASSWORD},
    )
    assert answer.status_code == 200
    token = answer.json()[LOGIN_TOKEN]
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", token
    )


def test_login_with_a_wrong_password_is_401_with_a_message(sandbox: SandboxServer) -> None:
    answer = requests.post(
        sandbox.base_url + AUTHENTICATE_PATH,
        json={LOGIN_USERNAME: USER, LOGIN_PASSWORD: "wrong"},
    )
    assert answer.status_code == 401
    assert answer.json() == {ERROR_MESSAGE: "Invalid user name or password."}


@pytest.mark.parametrize("token", [None, "not-a-token", "00000000-0000-4000-8000-000000000000"])
def test_calls_without_a_live_token_are_denied(sandbox: SandboxServer, token: str | None) -> None:
    headers = {} if token is None else {AUTH_HEADER: token}
    answer = requests.get(sandbox.base_url + LEAD_TYPES_PATH, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {ERROR_MESSAGE: "Authorization has been denied for this request."}


def test_a_token_expires_after_its_number_of_uses_and_a_new_login_works() -> None:
    with run_sandbox(leads_per_day=2, token_uses=3) as server:
        session = login(server.base_url)
        statuses = [session.get(server.base_url + LEAD_TYPES_PATH).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 401, 401]
        assert server.fault_counts["token_expired"] == 2
        assert login(server.base_url).get(server.base_url + LEAD_TYPES_PATH).status_code == 200


# --- validation ---------------------------------------------------------------------------
def test_take_above_500_is_400_with_a_message(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    params = window_params(MORTGAGE, *WINDOW, take=TAKE_MAX + 1)
    answer = session.get(sandbox.base_url + ALL_LEADS.path, params=params)
    assert answer.status_code == 400
    assert PARAM_TAKE in answer.json()[ERROR_MESSAGE]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (DAY, DAY + timedelta(days=31, microseconds=1)),  # longer than 31 days
        (DAY, DAY),  # EndDate <= StartDate
        (DAY + timedelta(days=1), DAY),
    ],
)
def test_a_window_that_is_empty_or_longer_than_31_days_is_400(
    sandbox: SandboxServer, session: requests.Session, start: datetime, end: datetime
) -> None:
    answer = session.get(sandbox.base_url + ALL_LEADS.path, params=window_params(1, start, end))
    assert answer.status_code == 400
    assert answer.json()[ERROR_MESSAGE]


def test_a_window_of_exactly_31_days_is_allowed(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    params = window_params(MORTGAGE, DAY, DAY + timedelta(days=31), take=1)
    assert session.get(sandbox.base_url + ALL_LEADS.path, params=params).status_code == 200


def test_an_unknown_lead_type_is_404_naming_it_and_a_non_integer_is_400(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    unknown = session.get(sandbox.base_url + ALL_LEADS.path, params=window_params(99, *WINDOW))
    assert unknown.status_code == 404
    assert "99" in unknown.json()[ERROR_MESSAGE]
    params = {**window_params(MORTGAGE, *WINDOW), PARAM_LEAD_TYPE: "one"}
    assert session.get(sandbox.base_url + ALL_LEADS.path, params=params).status_code == 400


def test_an_unknown_path_is_404_json(sandbox: SandboxServer, session: requests.Session) -> None:
    answer = session.get(sandbox.base_url + "/api/NoSuchThing")
    assert answer.status_code == 404
    assert ERROR_MESSAGE in answer.json()


def test_start_and_end_dates_are_accepted_in_every_timestamp_form(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    """StartDate/EndDate written with an offset or without a zone mean the same instants."""
    forms = [
        ("2026-03-10T00:00:00Z", "2026-03-11T00:00:00.0000000Z"),
        ("2026-03-09T19:00:00-05:00", "2026-03-11T05:30:00+05:30"),
        ("2026-03-10T00:00:00", "2026-03-11T00:00:00.000"),
    ]
    totals = set()
    for start, end in forms:
        params = {PARAM_LEAD_TYPE: MORTGAGE, PARAM_START: start, PARAM_END: end}
        answer = session.get(sandbox.base_url + ALL_LEADS.path, params=params)
        assert answer.status_code == 200, answer.text
        totals.add(answer.json()[ENVELOPE_TOTAL])
    assert totals == {20}


# --- data and ground truth ----------------------------------------------------------------
def test_lead_types_are_listed_in_the_list_envelope(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    page = session.get(sandbox.base_url + LEAD_TYPES_PATH).json()
    assert page[ENVELOPE_TOTAL] == 3
    assert page[ENVELOPE_SKIP] == 0
    assert page[ENVELOPE_RESULTS] == SandboxData(sandbox.config).lead_types()


@pytest.mark.parametrize("report", PAGED_REPORTS, ids=lambda report: report.name)
def test_paging_over_many_pages_returns_exactly_the_truth(
    sandbox: SandboxServer, session: requests.Session, report: Report
) -> None:
    served = read_all(session, sandbox.base_url, report, INSURANCE, take=7)
    truth = sandbox.truth(report.name, INSURANCE, *WINDOW)
    assert len(served) > 7 * 2 or report.pull is Pull.DAILY_AGGREGATE
    assert [canonical(record, report) for record in served] == truth


def test_pages_echo_skip_and_take_and_the_total(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    params = window_params(SOLAR, *WINDOW, skip=5, take=4)
    page = session.get(sandbox.base_url + ALL_LEADS.path, params=params).json()
    assert (page[ENVELOPE_SKIP], page[ENVELOPE_TAKE], page[ENVELOPE_TOTAL]) == (5, 4, 60)
    assert len(page[ENVELOPE_RESULTS]) == 4


@pytest.mark.parametrize("report", PAGED_REPORTS, ids=lambda report: report.name)
def test_results_are_ordered_by_the_window_field_then_the_id(
    sandbox: SandboxServer, session: requests.Session, report: Report
) -> None:
    served = [canonical(r, report) for r in read_all(session, sandbox.base_url, report, 1, 50)]
    order = [
        (
            *([record[report.window_field]] if report.window_field else []),
            *map(record.get, report.key),
        )
        for record in served
    ]
    assert order == sorted(order)
    assert len(set(order)) == len(order)


def test_the_same_config_gives_identical_data_and_another_seed_does_not() -> None:
    first, second = (
        SandboxData(SandboxConfig(leads_per_day=5)),
        SandboxData(SandboxConfig(leads_per_day=5)),
    )
    for report in PAGED_REPORTS:
        for lead_type in (MORTGAGE, INSURANCE, SOLAR):
            assert first.rows(report, lead_type, *WINDOW) == second.rows(report, lead_type, *WINDOW)
    other = SandboxData(SandboxConfig(seed=8, leads_per_day=5))
    assert other.truth(ALL_LEADS.name, 1, *WINDOW) != first.truth(ALL_LEADS.name, 1, *WINDOW)
    now = datetime(2026, 3, 10, 12, 30, 15)
    assert first.awaiting_import_count(1, now) == second.awaiting_import_count(1, now)


def test_uids_are_unique_across_the_dataset_and_every_lead_has_a_branch() -> None:
    data = SandboxData(SandboxConfig(leads_per_day=30))
    leads = [r for t in (1, 2, 3) for r in data.truth(ALL_LEADS.name, t, *WINDOW)]
    actions = [r for t in (1, 2, 3) for r in data.truth(ALL_ACTIONS.name, t, *WINDOW)]
    assert len({lead[LEAD_UID] for lead in leads}) == len(leads) == 3 * 30 * 3
    action_key = ALL_ACTIONS.key[0]
    assert len({action[action_key] for action in actions}) == len(actions) > len(leads)
    assert all(lead[BRANCH_UID] is not None for lead in leads)
    assert {len(lead[LEAD_FIELDS_OBJECT]) for lead in leads} == {7}


def test_every_day_has_a_lead_at_midnight_and_at_its_last_microsecond() -> None:
    data = SandboxData(SandboxConfig(leads_per_day=4))
    for day_number in range(3):
        start = DAY + timedelta(days=day_number)
        added = {
            lead[DATE_ADDED]
            for lead in data.truth(ALL_LEADS.name, SOLAR, start, start + timedelta(days=1))
        }
        assert start in added
        assert start + timedelta(days=1, microseconds=-1) in added


def test_every_timestamp_form_appears_and_parses_to_the_truth(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    forms = {
        "7 digits + Z": re.compile(r"\.\d{7}Z$"),
        "3 digits + Z": re.compile(r"\.\d{3}Z$"),
        "0 digits + Z": re.compile(r":\d{2}Z$"),
        "offset": re.compile(r"[+-]\d{2}:\d{2}$"),
        "no zone": re.compile(r"T\d{2}:\d{2}:\d{2}(\.\d+)?$"),
    }
    seen: dict[str, int] = dict.fromkeys(forms, 0)
    for report in (ALL_LEADS, ALL_ACTIONS):
        served = read_all(session, sandbox.base_url, report, MORTGAGE, take=TAKE_MAX)
        truth = sandbox.truth(report.name, MORTGAGE, *WINDOW)
        assert len(served) == len(truth)
        for record, expected in zip(served, truth, strict=True):
            for name in timestamp_fields(report):
                text = record[name]
                if text is None:
                    continue
                assert parse_api_timestamp(text) == expected[name], (name, text)
                matching = [form for form, pattern in forms.items() if pattern.search(text)]
                assert len(matching) == 1, text
                seen[matching[0]] += 1
    assert all(seen.values()), seen
    assert max(seen, key=seen.__getitem__) == "7 digits + Z"


def test_schema_drift_adds_a_field_and_turns_a_number_into_text_from_its_day() -> None:
    drift_day = date(2026, 3, 11)
    with run_sandbox(leads_per_day=12, schema_drift_from=drift_day) as server:
        served = read_all(login(server.base_url), server.base_url, ALL_LEADS, MORTGAGE, take=50)
    before = [
        r[LEAD_FIELDS_OBJECT]
        for r in served
        if parse_api_timestamp(r[DATE_ADDED]).date() < drift_day
    ]
    after = [
        r[LEAD_FIELDS_OBJECT]
        for r in served
        if parse_api_timestamp(r[DATE_ADDED]).date() >= drift_day
    ]
    assert len(before) == 12 and len(after) == 24
    new_field, number = DRIFT_NEW_FIELD, "LoanAmount"
    assert all(new_field not in f and isinstance(f[number], int) for f in before)
    assert all(new_field in f and isinstance(f[number], str) for f in after)
    assert any(f[number].endswith(" USD") for f in after)
    assert any(f[number] == DRIFT_NOT_AVAILABLE for f in after) or len(after) < 20
    undrifted = SandboxData(SandboxConfig(leads_per_day=12))
    assert [r[LEAD_UID] for r in served] == [
        r[LEAD_UID] for r in undrifted.truth(ALL_LEADS.name, MORTGAGE, *WINDOW)
    ]


def test_branch_lead_count_counts_the_leads_added_per_branch() -> None:
    data = SandboxData(SandboxConfig(leads_per_day=25))
    counts = data.truth(BRANCH_LEAD_COUNT.name, INSURANCE, *WINDOW)
    assert sum(row[LEAD_COUNT] for row in counts) == 25 * 3
    assert all(row[LEAD_COUNT] > 0 for row in counts)
    leads = data.truth(ALL_LEADS.name, INSURANCE, *WINDOW)
    for row in counts:
        assert row[LEAD_COUNT] == sum(1 for lead in leads if lead[BRANCH_UID] == row[BRANCH_UID])


def test_awaiting_import_count_is_a_snapshot_as_of_now(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    answer = session.get(sandbox.base_url + AWAITING.path, params={PARAM_LEAD_TYPE: SOLAR})
    served = canonical(answer.json(), AWAITING)
    as_of = served[timestamp_fields(AWAITING)[0]]
    assert abs(datetime.now(timezone.utc).replace(tzinfo=None) - as_of) < timedelta(minutes=1)
    assert served == SandboxData(sandbox.config).awaiting_import_count(SOLAR, as_of)


# --- faults -------------------------------------------------------------------------------
def _statuses(server: SandboxServer, count: int) -> list[requests.Response]:
    session = login(server.base_url)
    return [session.get(server.base_url + LEAD_TYPES_PATH) for _ in range(count)]


def test_429_fires_at_its_rate_with_retry_after_in_seconds_or_as_a_date() -> None:
    with run_sandbox(leads_per_day=1, p429=0.3, retry_after_seconds=0) as server:
        session = requests.Session()
        answers = [
            session.post(
                server.base_url + AUTHENTICATE_PATH,
                json={LOGIN_USERNAME: USER, LOGIN_PASSWORD: PASSWORD},
            )
            for _ in range(300)
        ]
        limited = [a for a in answers if a.status_code == 429]
        assert 0.2 < len(limited) / 300 < 0.4
        assert server.fault_counts["429"] == len(limited)
        assert {a.status_code for a in answers} == {200, 429}
    retry_afters = [a.headers[RETRY_AFTER_HEADER] for a in limited]
    assert "0" in retry_afters
    dates = [value for value in retry_afters if not value.isdigit()]
    assert dates and all(parsedate_to_datetime(value).tzinfo for value in dates)


def test_5xx_fires_at_its_rate_with_a_json_message() -> None:
    with run_sandbox(leads_per_day=1, p5xx=0.2) as server:
        answers = _statuses(server, 300)
        failed = [a for a in answers if a.status_code >= 500]
        assert 0.12 < len(failed) / 300 < 0.28
        assert server.fault_counts["5xx"] == len(failed)
    assert {a.status_code for a in failed} == {500, 502, 503, 504}
    assert all(a.json()[ERROR_MESSAGE] for a in failed)


def test_truncated_bodies_are_invalid_json_with_a_matching_content_length() -> None:
    with run_sandbox(leads_per_day=1, ptruncate=0.25) as server:
        session = requests.Session()
        while True:  # the login itself may be cut short: retry it
            answer = session.post(
                server.base_url + AUTHENTICATE_PATH,
                json={LOGIN_USERNAME: USER, LOGIN_PASSWORD: PASSWORD},
            )
            try:
                session.headers[AUTH_HEADER] = answer.json()[LOGIN_TOKEN]
                break
            except ValueError:
                continue
        answers = [session.get(server.base_url + LEAD_TYPES_PATH) for _ in range(300)]
        truncated = 0
        for answer in answers:
            assert answer.status_code == 200
            assert int(answer.headers["Content-Length"]) == len(answer.content)
            try:
                json.loads(answer.content)
            except ValueError:
                truncated += 1
        assert 0.15 < truncated / 300 < 0.35
        assert server.fault_counts["truncated"] >= truncated


def test_a_dropped_connection_announces_the_whole_body_and_sends_only_part_of_it() -> None:
    with run_sandbox(leads_per_day=1) as server:
        token = login(server.base_url).headers[AUTH_HEADER]
        server.set_faults(Faults(pdrop=1.0))
        host, port = server.base_url.removeprefix("http://").split(":")
        partial = []
        for _ in range(20):
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("GET", LEAD_TYPES_PATH, headers={AUTH_HEADER: token})
            answer = connection.getresponse()
            announced = int(answer.getheader("Content-Length"))
            with pytest.raises(http.client.IncompleteRead) as cut:
                answer.read()
            assert answer.status == 200
            partial.append((len(cut.value.partial), announced))
            connection.close()
        assert all(sent < announced for sent, announced in partial)
        assert server.fault_counts["dropped"] == 20
        # a drop is not a cut body: a client that trusts Content-Length notices it
        assert server.fault_counts["truncated"] == 0


def test_latency_is_added_to_every_request() -> None:
    with run_sandbox(leads_per_day=1, latency_ms=40) as server:
        started = time.perf_counter()
        _statuses(server, 5)
        assert time.perf_counter() - started >= 6 * 0.04
        assert server.fault_counts["delayed"] == 6


def test_faults_can_be_changed_while_the_server_runs() -> None:
    with run_sandbox(leads_per_day=1) as server:
        session = login(server.base_url)
        server.set_faults(Faults(p5xx=1.0))
        assert session.get(server.base_url + LEAD_TYPES_PATH).status_code >= 500
        server.set_faults(Faults())
        assert session.get(server.base_url + LEAD_TYPES_PATH).status_code == 200
        assert server.request_count == 3


def test_offset_drift_inserts_a_lead_that_shows_in_truth_and_shifts_later_pages() -> None:
    start, end = DAY + timedelta(hours=1), DAY + timedelta(days=1, hours=1)
    with run_sandbox(leads_per_day=10, pdrift=1.0) as server:
        session = login(server.base_url)
        url = server.base_url + ALL_LEADS.path
        before = server.truth(ALL_LEADS.name, MORTGAGE, start, end)
        counts_before = server.truth(BRANCH_LEAD_COUNT.name, MORTGAGE, start, end)
        first = session.get(url, params=window_params(MORTGAGE, start, end, 0, 5)).json()
        second = session.get(url, params=window_params(MORTGAGE, start, end, 5, 5)).json()
        assert server.fault_counts["drift_inserted"] == 1
        # The inserted lead sorts first, so the second page starts with the first page's last.
        assert second[ENVELOPE_RESULTS][0] == first[ENVELOPE_RESULTS][-1]
        assert second[ENVELOPE_TOTAL] == first[ENVELOPE_TOTAL] + 1

        after = server.truth(ALL_LEADS.name, MORTGAGE, start, end)
        inserted = after[0]
        assert after[1:] == before
        assert inserted[DATE_ADDED] == inserted[LAST_UPDATED] == start
        assert inserted[LEAD_UID] not in {lead[LEAD_UID] for lead in before}
        counts_after = server.truth(BRANCH_LEAD_COUNT.name, MORTGAGE, start, end)
        assert (
            sum(r[LEAD_COUNT] for r in counts_after)
            == sum(r[LEAD_COUNT] for r in counts_before) + 1
        )

        again = session.get(url, params=window_params(MORTGAGE, start, end, 0, 5)).json()
        assert again[ENVELOPE_RESULTS][0][LEAD_UID] == inserted[LEAD_UID]
        assert SandboxData(server.config).truth(ALL_LEADS.name, MORTGAGE, start, end) == before


def test_run_sandbox_stops_the_server_even_on_error() -> None:
    with pytest.raises(RuntimeError, match="boom"), run_sandbox(leads_per_day=1) as server:
        base_url = server.base_url
        raise RuntimeError("boom")
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + LEAD_TYPES_PATH, timeout=2)


# --- the command line ---------------------------------------------------------------------
def test_the_cli_serves_the_same_data_until_terminated() -> None:
    password = "cli-secret-pw"
    command = [
        sys.executable, "-m", "salesexec_assets.sandbox.cli", "--port", "0", "--seed", "3",
        "--leads-per-day", "4", "--password", password, "--p5xx", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready and process.stdout is not None, "the CLI printed no base URL"
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        served = read_all(login(base_url, password=password), base_url, ALL_LEADS, SOLAR, 100)
        truth = SandboxData(SandboxConfig(seed=3, leads_per_day=4)).truth(
            ALL_LEADS.name, SOLAR, *WINDOW
        )
        assert [canonical(record, ALL_LEADS) for record in served] == truth
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        assert password not in stdout + stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- rows leaving a window mid-read (the premove fault) -------------------------------
def keyed(report: Report, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(row[name] for name in report.key): row for row in rows}


@pytest.mark.parametrize("report", PAGED_REPORTS, ids=lambda report: report.name)
def test_a_row_served_on_the_first_page_leaves_and_later_pages_shift_back(report: Report) -> None:
    take = 2 if report.pull is Pull.DAILY_AGGREGATE else 5
    with run_sandbox(leads_per_day=20, premove=1.0) as server:
        session = login(server.base_url)
        url = server.base_url + report.path
        first = session.get(url, params=window_params(INSURANCE, *WINDOW, 0, take)).json()
        before = server.truth(report.name, INSURANCE, *WINDOW)
        second = session.get(url, params=window_params(INSURANCE, *WINDOW, take, take)).json()
        after = server.truth(report.name, INSURANCE, *WINDOW)
        assert server.fault_counts["row_left"] == 1
        changes = server.data_changes
        assert {(c.version, c.report_name, c.kind) for c in changes} == {
            (1, report.name, LEAVES_BY[report.window_field])
        }
        # the truth as of before the change is still known, and the change is seen after
        assert server.truth(report.name, INSURANCE, *WINDOW, as_of=0) == before
        assert server.truth(report.name, INSURANCE, *WINDOW, as_of=1) == after
        gone = keyed(report, before).keys() - keyed(report, after).keys()
        served = keyed(report, [canonical(r, report) for r in first[ENVELOPE_RESULTS]])
        # a deleted lead takes all its actions with it: one of them was served
        assert gone & served.keys(), "the row that left was not one the first page served"
        assert second[ENVELOPE_TOTAL] == len(after) == len(before) - len(gone)
        assert [canonical(r, report) for r in second[ENVELOPE_RESULTS]] == after[take : 2 * take]
        # the row the second page began with before slid onto the first: Skip=take misses it
        assert before[take] in after[:take]


def test_deleted_updated_and_reopened_leads_change_every_report_as_they_would() -> None:
    now = datetime(2026, 4, 20, 9, 30)
    with run_sandbox(leads_per_day=20, clock=lambda: now) as server:
        leads = server.truth(ALL_LEADS.name, SOLAR, *WINDOW)
        closed = [lead for lead in leads if lead[CLOSED] is not None]
        actions = server.truth(ALL_ACTIONS.name, SOLAR, *WINDOW)
        in_window = {lead[LEAD_UID] for lead in leads}
        acted_on = next(a[LEAD_UID] for a in actions if a[LEAD_UID] in in_window)
        deleted, updated = acted_on, next(x[LEAD_UID] for x in leads if x[LEAD_UID] != acted_on)
        reopened = next(x[LEAD_UID] for x in closed if x[LEAD_UID] not in (deleted, updated))
        server.data.change_leads(SOLAR, [deleted], ChangeKind.DELETED, "test")
        server.data.change_leads(SOLAR, [updated], ChangeKind.UPDATED, "test")
        server.data.change_leads(SOLAR, [reopened], ChangeKind.REOPENED, "test")
        assert server.data.version == 3
        now_leads = {x[LEAD_UID]: x for x in server.truth(ALL_LEADS.name, SOLAR, *WINDOW)}
        assert deleted not in now_leads
        assert all(a[LEAD_UID] != deleted for a in server.truth(ALL_ACTIONS.name, SOLAR, *WINDOW))
        counts = server.truth(BRANCH_LEAD_COUNT.name, SOLAR, *WINDOW)
        assert sum(row[LEAD_COUNT] for row in counts) == len(leads) - 1
        assert now_leads[updated][LAST_UPDATED] == now
        today = (datetime(2026, 4, 20), datetime(2026, 4, 21))
        moved = server.truth(REPORTS_BY_NAME["last_updated_leads"].name, SOLAR, *today)
        touched = [now_leads[updated], now_leads[reopened]]
        assert [lead for lead in moved if lead[LAST_UPDATED] == now] == sorted(
            touched, key=lambda lead: lead[LEAD_UID]
        )
        lead = now_leads[reopened]
        assert lead[CLOSED] is None and lead[LAST_UPDATED] == now
        assert lead[LIFE_CYCLE_STAGE] == "Working"
        closed_now = server.truth(REPORTS_BY_NAME["closed_leads"].name, SOLAR, *WINDOW)
        assert reopened not in {x[LEAD_UID] for x in closed_now}
        # each version's truth stays known
        assert server.truth(ALL_LEADS.name, SOLAR, *WINDOW, as_of=0) == leads
        assert deleted not in {
            x[LEAD_UID] for x in server.truth(ALL_LEADS.name, SOLAR, *WINDOW, as_of=1)
        }
        as_of_2 = {x[LEAD_UID]: x for x in server.truth(ALL_LEADS.name, SOLAR, *WINDOW, as_of=2)}
        assert as_of_2[updated][LAST_UPDATED] == now and as_of_2[reopened][CLOSED] is not None
        # and what is served is the truth
        served = read_all(login(server.base_url), server.base_url, ALL_LEADS, SOLAR, 50)
        assert [canonical(r, ALL_LEADS) for r in served] == list(now_leads.values())


# --- the clock: nothing after it is served ------------------------------------------------
def served_instants(server: SandboxServer, start: datetime, end: datetime) -> list[datetime]:
    """Every timestamp the records reports serve for [start, end), all lead types."""
    session = login(server.base_url)
    instants = []
    for report in PAGED_REPORTS:
        for lead_type in (MORTGAGE, INSURANCE, SOLAR):
            params = window_params(lead_type, start, end, take=TAKE_MAX)
            page = session.get(server.base_url + report.path, params=params).json()
            assert page[ENVELOPE_TOTAL] <= TAKE_MAX
            served = [canonical(r, report) for r in page[ENVELOPE_RESULTS]]
            assert served == server.truth(report.name, lead_type, start, end)
            instants += [r[name] for r in served for name in timestamp_fields(report) if r[name]]
    return instants


def test_the_sandbox_never_serves_an_instant_after_its_clock() -> None:
    """With the clock at 14:30 on DAY, leads of the last two weeks (whose history runs up
    to 14 days after they were added) are served as they stood at 14:30."""
    now = DAY + timedelta(hours=14, minutes=30)
    with run_sandbox(leads_per_day=6, clock=lambda: now) as server:
        instants = served_instants(server, DAY - timedelta(days=16), DAY + timedelta(days=2))
        assert instants and max(instants) <= now
        whole = SandboxData(SandboxConfig(leads_per_day=6), clock=lambda: datetime.max)
        generated = whole.truth(ALL_LEADS.name, SOLAR, DAY, DAY + timedelta(days=1))
        today = server.truth(ALL_LEADS.name, SOLAR, DAY, DAY + timedelta(days=1))
        assert [lead[LEAD_UID] for lead in today] == [
            lead[LEAD_UID] for lead in generated if lead[DATE_ADDED] <= now
        ]
        assert 0 < len(today) < len(generated)


def test_today_fills_in_as_the_clock_moves_and_leads_close_when_their_time_comes() -> None:
    clock = [DAY + timedelta(hours=1)]
    window = (DAY - timedelta(days=3), DAY + timedelta(days=1))
    whole = SandboxData(SandboxConfig(leads_per_day=30), clock=lambda: datetime.max)
    closing = [
        lead
        for lead in whole.truth(ALL_LEADS.name, MORTGAGE, *window)
        if lead[CLOSED] is not None and clock[0] < lead[CLOSED] < DAY + timedelta(days=1)
    ]
    assert closing, "no lead closes later that day: pick another day"
    lead = closing[0]
    with run_sandbox(leads_per_day=30, clock=lambda: clock[0]) as server:
        early = {x[LEAD_UID]: x for x in server.truth(ALL_LEADS.name, MORTGAGE, *window)}
        closed_early = server.truth("closed_leads", MORTGAGE, *window)
        clock[0] = lead[CLOSED] + timedelta(minutes=1)
        late = {x[LEAD_UID]: x for x in server.truth(ALL_LEADS.name, MORTGAGE, *window)}
        closed_late = server.truth("closed_leads", MORTGAGE, *window)
    assert len(late) > len(early)  # leads added since came in
    before = early[lead[LEAD_UID]]
    assert before[CLOSED] is None and before[LIFE_CYCLE_STAGE] == "Working"
    assert before[LAST_UPDATED] < lead[CLOSED]
    assert lead[LEAD_UID] not in {x[LEAD_UID] for x in closed_early}
    assert late[lead[LEAD_UID]][CLOSED] == lead[CLOSED]
    assert lead[LEAD_UID] in {x[LEAD_UID] for x in closed_late}
