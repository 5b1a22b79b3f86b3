"""The webhook inbox: a SQLite file in WAL mode, one row per distinct event.

Why SQLite and not the warehouse: DuckDB allows one writer per file, and the receiver
must store an event the moment it arrives, while runs write the warehouse for minutes.
SQLite in WAL mode lets the receiver write while the sensor reads, and
``synchronous=FULL`` makes every commit reach the disk (fsync) before the receiver
answers 202: an acknowledged event survives a crash or ``kill -9`` of the receiver.

Commits are grouped: concurrent deliveries waiting for the disk are written in one
transaction and one fsync (:class:`InboxWriter`), which is what lets a single file take
thousands of events per second. Rows are never updated or deleted by the receiver; an
event's ``id`` only grows, so a reader's cursor is simply the last id it has seen.
Duplicates (same canonical body, hence same SHA-256) are stored once.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from salesexec_assets.webhooks.payloads import UNKNOWN, WebhookEvent

INBOX_VAR = "SALESEXEC_WEBHOOK_INBOX"
DEFAULT_INBOX_PATH = Path("data") / "salesexec_webhooks.sqlite"
BUSY_TIMEOUT_MS = 30_000
MAX_DELIVERIES_PER_COMMIT = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- only grows: a reader's cursor
    received_at REAL NOT NULL,             -- Unix seconds (UTC) of the first delivery
    kind TEXT NOT NULL,                    -- '100'..'103' or 'unknown'
    lead_guid TEXT,
    instant TEXT,                          -- the event's *Utc field, ISO-8601 naive UTC
    stage TEXT,                            -- 103: NewLifeCycleStageName
    reason TEXT,                           -- why 'unknown'
    body_sha256 TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def inbox_path(environ: Mapping[str, str] | None = None) -> Path:
    """``SALESEXEC_WEBHOOK_INBOX``, or ``data/salesexec_webhooks.sqlite``."""
    env = os.environ if environ is None else environ
    return Path(env.get(INBOX_VAR, "").strip() or DEFAULT_INBOX_PATH)


@dataclass(frozen=True)
class StoredEvent:
    """One row of the inbox."""

    id: int
    received_at: datetime  # aware UTC
    kind: str
    lead_guid: str | None
    instant: datetime | None  # naive UTC
    stage: str | None
    body: str


@dataclass(frozen=True)
class StoreResult:
    """What one delivery added: new events, and events the inbox already had."""

    stored: int
    duplicates: int
    unknown: int


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the inbox's durability settings (the file is created if absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
    con.executescript(_SCHEMA)
    return con


def _insert(
    con: sqlite3.Connection, events: Sequence[WebhookEvent], received: float
) -> StoreResult:
    stored = unknown = 0
    for event in events:
        cursor = con.execute(
            "INSERT OR IGNORE INTO events (received_at, kind, lead_guid, instant, stage, reason, "
            "body_sha256, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                received,
                event.kind,
                event.lead_guid,
                event.instant.isoformat() if event.instant else None,
                event.stage,
                event.reason,
                event.body_sha256,
                event.body,
            ),
        )
        if cursor.rowcount:
            stored += 1
            unknown += event.kind == UNKNOWN
    duplicates = len(events) - stored
    for name, amount in (("stored", stored), ("duplicates", duplicates), ("unknown", unknown)):
        if amount:
            con.execute(
                "INSERT INTO counters VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )
    return StoreResult(stored, duplicates, unknown)


class InboxWriter:
    """Stores deliveries from any thread; one background thread commits them in groups.

    :meth:`submit` returns a future that resolves once the delivery's events are
    committed and fsynced (or raises if the write failed: then nothing of it is stored).
    """

    _STOP = object()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue[object] = queue.Queue()
        self._con = connect(path)  # opened here so a bad path fails at start-up
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, events: Sequence[WebhookEvent]) -> Future[StoreResult]:
        future: Future[StoreResult] = Future()
        self._queue.put((list(events), time.time(), future))
        return future

    @property
    def alive(self) -> bool:
        """Whether the writing thread still runs (it stops only on close)."""
        return self._thread.is_alive()

    def store(self, events: Sequence[WebhookEvent]) -> StoreResult:
        """Store and wait for the commit."""
        return self.submit(events).result()

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with closing(self._con) as con:
            while True:
                item = self._queue.get()
                if item is self._STOP:
                    return
                batch = [item]
                while len(batch) < MAX_DELIVERIES_PER_COMMIT:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is self._STOP:
                        self._queue.put(more)  # finish this batch, then stop
                        break
                    batch.append(more)
                self._commit(con, batch)

    @staticmethod
    def _commit(con: sqlite3.Connection, batch: list[object]) -> None:
        results = []
        try:
            con.execute("BEGIN IMMEDIATE")
            for events, received, _future in batch:  # type: ignore[misc]
                results.append(_insert(con, events, received))
            con.execute("COMMIT")
        except Exception as error:  # the disk, a lock held too long: every waiter hears it
            if con.in_transaction:
                con.execute("ROLLBACK")
            for _events, _received, future in batch:  # type: ignore[misc]
                future.set_exception(error)
            return
        for (_events, _received, future), result in zip(batch, results, strict=True):  # type: ignore[misc]
            future.set_result(result)


def _naive(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class InboxReader:
    """Read access to the inbox (the sensor's and the tests')."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with closing(connect(self.path)) as con:
            yield con

    def events_after(self, last_id: int, limit: int | None = None) -> list[StoredEvent]:
        """Events with an id above ``last_id``, oldest first."""
        sql = (
            "SELECT id, received_at, kind, lead_guid, instant, stage, body FROM events "
            "WHERE id > ? ORDER BY id"
        )
        params: tuple[int, ...] = (last_id,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (last_id, limit)
        with self._connection() as con:
            rows = con.execute(sql, params).fetchall()
        return [
            StoredEvent(
                id=row[0],
                received_at=datetime.fromtimestamp(row[1], timezone.utc),
                kind=row[2],
                lead_guid=row[3],
                instant=_naive(row[4]),
                stage=row[5],
                body=row[6],
            )
            for row in rows
        ]

    def pending(self, last_id: int) -> tuple[int, float | None, float | None]:
        """How many events lie after ``last_id``, and when the oldest and newest arrived."""
        with self._connection() as con:
            count, oldest, newest = con.execute(
                "SELECT count(*), min(received_at), max(received_at) FROM events WHERE id > ?",
                (last_id,),
            ).fetchone()
        return int(count), oldest, newest

    def counters(self) -> dict[str, int]:
        """Totals since the inbox was created: stored, duplicates, unknown."""
        with self._connection() as con:
            return dict(con.execute("SELECT name, value FROM counters").fetchall())

    def bodies(self) -> list[str]:
        """Every stored event's canonical body, in id order."""
        with self._connection() as con:
            return [row[0] for row in con.execute("SELECT body FROM events ORDER BY id")]
