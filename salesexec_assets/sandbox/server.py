"""The sandbox as a real HTTP server on loopback, and the context manager tests use.

A ``ThreadingHTTPServer`` speaks HTTP/1.1 with keep-alive, so a client's session reuses
its connection as it would against the real API. Each request passes the transient
faults (latency, 429, 5xx), then the contract's endpoints, then the truncation and
connection-drop faults.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from salesexec_assets.api.contract import AUTH_HEADER
from salesexec_assets.api.overrides import NO_OVERRIDES, ContractOverrides, load_overrides
from salesexec_assets.sandbox.app import SandboxApp
from salesexec_assets.sandbox.config import Faults, SandboxConfig, configure
from salesexec_assets.sandbox.dialect import Dialect
from salesexec_assets.sandbox.faults import FaultInjector
from salesexec_assets.sandbox.messages import (
    JSON_CONTENT_TYPE,
    Request,
    Response,
    error_response,
)
from salesexec_assets.sandbox.state import DataChange, LiveData
from salesexec_assets.sandbox.tokens import TokenState, TokenStore
from salesexec_assets.sandbox.webhooks import SandboxWebhooks

IDLE_CONNECTION_SECONDS = 30


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so that stopping the server really closes them."""

    daemon_threads = True
    block_on_close = False  # an idle keep-alive connection must not hold up stop()

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections, self.connections = self.connections, set()
        for connection in connections:
            with suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer are routine; anything else shows when verbose."""
        if self.sandbox.verbose and not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP into :class:`Request` values and :class:`Response` values into HTTP."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_SECONDS
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every small answer back for about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with suppress(OSError):  # the peer is gone
            super().finish()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        self._send(self.server.sandbox.respond(request))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.drop_after is None:
            self.wfile.write(response.body)
            return
        self.wfile.write(response.body[: response.drop_after])  # then hang up mid-body
        self.wfile.flush()
        self.close_connection = True
        with suppress(OSError):  # the peer may be gone already
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP gets the contract's JSON error shape too."""
        self.close_connection = True
        self._send(error_response(code, message or self.responses.get(code, ("Error",))[0]))

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)


class SandboxServer:
    """The SalesExec sandbox on ``host:port`` (port 0: a free port), with ground truth.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        contract_overrides: ContractOverrides | str | Path | None = None,
        swagger_needs_login: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.verbose = verbose
        self.data = LiveData(self.config, clock)
        self._faults = FaultInjector(self.config.faults)
        self._tokens = TokenStore()
        self._app = SandboxApp(self.config, self.data, self._faults, self._tokens)
        # the names it speaks: the contract's, or the dialect of an overrides file
        self.dialect = Dialect(
            _overrides(contract_overrides), self._logged_in if swagger_needs_login else None
        )
        self.webhooks = SandboxWebhooks(self.data, self._app.token_refusal)
        self._address = (host, port)
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests = 0
        self._requests_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> SandboxServer:
        """Bind and serve in a background thread; returns self."""
        if self._http is not None:
            raise RuntimeError("the sandbox is already running")
        self._http = _HTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"salesexec-sandbox:{self._http.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection; safe to call twice."""
        http, self._http = self._http, None
        if http is None:
            return
        self.webhooks.close()
        http.shutdown()
        http.close_connections()
        http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._http is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    # --- serving -------------------------------------------------------------------------
    def _logged_in(self, request: Request) -> bool:
        """Whether the request carries a live token (for the document, when it needs one)."""
        token = request.headers.get(AUTH_HEADER)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        return self._tokens.use(token, None, now) is TokenState.LIVE

    def respond(self, request: Request) -> Response:
        """One request through the faults and the contract's endpoints."""
        with self._requests_lock:
            self._requests += 1
        self._faults.delay()
        failure = self._faults.transient_failure()
        if failure is not None:
            return failure
        try:
            response = self.webhooks.handle(request) or self.dialect.handle(
                request, self._app.handle
            )
        except Exception:
            if self.verbose:
                traceback.print_exc()
            return error_response(500, "An error has occurred.")
        return self._faults.truncate(response)

    # --- for tests and summaries ---------------------------------------------------------
    def truth(
        self,
        report_name: str,
        lead_type_uid: int,
        start: datetime,
        end: datetime,
        as_of: int | None = None,
    ) -> list[dict[str, Any]]:
        """Ground truth of a report, with every change the faults made to the data (up to
        data version ``as_of``, when given: see :attr:`data_changes`)."""
        return self.data.truth(report_name, lead_type_uid, start, end, as_of)

    @property
    def drift_insertions(self) -> tuple[DataChange, ...]:
        """The leads the drift fault inserted, oldest first, each with its data version
        and the report whose read caused it."""
        return self.data.insertions

    @property
    def data_changes(self) -> tuple[DataChange, ...]:
        """Every change the faults made (leads inserted, deleted, updated, reopened),
        oldest first, each with its data version and the report whose read caused it."""
        return self.data.changes

    @property
    def issued_tokens(self) -> tuple[str, ...]:
        """Every auth token this server issued: secrets a client must never print."""
        return self._tokens.issued()

    @property
    def fault_counts(self) -> dict[str, int]:
        """How often each fault fired: 429, 5xx, token_expired, truncated, dropped,
        delayed, drift_inserted, row_left."""
        return self._faults.counts()

    @property
    def faults(self) -> Faults:
        """The fault settings in force."""
        return self._faults.faults

    @property
    def request_count(self) -> int:
        """Requests received so far, faulted ones included."""
        return self._requests

    def set_faults(self, faults: Faults) -> None:
        """Change the faults of the running server (counts keep running).

        Schema drift is data, fixed when the server is built: it cannot change here.
        """
        if faults.schema_drift_from != self.config.faults.schema_drift_from:
            raise ValueError("schema_drift_from is part of the data: start a new sandbox for it")
        self._faults.update(faults)


def _overrides(given: ContractOverrides | str | Path | None) -> ContractOverrides:
    if given is None:
        return NO_OVERRIDES
    return given if isinstance(given, ContractOverrides) else load_overrides(given)


@contextmanager
def run_sandbox(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    verbose: bool = False,
    contract_overrides: ContractOverrides | str | Path | None = None,
    swagger_needs_login: bool = False,
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> Iterator[SandboxServer]:
    """A started sandbox, stopped on exit even on error.

    ``overrides`` set config fields or fault fields: ``run_sandbox(leads_per_day=5,
    p429=0.1)``. ``contract_overrides`` (an overrides file, or loaded overrides): the
    API dialect it speaks instead of the contract; ``swagger_needs_login``: its Swagger
    document answers only a logged-in caller; ``clock``: the sandbox's now (naive or aware
    UTC), for tests.
    """
    server = SandboxServer(
        configure(config, **overrides),
        host,
        port,
        verbose=verbose,
        contract_overrides=contract_overrides,
        swagger_needs_login=swagger_needs_login,
        clock=clock,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
