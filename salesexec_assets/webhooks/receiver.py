"""The webhook receiver: an ASGI app (Starlette) served by uvicorn.

``POST /webhooks/salesexec/{secret}`` (or ``POST /webhooks/salesexec`` with the secret in
``X-Webhook-Secret``) stores the delivery's events in the inbox, committed and fsynced,
and only then answers ``202``. SalesExec signs nothing, so a high-entropy shared secret
is the authentication; it is compared in constant time and never logged (the access log
shows the route with the secret replaced by ``***``). What each input gets:

- wrong or missing secret: ``401`` with no detail, nothing read or stored;
- a body over 256 KiB: ``413``; not JSON, a scalar, an empty body or array: ``400``;
- a body slower than :data:`BODY_TIMEOUT_SECONDS`: ``408``; the inbox failing: ``503``;
  in every such case nothing of the delivery is stored;
- otherwise ``202`` with how many events were new, duplicates and unknown.

``GET /healthz`` answers ``200`` while the inbox writer runs (``503`` otherwise), with
the counts since start. The listener binds loopback
by default; a client that opens a connection and sends no complete request headers within
:data:`HEADER_TIMEOUT_SECONDS` is disconnected.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from salesexec_assets.webhooks.inbox import InboxWriter
from salesexec_assets.webhooks.payloads import MAX_BODY_BYTES, BadDelivery, parse_delivery
from salesexec_assets.webhooks.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SECRET_HEADER,
    WEBHOOK_PATH,
    redact_path,
)

HEALTH_PATH = "/healthz"
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 256

LOGGER = logging.getLogger("salesexec_assets.webhooks.receiver")


def _same_secret(given: str | None, expected: bytes) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8"), expected)


async def _read_body(request: Request, timeout: float) -> bytes:
    """The body, at most MAX_BODY_BYTES (else BadDelivery 413) and within the deadline."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadDelivery(413, "too large")
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BadDelivery(413, "too large")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise BadDelivery(408, "the body did not arrive in time") from None
    return b"".join(chunks)


def build_app(
    secret: str, writer: InboxWriter, body_timeout: float = BODY_TIMEOUT_SECONDS
) -> ASGIApp:
    """The receiver's ASGI app, storing into ``writer``'s inbox."""
    expected = secret.encode("utf-8")
    totals = {"stored": 0, "duplicates": 0, "unknown": 0, "refused": 0}

    async def receive_webhook(request: Request) -> Response:
        given = request.path_params.get("secret") or request.headers.get(SECRET_HEADER)
        if not _same_secret(given, expected):
            totals["refused"] += 1
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            events = parse_delivery(await _read_body(request, body_timeout))
        except BadDelivery as refused:
            totals["refused"] += 1
            return JSONResponse({"error": refused.reason}, status_code=refused.status)
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            result = await asyncio.wrap_future(writer.submit(events))
        except Exception as error:  # nothing committed: the sender must retry
            LOGGER.error("the inbox could not store a delivery: %s", type(error).__name__)
            return JSONResponse({"error": "inbox unavailable"}, status_code=503)
        totals["stored"] += result.stored
        totals["duplicates"] += result.duplicates
        totals["unknown"] += result.unknown
        return JSONResponse(
            {"stored": result.stored, "duplicates": result.duplicates, "unknown": result.unknown},
            status_code=202,
        )

    async def health(request: Request) -> Response:
        if not writer.alive:
            return JSONResponse({"status": "inbox writer stopped"}, status_code=503)
        return JSONResponse({"status": "ok", "since_start": totals})

    app = Starlette(
        routes=[
            Route(f"{WEBHOOK_PATH}/{{secret}}", receive_webhook, methods=["POST"]),
            Route(WEBHOOK_PATH, receive_webhook, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
        ]
    )
    return AccessLog(app)


class AccessLog:
    """Logs each request as ``METHOD path status ms``, with the secret redacted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client") or ("-", 0)
            LOGGER.info(
                "%s %s %s %d %.1f ms",
                client[0],
                scope["method"],
                redact_path(scope["path"]),
                status,
                (time.monotonic() - started) * 1000,
            )


class _HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline for request headers: a client that
    connects (or starts a request on a kept-alive connection) and then stalls would
    otherwise hold its connection forever. The deadline runs only while a request's
    headers are incomplete; idle kept-alive connections are uvicorn's keep-alive timeout."""

    header_timeout = HEADER_TIMEOUT_SECONDS
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request has begun, its headers have not
            self._arm_header_deadline()
        else:
            self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_timeout, self._header_deadline_passed
            )

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def build_server(app: ASGIApp, header_timeout: float = HEADER_TIMEOUT_SECONDS) -> uvicorn.Server:
    protocol = type(
        "HeaderDeadlineProtocol", (_HeaderDeadlineProtocol,), {"header_timeout": header_timeout}
    )
    config = uvicorn.Config(
        app,
        http=protocol,
        lifespan="off",
        access_log=False,  # our AccessLog redacts the secret; uvicorn's would not
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
    )
    return uvicorn.Server(config)


class RunningReceiver:
    """A receiver serving in a background thread (tests, the sandbox demo)."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket, writer: InboxWriter) -> None:
        self.server = server
        self.sock = sock
        self.writer = writer
        self.host, self.port = sock.getsockname()[:2]
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="webhook-receiver", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RunningReceiver:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.sock.close()
        self.writer.close()


@contextmanager
def run_receiver(
    inbox: Path,
    secret: str,
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
) -> Iterator[RunningReceiver]:
    """A started receiver on ``host:port`` (port 0: a free one), stopped on exit."""
    writer = InboxWriter(inbox)
    server = build_server(build_app(secret, writer, body_timeout), header_timeout)
    running = RunningReceiver(server, bind(host, port), writer)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def serve_forever(inbox: Path, secret: str, host: str, port: int) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (``salesexec webhooks serve``)."""
    writer = InboxWriter(inbox)
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    print(
        f"salesexec webhooks: listening on http://{bound_host}:{bound_port}{WEBHOOK_PATH}/<secret>"
        f" (inbox {inbox})",
        flush=True,
    )
    try:
        build_server(build_app(secret, writer)).run(sockets=[sock])
    finally:
        writer.close()
