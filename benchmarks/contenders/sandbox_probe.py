"""The sandbox alone: a client that reads every page of the workload and does nothing.

It parses no JSON (the row count comes from ``TotalCount``, the envelope's first field),
keeps one raw ``http.client`` connection per thread, and reads pages on
``workload.concurrency`` threads (default 4). What it reaches is what the sandbox can
serve; a contender must stay well below it, or the benchmark measures the sandbox.
"""

from __future__ import annotations

import http.client
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import requests

from benchmarks.contenders import Load
from benchmarks.contenders.common import lead_type_uids, login, page_params
from benchmarks.workload import LoadOutput, Workload, report
from salesexec_assets.api import contract

_TOTAL = re.compile(rb'"%s"\s*:\s*(\d+)' % contract.ENVELOPE_TOTAL.encode())
DEFAULT_THREADS = 4
ROWS_PHASE_PREFIX = "rows:"  # phases["rows:all_leads"]: the rows the API holds, per report


class _Reader:
    """One keep-alive connection per thread; GET returns the body's length and its total."""

    def __init__(self, base_url: str, token: str) -> None:
        url = urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._headers = {contract.AUTH_HEADER: token, "Accept": "application/json"}
        self._local = threading.local()

    def get(self, path: str, params: dict[str, object]) -> tuple[int, int]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(
                self._host, self._port, timeout=60
            )
        connection.request("GET", f"{path}?{urlencode(params)}", headers=self._headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
        match = _TOTAL.search(body, 0, 64)
        return len(body), int(match.group(1)) if match else 0


def prepare(workload: Workload, name: str) -> Load:
    """The timed load: every page of the workload, read and thrown away."""

    def load() -> LoadOutput:
        session = requests.Session()
        token = login(session, workload)
        uids = lead_type_uids(session, workload)
        reader = _Reader(workload.base_url, token)
        take = workload.page_size
        series = [
            (name, uid, window)
            for name in workload.reports
            for uid in uids
            for window in workload.windows()
        ]
        rest: list[tuple[str, dict[str, object]]] = []
        rows: dict[str, float] = dict.fromkeys(workload.reports, 0)
        requests_made = 0
        for name, uid, window in series:  # first pages: they tell how many pages follow
            path = report(name).path
            _, total = reader.get(path, page_params(uid, window, 0, take))
            rows[name] += total
            requests_made += 1
            rest += [
                (path, page_params(uid, window, skip, take)) for skip in range(take, total, take)
            ]
            if workload.warm_overlapping:  # ours' pages overlap by one row: other offsets
                step = max(2, take) - 1
                rest += [
                    (path, page_params(uid, window, skip, max(2, take)))
                    for skip in range(step, total - 1, step)
                ]
        threads = workload.concurrency or DEFAULT_THREADS
        with ThreadPoolExecutor(threads) as pool:
            received = sum(size for size, _ in pool.map(lambda call: reader.get(*call), rest))
        requests_made += len(rest) + 2
        return LoadOutput(
            tables=[],
            rows=int(sum(rows.values())),
            client_requests=requests_made,
            phases={
                "megabytes": received / 1e6,
                "threads": threads,
                **{f"{ROWS_PHASE_PREFIX}{name}": count for name, count in rows.items()},
            },
        )

    return load
