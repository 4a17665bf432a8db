"""The durable outbox: events and per-handler deliveries in SQLite, so that nothing emitted is lost."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loopai._errors import ConfigError
from loopai._models import WebhookEvent

__all__ = ["DeliveryRecord", "Outbox", "default_outbox_path"]

DeliveryStatus = Literal["pending", "delivered", "dead"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id   TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    body       TEXT NOT NULL,
    emitted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id   TEXT NOT NULL REFERENCES events(event_id),
    handler    TEXT NOT NULL,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dry_run    INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (event_id, handler)
);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries(status, updated_at);
"""

_NEW_DELIVERY = (
    "INSERT OR IGNORE INTO deliveries (event_id, handler, status, dry_run, updated_at) VALUES (?, ?, 'pending', ?, ?)"
)


def default_outbox_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/loopai/outbox.sqlite3`` (``~/.local/state/loopai/...`` by default)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base, "loopai", "outbox.sqlite3")


@dataclass(frozen=True)
class DeliveryRecord:
    """One event's delivery to one handler, as the outbox holds it."""

    event_id: str
    event_type: str
    handler: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    emitted_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as Unix seconds)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "handler": self.handler,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "emitted_at": self.emitted_at,
            "updated_at": self.updated_at,
        }


class Outbox:
    """Events and their deliveries, written before delivery is tried.

    Every (event, handler) pair is ``pending`` until the handler takes it
    (``delivered``) or gives up after its retries (``dead``, keeping the last error).
    Recording an event id twice changes nothing: delivery is idempotent by event id.
    Safe to share between threads; several processes may use one file (SQLite WAL).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError([f"outbox {self.path}: cannot create its directory: {exc.strerror or exc}"]) from None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (not a power cut) without an fsync per commit.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            # An outbox whose host was never closed still closes its file when collected.
            self._finalizer = weakref.finalize(self, self._db.close)
        except sqlite3.Error as exc:
            raise ConfigError([f"outbox {self.path}: cannot be opened as SQLite: {exc}"]) from None
        self._lock = threading.Lock()

    def record(self, event: WebhookEvent, handlers: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Store ``event`` with a pending delivery per handler; return the handlers to deliver to now.

        A handler that already has a delivery of this event id is left out, whatever its
        status: delivered, dead (replay it with :meth:`requeue`), or pending because another
        emit is delivering it right now or a stopped process left it (``Host.redeliver``
        takes those). So concurrent emits of one event deliver it once per handler.
        """
        now = time.time()
        event_id = str(event.event_id)
        dry = int(dry_run)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                    (event_id, event.event_type.value, event.model_dump_json(), now),
                )
                todo = [
                    name
                    for name in handlers
                    if db.execute(_NEW_DELIVERY, (event_id, name, dry, now)).rowcount == 1  # 0: already there
                ]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return todo

    def _update(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def delivered(self, event_id: str, handler: str, attempts: int) -> None:
        """The handler took the event after ``attempts`` tries."""
        self._update(
            "UPDATE deliveries SET status = 'delivered', attempts = ?, last_error = NULL, updated_at = ? "
            "WHERE event_id = ? AND handler = ?",
            (attempts, time.time(), event_id, handler),
        )

    def failed_attempt(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """Attempt number ``attempts`` failed with ``error``; the delivery stays pending."""
        self._update(
            "UPDATE deliveries SET attempts = ?, last_error = ?, updated_at = ? WHERE event_id = ? AND handler = ?",
            (attempts, error, time.time(), event_id, handler),
        )

    def dead(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """The handler gave up after ``attempts`` tries; keep ``error`` as the last one."""
        self._update(
            "UPDATE deliveries SET status = 'dead', attempts = ?, last_error = ?, updated_at = ? "
            "WHERE event_id = ? AND handler = ?",
            (attempts, error, time.time(), event_id, handler),
        )

    def pending(self) -> list[tuple[WebhookEvent, str, int, bool]]:
        """Undelivered work, oldest first: ``(event, handler, attempts so far, dry_run)``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.body, d.handler, d.attempts, d.dry_run FROM deliveries d JOIN events e USING (event_id) "
                "WHERE d.status = 'pending' ORDER BY e.emitted_at, d.handler"
            ).fetchall()
        return [
            (WebhookEvent.model_validate_json(body), handler, attempts, bool(dry))
            for body, handler, attempts, dry in rows
        ]

    def deliveries(
        self, status: DeliveryStatus | None = None, event_ids: Iterable[str] | None = None
    ) -> list[DeliveryRecord]:
        """Delivery records, oldest first, optionally of one status and/or some events."""
        sql = (
            "SELECT d.event_id, e.event_type, d.handler, d.status, d.attempts, d.last_error, e.emitted_at, "
            "d.updated_at FROM deliveries d JOIN events e USING (event_id)"
        )
        clauses: list[str] = []
        args: list[Any] = []
        if status is not None:
            clauses.append("d.status = ?")
            args.append(status)
        ids = list(event_ids) if event_ids is not None else None
        if ids is not None:
            clauses.append(f"d.event_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY e.emitted_at, d.handler", args).fetchall()
        return [DeliveryRecord(*row) for row in rows]

    def requeue(self, event_ids: Iterable[str] | None = None) -> int:
        """Make dead deliveries pending again (all of them, or those of ``event_ids``); how many."""
        sql = "UPDATE deliveries SET status = 'pending', attempts = 0, updated_at = ? WHERE status = 'dead'"
        args: list[Any] = [time.time()]
        if event_ids is not None:
            ids = list(event_ids)
            sql += f" AND event_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered and dead."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        counts.update({status: n for status, n in rows})
        return counts

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._finalizer()
