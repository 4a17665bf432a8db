"""The rolling windows of watched tasks, shared through the database, written in batches.

Each process keeps, per task, the shared window as the database last returned it, with its own
records since then added (its *view*), and those records (*pending*). A record is judged on the
view at once: when it changes a breach flag there (a crossing, or a recovery), the pending records
are written right away, judged in order under the window's row lock, and the database's verdict
is what the call returns. Otherwise they are written, judged the same way, once ``flush_interval``
has passed or ``flush_records`` are pending. So a process alone sees exactly what the in-process
store would, on the same record; many processes see one window, and each crossing in it is
reported once. Records written at close, or by the flusher for a task gone quiet, are appended
without judging (no record is left to carry an event): their flags are updated by the next judged
record, in any process.
"""

from __future__ import annotations

import threading
import time
from uuid import UUID

from loopai.database import Database
from loopai.state._rolling import Rolling
from loopai.state._store import Crossing, Watch
from loopai.state._tables import Observed, apply_window, read_window

__all__ = ["SharedWindows"]


class _Window:
    __slots__ = ("pending", "since", "view")

    def __init__(self, view: Rolling) -> None:
        self.view = view
        self.pending: list[Observed] = []
        self.since = time.monotonic()
        """When the oldest pending record came (or the window was last written)."""


class SharedWindows:
    """Every watched task's rolling window as this process sees it; see the module's docstring."""

    def __init__(self, database: Database, flush_interval: float, flush_records: int) -> None:
        self._database = database
        self._interval = flush_interval
        self._records = flush_records
        self._lock = threading.Lock()
        self._windows: dict[UUID, _Window] = {}

    def observe(self, task_id: UUID, watch: Watch, valid: bool, latency_ms: float | None) -> list[Crossing]:
        """Add one record; the crossings the database says a write made (usually none, and no write)."""
        with self._lock:
            window = self._windows.get(task_id)
            if window is None or window.view.watch != watch:
                window = self._load(task_id, watch, window)
            view = window.view
            flags = (view.accuracy_breached, view.latency_breached)
            view.add(valid, latency_ms)
            if not window.pending:
                window.since = time.monotonic()
            window.pending.append((valid, latency_ms))
            if (
                flags != (view.accuracy_breached, view.latency_breached)
                or len(window.pending) >= self._records
                or time.monotonic() - window.since >= self._interval
            ):
                return self._write(task_id, window, judge=True)
            return []

    def flush_quiet(self, older_than: float) -> None:
        """Write, without judging, what has been pending for ``older_than`` seconds (tasks gone quiet)."""
        with self._lock:
            now = time.monotonic()
            for task_id, window in list(self._windows.items()):
                if window.pending and now - window.since >= older_than:
                    self._write(task_id, window, judge=False)

    def flush_all(self) -> None:
        """Write, without judging, everything pending (at close)."""
        with self._lock:
            for task_id, window in list(self._windows.items()):
                if window.pending:
                    self._write(task_id, window, judge=False)

    def pending(self) -> int:
        """How many records wait to be written."""
        with self._lock:
            return sum(len(window.pending) for window in self._windows.values())

    def _load(self, task_id: UUID, watch: Watch, previous: _Window | None) -> _Window:
        if previous is not None and previous.pending:  # the task's settings changed: keep its records
            self._write(task_id, previous, judge=False)
        view = self._database.run(lambda conn: read_window(conn, task_id, watch))
        window = self._windows[task_id] = _Window(view)
        return window

    def _write(self, task_id: UUID, window: _Window, *, judge: bool) -> list[Crossing]:
        records, watch = window.pending, window.view.watch
        shared, crossings = self._database.run(lambda conn: apply_window(conn, task_id, watch, records, judge=judge))
        window.view = shared
        window.pending = []
        window.since = time.monotonic()
        return crossings
