"""The embedded outbox: events and per-handler deliveries in a SQLite file, so that nothing emitted is lost."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loopai._errors import ConfigError
from loopai._models import WebhookEvent
from loopai.delivery._outbox import DeliveryRecord, DeliveryStatus, Pending

__all__ = ["SqliteOutbox"]

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
) WITHOUT ROWID;
DROP INDEX IF EXISTS deliveries_by_status;
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries(status) WHERE status != 'delivered';
CREATE VIEW IF NOT EXISTS recorded AS
    SELECT e.event_id, e.event_type, e.body, e.emitted_at, d.handler, d.dry_run
    FROM events e JOIN deliveries d USING (event_id);
CREATE TRIGGER IF NOT EXISTS record_delivery INSTEAD OF INSERT ON recorded BEGIN
    INSERT OR IGNORE INTO events VALUES (NEW.event_id, NEW.event_type, NEW.body, NEW.emitted_at);
    INSERT OR IGNORE INTO deliveries (event_id, handler, status, dry_run, updated_at)
        VALUES (NEW.event_id, NEW.handler, 'pending', NEW.dry_run, NEW.emitted_at);
END;
"""
# Why this shape: the outbox is on every emit's path, before the handler is called. A
# delivery is one row keyed by (event, handler) with no separate rowid; the index holds only
# deliveries not yet delivered (what start() and the CLI look for), so it stays small and a
# delivered mark touches two pages. Recording goes through the ``recorded`` view, whose
# trigger stores the event (once) and the pending delivery: one statement, hence one
# implicit transaction, instead of BEGIN, two INSERTs and COMMIT. Files made by earlier
# versions (a rowid deliveries table) keep working.

_RECORD = "INSERT INTO recorded VALUES (?, ?, ?, ?, ?, ?)"
_TAKE_OVER = (
    "UPDATE deliveries SET status = 'pending', attempts = 0, last_error = NULL, dry_run = 0, updated_at = ? "
    "WHERE event_id = ? AND handler = ? AND dry_run = 1"
)
"""A real emit takes over a dry run's delivery of the same event: a rehearsal delivered nothing."""

_CHECKPOINT_EVERY = 256
"""Commits between two background checkpoints (about 700 WAL pages: SQLite's own default is 1000)."""
_AUTOCHECKPOINT = 10_000
"""SQLite's automatic checkpoint, by the writer itself, only as a backstop (about 40 MB of WAL)."""
_PRUNE_BATCH = 5_000
"""Deliveries removed per commit by :meth:`Outbox.prune`."""
_MARK_BATCH = 64
"""Delivered marks written in one commit."""
_MARK_DELAY = 0.05
"""Seconds a delivered mark may wait for its group."""
_MARK = (
    "UPDATE deliveries SET status = 'delivered', attempts = ?, last_error = NULL, updated_at = ? "
    "WHERE event_id = ? AND handler = ?"
)
_OPEN = "d.status != 'delivered'"
"""Repeated in queries for pending or dead deliveries, so that SQLite uses the partial index."""
_NOT_DELIVERED = "status != 'delivered'"
"""Guards every update but the delivered mark and :meth:`Outbox.requeue`: when two processes
share a file, a delivery one of them saw received never becomes pending or dead again."""


class _Checkpointer:
    """Copies the WAL back into the database file on a thread of its own.

    With ``synchronous=NORMAL`` a checkpoint is where SQLite fsyncs (the WAL, then the
    database file), and SQLite's automatic checkpoint runs in the commit that crosses its
    threshold: every few hundred events, one emit would wait for two fsyncs. The writer
    pokes this thread instead. A busy writer may never leave the WAL fully copied, and
    SQLite rewinds the WAL only then, so the automatic checkpoint stays on as a backstop
    with a higher threshold (``_AUTOCHECKPOINT``).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Checkpoint soon (starts the thread on first use)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="loopai-outbox-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            return  # the automatic checkpoint does the work
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                # Busy or failing: the next poke, or the automatic checkpoint, tries again.
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        """Let a running checkpoint finish, then end the thread (idempotent)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


def _close(db: sqlite3.Connection, checkpointer: _Checkpointer | None, marks: list[Any]) -> None:
    if marks:  # an outbox collected without close(): keep its delivered marks all the same
        with contextlib.suppress(sqlite3.Error):
            db.executemany(_MARK, marks)
        marks.clear()
    if checkpointer is not None:
        checkpointer.stop()
    db.close()


class SqliteOutbox:
    """Events and their deliveries, written before delivery is tried.

    Every (event, handler) pair is ``pending`` until the handler takes it
    (``delivered``) or gives up after its retries (``dead``, keeping the last error).
    Recording an event id twice changes nothing: delivery is idempotent by event id.
    Safe to share between threads; several processes may use one file (SQLite WAL): a
    delivery marked ``delivered`` stays so (only :meth:`requeue` reopens dead ones).
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
        except sqlite3.Error as exc:
            raise ConfigError([f"outbox {self.path}: cannot be opened as SQLite: {exc}"]) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (not a power cut) without an fsync per commit.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()  # not a database (or not ours): leave the file as it was
            raise ConfigError([f"outbox {self.path}: cannot be opened as SQLite: {exc}"]) from None
        self._checkpointer = _Checkpointer(self.path) if self.path != ":memory:" else None
        # An outbox whose host was never closed still closes its file when collected.
        self._marks: list[tuple[int, float, str, str]] = []  # delivered marks not written yet
        self._finalizer = weakref.finalize(self, _close, self._db, self._checkpointer, self._marks)
        self._lock = threading.Lock()
        self._commits = 0
        self._closed = False

    def _committed(self, commits: int = 1) -> None:
        """Count commits (the caller holds the lock); every so many, a background checkpoint."""
        self._commits += commits
        if self._commits >= _CHECKPOINT_EVERY and self._checkpointer is not None:
            self._commits = 0
            self._checkpointer.poke()

    def record(self, event: WebhookEvent, handlers: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Store ``event`` with a pending delivery per handler; return the handlers to deliver to now.

        A handler that already has a delivery of this event id is left out, whatever its
        status: delivered, dead (replay it with :meth:`requeue`), or pending because another
        emit is delivering it right now or a stopped process left it (``Host.redeliver``
        takes those). So concurrent emits of one event deliver it once per handler. The
        exception is a dry run's delivery: recording the event for real (``dry_run``
        false) makes it a pending real delivery again, so a rehearsal never uses up an id.
        """
        row = [str(event.event_id), event.event_type.value, event.model_dump_json(), time.time(), "", int(dry_run)]
        todo: list[str] = []
        with self._lock:
            db = self._db
            several = len(handlers) > 1
            if several:
                db.execute("BEGIN IMMEDIATE")
            try:
                for name in handlers:
                    row[4] = name
                    before = db.total_changes  # the trigger's inserts: 0 when the delivery was there
                    db.execute(_RECORD, row)
                    if db.total_changes == before and not dry_run:
                        db.execute(_TAKE_OVER, (row[3], row[0], name))
                    if db.total_changes != before:
                        todo.append(name)
                if several:
                    db.execute("COMMIT")
            except BaseException:
                if several:
                    db.execute("ROLLBACK")
                raise
            self._committed(1 if several else len(handlers))
        return todo

    def _update(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)
            self._committed()

    def delivered(self, event_id: str, handler: str, attempts: int) -> None:
        """The handler took the event after ``attempts`` tries.

        Marks are written in groups (every :data:`_MARK_BATCH` marks, after
        :data:`_MARK_DELAY` seconds at the latest, and before any read or close), one commit
        per group: a killed process may deliver its last few events again on the next
        start (at least once), but never loses one, as the pending row was written first.
        """
        with self._lock:
            marks = self._marks
            marks.append((attempts, time.time(), event_id, handler))
            if len(marks) >= _MARK_BATCH:
                self._flush_marks()
            elif len(marks) == 1:
                self._mark_timer()

    def _mark_timer(self) -> None:
        timer = threading.Timer(_MARK_DELAY, self.flush)
        timer.daemon = True
        timer.start()

    def _flush_marks(self) -> None:
        """Write the delivered marks (the caller holds the lock)."""
        marks = self._marks
        if not marks:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_MARK, marks)
            db.execute("COMMIT")
            marks.clear()  # in place: the finalizer holds this list
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._committed()

    def flush(self) -> None:
        """Write delivered marks now (reads and :meth:`close` do it themselves)."""
        with self._lock:
            if self._marks and not self._closed:
                self._flush_marks()

    def failed_attempt(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """Attempt number ``attempts`` failed with ``error``; the delivery stays pending
        (unless it was delivered meanwhile, by another process: then nothing changes)."""
        self._update(
            "UPDATE deliveries SET attempts = ?, last_error = ?, updated_at = ? "
            f"WHERE event_id = ? AND handler = ? AND {_NOT_DELIVERED}",
            (attempts, error, time.time(), event_id, handler),
        )

    def dead(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """The handler gave up after ``attempts`` tries; keep ``error`` as the last one.

        A delivery already marked delivered (by another process sharing the file) stays
        delivered: it was received, whatever this process saw."""
        self._update(
            "UPDATE deliveries SET status = 'dead', attempts = ?, last_error = ?, updated_at = ? "
            f"WHERE event_id = ? AND handler = ? AND {_NOT_DELIVERED}",
            (attempts, error, time.time(), event_id, handler),
        )

    def pending(self) -> list[Pending]:
        """Undelivered work, oldest first: ``(event, handler, attempts so far, dry_run)``."""
        with self._lock:
            self._flush_marks()
            rows = self._db.execute(
                "SELECT e.body, d.handler, d.attempts, d.dry_run FROM deliveries d JOIN events e USING (event_id) "
                f"WHERE {_OPEN} AND d.status = 'pending' ORDER BY e.emitted_at, d.handler"
            ).fetchall()
        return [
            Pending(WebhookEvent.model_validate_json(body), handler, attempts, bool(dry))
            for body, handler, attempts, dry in rows
        ]

    def deliveries(
        self, status: DeliveryStatus | None = None, event_ids: Iterable[str] | None = None
    ) -> list[DeliveryRecord]:
        """Delivery records, oldest first, optionally of one status and/or some events."""
        sql = (
            "SELECT d.event_id, e.event_type, d.handler, d.status, d.attempts, d.last_error, e.emitted_at, "
            "d.updated_at, d.dry_run FROM deliveries d JOIN events e USING (event_id)"
        )
        clauses: list[str] = []
        args: list[Any] = []
        if status is not None:
            clauses.append("d.status = ?" if status == "delivered" else f"{_OPEN} AND d.status = ?")
            args.append(status)
        ids = list(event_ids) if event_ids is not None else None
        if ids is not None:
            clauses.append(f"d.event_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._lock:
            self._flush_marks()
            rows = self._db.execute(sql + " ORDER BY e.emitted_at, d.handler", args).fetchall()
        return [
            DeliveryRecord(event_id, event_type, handler, status, attempts, error, emitted, updated, bool(dry))
            for event_id, event_type, handler, status, attempts, error, emitted, updated, dry in rows
        ]

    def requeue(self, event_ids: Iterable[str] | None = None) -> int:
        """Make dead deliveries pending again (all of them, or those of ``event_ids``); how many."""
        sql = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, updated_at = ? "
            "WHERE status != 'delivered' AND status = 'dead'"
        )
        args: list[Any] = [time.time()]
        if event_ids is not None:
            ids = list(event_ids)
            sql += f" AND event_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        with self._lock:
            self._flush_marks()
            return self._db.execute(sql, args).rowcount

    def prune(self, older_than: float, *, dead: bool = False, now: float | None = None) -> tuple[int, int]:
        """Remove finished deliveries last updated more than ``older_than`` seconds ago.

        Delivered ones always; dead letters only with ``dead`` (they are kept for
        :meth:`requeue` otherwise); pending ones never. An event goes when it has no
        delivery left. Works in batches of :data:`_PRUNE_BATCH`, one commit each, so that
        emits in other threads or processes wait for one batch at most. Returns how many
        deliveries and events were removed.
        """
        cutoff = (time.time() if now is None else now) - older_than
        statuses = ("delivered", "dead") if dead else ("delivered",)
        select = (
            "SELECT event_id, handler FROM deliveries "
            f"WHERE status IN ({','.join('?' * len(statuses))}) AND updated_at < ? LIMIT {_PRUNE_BATCH}"
        )
        deliveries = events = 0
        while True:
            with self._lock:
                self._flush_marks()
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                try:
                    rows = db.execute(select, (*statuses, cutoff)).fetchall()
                    db.executemany("DELETE FROM deliveries WHERE event_id = ? AND handler = ?", rows)
                    before = db.total_changes
                    db.executemany(
                        "DELETE FROM events WHERE event_id = ? "
                        "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.event_id)",
                        [(event_id,) for event_id in dict.fromkeys(event_id for event_id, _ in rows)],
                    )
                    events += db.total_changes - before
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                self._committed()
            deliveries += len(rows)
            if len(rows) < _PRUNE_BATCH:
                return deliveries, events

    def counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered and dead."""
        with self._lock:
            self._flush_marks()
            rows = self._db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        counts.update({status: n for status, n in rows})
        return counts

    def close(self) -> None:
        """Write what is left, then close the database (idempotent)."""
        with self._lock:
            if not self._closed:
                self._flush_marks()
                self._closed = True
            self._finalizer()
