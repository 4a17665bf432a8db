"""The embedded outbox: events and per-handler deliveries in a SQLite file, so that nothing emitted is lost."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Final

from loopai._errors import OutboxError
from loopai._models import WebhookEvent
from loopai.delivery import _sqlite_sql as stmt
from loopai.delivery._checkpoint import Checkpointer
from loopai.delivery._leases import is_gone, owner_token
from loopai.delivery._outbox import Claim, DeliveryRecord, DeliveryStatus, Requeued
from loopai.delivery._pool import started
from loopai.delivery._sqlite_file import failure, open_database
from loopai.delivery._unreadable import read_event

__all__ = ["SqliteOutbox"]

_CHECKPOINT_EVERY: Final = 256
"""Commits between two background checkpoints (about 700 WAL pages: SQLite's own default is 1000)."""
_PRUNE_BATCH = 5_000
"""Deliveries removed per commit by :meth:`SqliteOutbox.prune`."""
_MARK_BATCH: Final = 64
"""Delivered marks written in one commit."""
_MARK_DELAY: Final = 0.05
"""Seconds a delivered mark may wait for its group."""
_IN_LIST: Final = 500
"""Values in one ``IN (...)`` list (old SQLite builds allow 999 parameters a statement)."""
_ABANDONED_EVERY: Final = 10.0
"""Seconds between two looks for leases held by processes that are gone."""
_TICK: Final = 1e-6
"""Seconds between the due times of two deliveries recorded in one commit: claims take them in the
order they were recorded (a handler delivering one at a time gets events in emitted order)."""


def _close(db: sqlite3.Connection, checkpointer: Checkpointer | None, marks: list[Any], owner: str) -> None:
    with contextlib.suppress(sqlite3.Error):
        if marks:  # an outbox collected without close(): keep its delivered marks all the same
            db.executemany(stmt.MARK, marks)
            marks.clear()
        db.execute(stmt.RELEASE_OWNER, (owner,))  # what this outbox still held goes back to any worker
    if checkpointer is not None:
        checkpointer.stop()
    db.close()


class SqliteOutbox:
    """The :class:`loopai.Outbox` in a SQLite file (WAL), or ``:memory:``.

    Several processes may use one file: claims are leased (a process that is gone loses its
    leases at once), and a delivery marked ``delivered`` stays so. Files of earlier versions
    are brought up to date in place; another program's SQLite file is refused untouched
    (:class:`loopai.ConfigError`). A failing file (damaged pages, a full disk) raises
    :class:`loopai.OutboxError` naming it and what to do.
    """

    default_lease: float = 300.0
    """Seconds of a lease when ``[delivery] lease`` is not set: long, as nothing renews it (a
    process of this machine that is gone loses its leases at once)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._db = open_database(self.path)
        self._checkpointer = Checkpointer(self.path) if self.path != ":memory:" else None
        self._owner = owner_token()
        self._marks: list[tuple[int, float, str, str]] = []  # delivered marks not written yet
        self._mark_timer: threading.Timer | None = None  # writes them soon; cancelled by close()
        # An outbox whose host was never closed still closes its file when collected.
        self._finalizer = weakref.finalize(self, _close, self._db, self._checkpointer, self._marks, self._owner)
        self._lock = threading.Lock()
        self._commits = 0
        self._abandoned_checked = float("-inf")
        self._closed = False

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; a failing SQLite call becomes an :class:`OutboxError`."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise failure(self.path, exc) from None

    @contextlib.contextmanager
    def _transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # a damaged file may refuse even this
                db.execute("ROLLBACK")
            raise
        self._commits += 1
        if self._commits >= _CHECKPOINT_EVERY and self._checkpointer is not None:
            self._commits = 0
            self._checkpointer.poke()

    # -- recording ------------------------------------------------------------------------

    def record(self, event: WebhookEvent, handlers: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Store ``event`` with a pending delivery per handler, due now; return the handlers recorded.

        A handler that already has a delivery of this event id is left out, whatever its
        status, so that concurrent emits of one event deliver it once per handler. The
        exception is a dry run's delivery: recording the event for real makes it a pending
        real delivery again, so a rehearsal never uses up an id.
        """
        return self.record_many([(event, handlers)], dry_run=dry_run)[0]

    def record_many(
        self, batch: Sequence[tuple[WebhookEvent, Sequence[str]]], *, dry_run: bool = False
    ) -> list[list[str]]:
        """:meth:`record` for every event of ``batch`` in one commit (each event once, in order)."""
        now = time.time()
        rows = [
            ((str(event.event_id), event.event_type.value, event.model_dump_json(), now), handlers)
            for event, handlers in batch
            if handlers
        ]
        recorded: list[list[str]] = []
        with self._using() as db, self._transaction(db):
            known = self._known(db, [row[0] for row, _ in rows])
            db.executemany(stmt.INSERT_EVENT, [row for row, _ in rows])
            fresh: list[tuple[str, str, int, float, float]] = []
            for n, (row, handlers) in enumerate(rows):
                event_id, due = row[0], now + n * _TICK
                todo = []
                for name in handlers:
                    held = known.get((event_id, name))
                    if held is None:
                        fresh.append((event_id, name, int(dry_run), now, due))
                    elif held and not dry_run:
                        db.execute(stmt.TAKE_OVER, (now, due, event_id, name))
                    else:
                        continue  # delivered, dead, or pending already: an event id is delivered once
                    known[(event_id, name)] = dry_run
                    todo.append(name)
                recorded.append(todo)
            db.executemany(stmt.INSERT_DELIVERY, fresh)
        answers = iter(recorded)
        return [next(answers) if handlers else [] for _, handlers in batch]

    @staticmethod
    def _known(db: sqlite3.Connection, event_ids: list[str]) -> dict[tuple[str, str], bool]:
        """The deliveries these events already have: ``(event_id, handler) -> dry run or not``."""
        known: dict[tuple[str, str], bool] = {}
        for start in range(0, len(event_ids), _IN_LIST):
            ids = event_ids[start : start + _IN_LIST]
            rows = db.execute(
                f"SELECT event_id, handler, dry_run FROM deliveries WHERE event_id IN ({','.join('?' * len(ids))})",
                ids,
            )
            known.update(((event_id, handler), bool(dry)) for event_id, handler, dry in rows)
        return known

    # -- claiming and settling --------------------------------------------------------------

    def claim(self, handler: str, limit: int, *, lease: float, now: float | None = None) -> list[Claim]:
        """Take up to ``limit`` due deliveries of ``handler``, oldest first, leased for ``lease`` seconds.

        A row whose event cannot be read back is quarantined with the reason instead."""
        now = time.time() if now is None else now
        claims: list[Claim] = []
        with self._using() as db:
            self._free_abandoned(db, now)
            with self._transaction(db):
                taken, unreadable = [], []
                for event_id, attempts, dry_run, body in db.execute(stmt.DUE, (handler, now, now, limit)).fetchall():
                    event = read_event(body)
                    if isinstance(event, str):
                        unreadable.append((event, now, event_id, handler))
                        continue
                    claims.append(Claim(event, handler, attempts, bool(dry_run)))
                    taken.append((now + lease, self._owner, event_id, handler))
                db.executemany(stmt.LEASE, taken)
                db.executemany(stmt.QUARANTINE, unreadable)
        return claims

    def _free_abandoned(self, db: sqlite3.Connection, now: float) -> None:
        """End the leases of processes on this machine that are gone (every so often)."""
        if now - self._abandoned_checked < _ABANDONED_EVERY:
            return
        self._abandoned_checked = now
        owners = db.execute(
            f"SELECT DISTINCT lease_owner FROM deliveries WHERE {stmt.OPEN} AND status = 'pending' AND lease_until > ?",
            (now,),
        ).fetchall()
        for (owner,) in owners:
            if owner and owner != self._owner and is_gone(owner):
                db.execute(stmt.RELEASE_OWNER, (owner,))

    def next_due(self, handlers: Collection[str]) -> float | None:
        """When the earliest unleased pending delivery of ``handlers`` is due, or None."""
        if not handlers:
            return None
        names = list(handlers)
        with self._using() as db:
            (due,) = db.execute(
                f"SELECT MIN(next_attempt_at) FROM deliveries WHERE handler IN ({','.join('?' * len(names))}) "
                f"AND {stmt.OPEN} AND status = 'pending' AND lease_until <= ?",
                (*names, time.time()),
            ).fetchone()
        return None if due is None else float(due)

    def delivered(self, event_id: str, handler: str, attempts: int) -> None:
        """The handler took the event after ``attempts`` tries.

        Marks are written in groups (every :data:`_MARK_BATCH` marks, after
        :data:`_MARK_DELAY` seconds at the latest, and before any read or close), one commit
        per group: a killed process may deliver its last few events again on the next
        start (at least once), but never loses one, as the pending row was written first.
        """
        with self._using():
            marks = self._marks
            marks.append((attempts, time.time(), event_id, handler))
            if len(marks) >= _MARK_BATCH:
                self._flush_marks()
            elif len(marks) == 1 and not self._closed:
                if self._mark_timer is not None:
                    self._mark_timer.cancel()  # its marks were written with their group
                timer = threading.Timer(_MARK_DELAY, self._flush_soon)
                timer.daemon = True
                self._mark_timer = timer
                if not started(timer):  # the interpreter shuts down: write it now
                    self._mark_timer = None
                    self._flush_marks()

    def _flush_marks(self) -> None:
        """Write the delivered marks (the caller holds the lock)."""
        marks = self._marks
        if marks and not self._closed:
            with self._transaction(self._db):
                self._db.executemany(stmt.MARK, marks)
            marks.clear()  # in place: the finalizer holds this list

    def flush(self) -> None:
        """Write delivered marks now (reads and :meth:`close` do it themselves)."""
        with self._using():
            self._flush_marks()

    def _flush_soon(self) -> None:
        """The timer's :meth:`flush`: one that fails (a full disk) leaves the marks waiting, and the next
        read, mark or close meets the failure again, in a thread that reports it (not as a traceback
        of the timer's own)."""
        with contextlib.suppress(OutboxError):
            self.flush()

    def _update(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._using() as db:
            if not self._closed:
                db.execute(sql, args)

    def retry(self, event_id: str, handler: str, attempts: int, error: str, at: float) -> None:
        """Attempt number ``attempts`` failed with ``error``; the delivery stays pending, due at ``at``
        (unless it was delivered meanwhile, by another process: then nothing changes)."""
        self._update(stmt.RETRY, (attempts, error, time.time(), at, event_id, handler))

    def dead(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """The handler gave up after ``attempts`` tries; keep ``error`` as the last one.

        A delivery already marked delivered (by another process sharing the file) stays
        delivered: it was received, whatever this process saw."""
        self._update(stmt.DEAD, (attempts, error, time.time(), event_id, handler))

    def quarantine(self, event_id: str, handler: str, reason: str) -> None:
        """Set a delivery aside with ``reason``: listed, never claimed."""
        self._update(stmt.QUARANTINE, (reason, time.time(), event_id, handler))

    def release(self, deliveries: Iterable[tuple[str, str]]) -> None:
        """End the leases of these claimed ``(event_id, handler)`` deliveries, untried."""
        pairs = list(deliveries)
        if pairs:
            with self._using() as db:
                if not self._closed:
                    db.executemany(stmt.RELEASE, pairs)

    # -- reading and housekeeping -------------------------------------------------------------

    def deliveries(
        self, status: DeliveryStatus | None = None, event_ids: Iterable[str] | None = None
    ) -> list[DeliveryRecord]:
        """Delivery records, oldest first, optionally of one status and/or some events."""
        sql = (
            "SELECT d.event_id, e.event_type, d.handler, d.status, d.attempts, d.last_error, e.emitted_at, "
            "d.updated_at, d.dry_run, d.next_attempt_at FROM deliveries d JOIN events e USING (event_id)"
        )
        clauses: list[str] = []
        args: list[Any] = []
        if status is not None:
            clauses.append("d.status = ?" if status == "delivered" else f"d.{stmt.OPEN} AND d.status = ?")
            args.append(status)
        ids = list(event_ids) if event_ids is not None else None
        if ids is not None:
            clauses.append(f"d.event_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._using() as db:
            self._flush_marks()
            rows = db.execute(sql + " ORDER BY e.emitted_at, d.handler", args).fetchall()
        return [
            DeliveryRecord(event_id, event_type, handler, state, attempts, error, emitted, updated, bool(dry), due)
            for event_id, event_type, handler, state, attempts, error, emitted, updated, dry, due in rows
        ]

    def requeue(self, event_ids: Iterable[str] | None = None, *, status: Requeued = "dead") -> int:
        """Make the deliveries of ``status`` (dead, or quarantined) pending and due again (all of them, or
        those of ``event_ids``); how many."""
        now = time.time()
        sql = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, updated_at = ?, next_attempt_at = ?, "
            f"{stmt.UNLEASED} WHERE {stmt.OPEN} AND status = ?"
        )
        args: list[Any] = [now, now, status]
        if event_ids is not None:
            ids = list(event_ids)
            sql += f" AND event_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        with self._using() as db:
            self._flush_marks()
            return int(db.execute(sql, args).rowcount)

    def due_now(self, handlers: Collection[str] | None = None) -> int:
        """Make every pending delivery (of ``handlers``, else all) due now; how many were scheduled later."""
        now = time.time()
        sql = (
            f"UPDATE deliveries SET next_attempt_at = ? WHERE {stmt.OPEN} AND status = 'pending' "
            "AND next_attempt_at > ?"
        )
        args: list[Any] = [now, now]
        if handlers is not None:
            names = list(handlers)
            sql += f" AND handler IN ({','.join('?' * len(names))})"
            args.extend(names)
        with self._using() as db:
            return int(db.execute(sql, args).rowcount)

    def prune(self, older_than: float, *, dead: bool = False, now: float | None = None) -> tuple[int, int]:
        """Remove finished deliveries last updated more than ``older_than`` seconds ago.

        Delivered ones always; dead letters and quarantined rows only with ``dead`` (they are
        kept for :meth:`requeue` and for a look otherwise); pending ones never. An event goes
        when it has no delivery left. Works in batches of :data:`_PRUNE_BATCH`, one commit
        each, so that emits in other threads or processes wait for one batch at most.
        Returns how many deliveries and events were removed.
        """
        cutoff = (time.time() if now is None else now) - older_than
        statuses = ("delivered", "dead", "quarantined") if dead else ("delivered",)
        select = (
            "SELECT event_id, handler FROM deliveries "
            f"WHERE status IN ({','.join('?' * len(statuses))}) AND updated_at < ? LIMIT {_PRUNE_BATCH}"
        )
        deliveries = events = 0
        while True:
            with self._using() as db:
                self._flush_marks()
                with self._transaction(db):
                    rows = db.execute(select, (*statuses, cutoff)).fetchall()
                    db.executemany("DELETE FROM deliveries WHERE event_id = ? AND handler = ?", rows)
                    before = db.total_changes
                    db.executemany(
                        "DELETE FROM events WHERE event_id = ? "
                        "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.event_id)",
                        [(event_id,) for event_id in dict.fromkeys(event_id for event_id, _ in rows)],
                    )
                    events += db.total_changes - before
            deliveries += len(rows)
            if len(rows) < _PRUNE_BATCH:
                return deliveries, events

    def counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered, dead and quarantined."""
        with self._using() as db:
            self._flush_marks()
            rows = db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        counts = {"pending": 0, "delivered": 0, "dead": 0, "quarantined": 0}
        counts.update({status: n for status, n in rows})
        return counts

    def open_counts(self) -> dict[str, dict[str, int]]:
        """Per handler, how many deliveries are pending, dead and quarantined."""
        with self._using() as db:
            self._flush_marks()
            rows = db.execute(
                f"SELECT handler, status, COUNT(*) FROM deliveries WHERE {stmt.OPEN} GROUP BY handler, status"
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for handler, status, n in rows:
            counts.setdefault(handler, {"pending": 0, "dead": 0, "quarantined": 0})[status] = n
        return counts

    def close(self) -> None:
        """Write what is left (the delivered marks' timer cancelled and joined), hand back this
        outbox's leases, then close the database (idempotent)."""
        with self._lock:
            if not self._closed:
                with contextlib.suppress(sqlite3.Error):
                    self._flush_marks()
                self._closed = True
            timer, self._mark_timer = self._mark_timer, None
            self._finalizer()
        if timer is not None:
            timer.cancel()  # waiting for the lock, it finds the outbox closed: nothing to write
            if timer is not threading.current_thread():
                timer.join(1.0)
