"""Per-task state in PostgreSQL, shared by every process that names the same database.

What is exact, and when (see docs/REPLICAS.md for the whole story):

- **Claims** (time-based sampling) are exact at once: one conditional upsert per claim, and a
  claim is tried only when this process's view says a sample is due, so at most a few round
  trips per task per interval.
- **Counts** (``total_executions``...) are kept in the process and added to the database in
  one statement every ``flush_interval`` (by a background thread), or sooner once
  ``flush_records`` executions are pending, and at close. Samplers see the database's counts
  as of the last flush plus this process's own since: exact once every process has flushed.
- **Rolling windows** are judged at once on this process's view and written in batches by the
  flusher, judged again under the row lock; a record that changes a breach flag writes them
  from its own call. See :mod:`loopai.state._windows`.

While the database is away (a restart, a failover), nothing counted is dropped: a failed
flush is retried with the next one, and a call that needs the database (a claim, a window
write) retries with backoff for up to ``unavailable_timeout`` seconds before raising
:class:`loopai.database.DatabaseUnavailable`.
"""

from __future__ import annotations

import copy
import threading
import uuid
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from loopai._log import logger
from loopai.database import Database, DatabaseError, DatabaseUnavailable, DatabaseUrl
from loopai.state._counts import LocalCounts
from loopai.state._store import Crossing, TaskStatistics, Watch
from loopai.state._tables import add_counts, claim, read_statistics
from loopai.state._windows import SharedWindows, WithCrossings

__all__ = ["FLUSH_INTERVAL", "FLUSH_RECORDS", "PostgresStateStore"]

log = logger("loopai.state")

FLUSH_INTERVAL: Final = 0.1
"""Seconds between two writes of a process's counts and windows, at most."""
FLUSH_RECORDS: Final = 5_000
"""Executions (or window records) pending that make a write happen sooner."""


class PostgresStateStore:
    """A :class:`~loopai.StateStore` in a PostgreSQL database: many processes behave as one.

    ``url`` is a ``postgresql://`` URL (its password never printed: see
    :class:`loopai.database.DatabaseUrl`) or an open :class:`~loopai.database.Database` to
    share. Nothing connects until :meth:`open` (the host calls it when it starts) or the first
    call that needs the database. The schema must be at the version this loopai-core knows:
    ``loopai db upgrade`` applies it.
    """

    def __init__(
        self,
        url: str | DatabaseUrl | Database,
        *,
        unavailable_timeout: float = 30.0,
        flush_interval: float = FLUSH_INTERVAL,
        flush_records: int = FLUSH_RECORDS,
    ) -> None:
        self.database = url if isinstance(url, Database) else Database(url, unavailable_timeout=unavailable_timeout)
        self._interval = flush_interval
        self._flush_records = flush_records
        self._lock = threading.Lock()
        self._counts = LocalCounts()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._windows = SharedWindows(self.database, flush_interval, flush_records, self._wake.set)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._failure: DatabaseError | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.database.url.shown!r})"

    # -- the StateStore protocol ------------------------------------------------------------

    def open(self) -> None:
        """Connect and check the schema (failing fast), and start the flusher; later calls do nothing."""
        with self._lock:
            if self._closed or self._flusher is not None:
                return
            self.database.open()
            self._flusher = threading.Thread(target=self._flush_loop, name="loopai-state-flusher", daemon=True)
            self._flusher.start()

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """See :meth:`loopai.StateStore.statistics`: the database's counts at the last flush plus this
        process's since (a task seen for the first time is read from the database)."""
        if task_id is None:
            return TaskStatistics()
        self._check()
        with self._lock:
            view = self._counts.view(task_id)
        if view is not None:
            return view
        read = self.database.run(lambda conn: read_statistics(conn, [task_id]))
        with self._lock:
            self._counts.learned(task_id, read[task_id])
            view = self._counts.view(task_id)
        assert view is not None
        return view

    def record(self, task_id: UUID, *, sampled: bool, failed: bool, executed_at: datetime) -> None:
        """See :meth:`loopai.StateStore.record`: counted here, written with the next flush."""
        with self._lock:
            waiting = self._counts.count(task_id, sampled=sampled, failed=failed, executed_at=executed_at)
        if waiting >= self._flush_records:
            self._wake.set()

    def claim_sample(self, task_id: UUID, executed_at: datetime, interval: timedelta) -> bool:
        """See :meth:`loopai.StateStore.claim_sample`: one conditional upsert; exactly one process wins."""
        self._check()
        claimant = uuid.uuid4()  # this call's, the same for its retries: only a retry wins again
        won, last = self.database.run(lambda conn: claim(conn, task_id, executed_at, interval, claimant))
        with self._lock:
            self._counts.sampled_at(task_id, last)
        return won

    def observe(
        self,
        task_id: UUID,
        watch: Watch,
        valid: bool,
        latency_ms: float | None,
        *,
        with_crossings: WithCrossings | None = None,
    ) -> list[Crossing]:
        """See :meth:`loopai.StateStore.observe` and :mod:`loopai.state._windows`. ``with_crossings(conn,
        crossings)``, when given, is called in the transaction that flips the flags, when this record
        does: what it writes in this database (the breach events) commits with them or not at all."""
        self._check()
        return self._windows.observe(task_id, watch, valid, latency_ms, with_crossings)

    def flush(self) -> None:
        """Write this process's counts now and read back every known task's (the flusher does the same
        every ``flush_interval`` while there are counts to write)."""
        self._flush(refresh=True)

    def _flush(self, *, refresh: bool) -> None:
        with self._flushing:
            with self._lock:
                batch = self._counts.take()
                known = list(self._counts.known)
            if not batch and not (refresh and known):
                return
            try:
                rows = self.database.run(lambda conn: add_counts(conn, batch, known))
            except BaseException:
                with self._lock:
                    self._counts.give_back()
                raise
            with self._lock:
                self._counts.settle(rows)

    def stop_waiting(self) -> None:
        """Wait no more for the database while it is away (:meth:`loopai.database.Database.stop_waiting`):
        for a process told to stop now."""
        self.database.stop_waiting()

    def close(self) -> None:
        """Stop the flusher, write everything pending (retrying up to ``unavailable_timeout``), disconnect.

        Raises :class:`~loopai.database.DatabaseUnavailable` saying how much could not be written
        when the database stayed away. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            flusher = self._flusher
        self._stop.set()
        self._wake.set()
        if flusher is None:  # never opened: nothing was written, and nothing should connect now
            if not self._counts.pending and not self._windows.pending():
                self.database.close()
                return
        else:
            flusher.join()
        try:
            self._flush(refresh=False)
            self._windows.flush_all()
        except DatabaseUnavailable as exc:
            with self._lock:
                lost = sum(delta.total for delta in self._counts.pending.values())
            raise DatabaseUnavailable(f"{exc}; {lost} execution(s) counted by this process were not written") from None
        finally:
            self.database.close()

    # -- the flusher -----------------------------------------------------------------------

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._flush(refresh=False)
                self._windows.flush_due()
                self._failure = None
            except DatabaseError as exc:  # kept pending; the record path raises it (see _check)
                self._failure = exc
            except Exception:  # a bug must not stop the flushing silently
                log.exception("flushing the state to %s failed", self.database.url.shown)

    def _check(self) -> None:
        """Raise what made the flusher give up, so that a process does not run on blind for long."""
        failure = self._failure
        if failure is not None:
            # A copy each time: raising the kept one again would grow its traceback by a frame chain
            # with every call (every record of a service's batch), in every thread that shares it.
            raise copy.copy(failure)
        if self._flusher is None and not self._closed:
            self.open()
