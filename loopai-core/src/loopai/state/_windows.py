"""The rolling windows of watched tasks, shared through the database, written in batches.

Each process keeps, per task, the shared window as the database last returned it with its own
records since then added (its *view*), and those records (*pending*). A record is judged on the
view at once. When that changes a breach flag (a crossing, or a recovery), the pending records
are written right away, from the record's own call: judged in order under the window's row lock,
and the database's verdict is what the call returns. Otherwise the flusher thread writes them,
judged the same way, once ``flush_interval`` has passed (or ``flush_records`` are pending): when
such a write would report a crossing (the others' records made one that this view did not see),
it is not made, and the task's next record writes it from its own call, carrying the event.

So a process alone reports exactly what the in-process store would, on the same record; many
processes share one window, and each crossing in it is reported by exactly one of them. Records
still pending at close are appended without judging (no record is left to carry an event): their
flags are updated by the next judged record, in any process.

A record's call may bring ``with_crossings(conn, crossings)``: called in the transaction that
flips the flags, when it does, so that what it writes (the breach events, in an outbox in the
same database) commits with the flags or not at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loopai.database import Database
from loopai.state._rolling import Rolling
from loopai.state._store import Crossing, Watch
from loopai.state._tables import Observed, apply_window, read_window

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["SharedWindows", "WithCrossings"]

WithCrossings = Callable[["Connection[Any]", list[Crossing]], None]
"""Called with the connection and the crossings a record made, in the transaction that flips their flags."""


class _Window:
    __slots__ = ("pending", "since", "urgent", "view", "writing")

    def __init__(self, view: Rolling) -> None:
        self.view = view
        self.pending: list[Observed] = []
        self.since = time.monotonic()
        """When the oldest pending record came (or the window was last written)."""
        self.urgent = False
        """Whether the next record must write the window from its own call (a crossing waits)."""
        self.writing = threading.Lock()
        """Held while the window is written: one write at a time, in order."""


class SharedWindows:
    """Every watched task's rolling window as this process sees it; see the module's docstring."""

    def __init__(self, database: Database, flush_interval: float, flush_records: int, wake: Callable[[], None]) -> None:
        self._database = database
        self._wake = wake
        self._interval = flush_interval
        self._records = flush_records
        self._lock = threading.Lock()
        self._windows: dict[UUID, _Window] = {}

    def observe(
        self,
        task_id: UUID,
        watch: Watch,
        valid: bool,
        latency_ms: float | None,
        with_crossings: WithCrossings | None = None,
    ) -> list[Crossing]:
        """Add one record; the crossings the database says it made (usually none, and no write here).
        ``with_crossings``: see the module's docstring."""
        with self._lock:
            window = self._windows.get(task_id)
            if window is None or (window.view.watch is not watch and window.view.watch != watch):
                window = None
        if window is None:
            window = self._load(task_id, watch)
        with self._lock:
            view = window.view
            before = (view.accuracy_breached, view.latency_breached)
            view.add(valid, latency_ms)
            if not window.pending:
                window.since = time.monotonic()
            window.pending.append((valid, latency_ms))
            urgent = window.urgent or before != (view.accuracy_breached, view.latency_breached)
            crowded = len(window.pending) >= self._records
        if crowded and not urgent:
            self._wake()
        return self._write(task_id, window, judge=True, carried=True, with_crossings=with_crossings) if urgent else []

    def flush_due(self) -> None:
        """Write, judged, the windows whose records have waited ``flush_interval`` (the flusher calls this)."""
        now = time.monotonic()
        with self._lock:
            due = [
                (task_id, w)
                for task_id, w in self._windows.items()
                if w.pending and (now - w.since >= self._interval or len(w.pending) >= self._records)
            ]
        for task_id, window in due:
            self._write(task_id, window, judge=True, carried=False)

    def flush_all(self) -> None:
        """Write, without judging, everything pending (at close)."""
        with self._lock:
            pending = [(task_id, w) for task_id, w in self._windows.items() if w.pending]
        for task_id, window in pending:
            self._write(task_id, window, judge=False, carried=False)

    def pending(self) -> int:
        """How many records wait to be written."""
        with self._lock:
            return sum(len(window.pending) for window in self._windows.values())

    def _load(self, task_id: UUID, watch: Watch) -> _Window:
        previous = self._windows.get(task_id)
        if previous is not None:  # the task's settings changed: keep the records it has
            self._write(task_id, previous, judge=False, carried=False)
        view = self._database.run(lambda conn: read_window(conn, task_id, watch))
        with self._lock:
            window = self._windows[task_id] = _Window(view)
        return window

    def _write(
        self,
        task_id: UUID,
        window: _Window,
        *,
        judge: bool,
        carried: bool,
        with_crossings: WithCrossings | None = None,
    ) -> list[Crossing]:
        """Write the window's pending records; the crossings they made when a record ``carried`` the call
        (``with_crossings`` writes with them).

        Without a record to carry them, a write that would report a crossing is not made: the
        window becomes ``urgent`` and its next record writes it.
        """
        with window.writing:
            with self._lock:
                records, window.pending = window.pending, []
                watch = window.view.watch
            if not records:
                return []

            def write(conn: Connection[Any]) -> tuple[Rolling | None, list[Crossing]]:
                shared, crossings = apply_window(conn, task_id, watch, records, judge=judge, report=carried)
                if crossings and with_crossings is not None:
                    with_crossings(conn, crossings)
                return shared, crossings

            try:
                shared, crossings = self._database.run(write)
            except BaseException:
                with self._lock:
                    window.pending = records + window.pending
                    # Its crossing (or its breach events) could not be written: the next record tries again.
                    window.urgent = window.urgent or carried
                raise
            with self._lock:
                if shared is None:  # a crossing, and no record to carry it: the next record writes it
                    window.pending = records + window.pending
                    window.urgent = True
                    return []
                before = (shared.accuracy_breached, shared.latency_breached)
                for valid, latency_ms in window.pending:  # records that came during the write
                    shared.add(valid, latency_ms)
                window.urgent = before != (shared.accuracy_breached, shared.latency_breached)
                window.view = shared
                window.since = time.monotonic()
            return crossings
