"""The embedded state store: per-task counts, claims and rolling windows in this process's memory."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from uuid import UUID

from loopai.state._rolling import Rolling
from loopai.state._store import Crossing, TaskStatistics, Watch

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    """A :class:`~loopai.StateStore` for one process: exact within it, forgotten when it ends.

    One lock guards everything; every operation is a few attribute updates under it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[UUID | None, TaskStatistics] = {}
        self._windows: dict[UUID, Rolling] = {}

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """See :meth:`loopai.StateStore.statistics`."""
        with self._lock:
            stats = self._stats.get(task_id)
            if stats is None:
                return TaskStatistics()
            return TaskStatistics(
                stats.total_executions, stats.sampled_executions, stats.failed_executions, stats.last_sample_time
            )

    def record(self, task_id: UUID, *, sampled: bool, failed: bool, executed_at: datetime) -> None:
        """See :meth:`loopai.StateStore.record`."""
        with self._lock:
            stats = self._stats.get(task_id)
            if stats is None:
                stats = self._stats[task_id] = TaskStatistics()
            stats.total_executions += 1
            if failed:
                stats.failed_executions += 1
            if sampled:
                stats.sampled_executions += 1
                stats.last_sample_time = executed_at

    def claim_sample(self, task_id: UUID, executed_at: datetime, interval: timedelta) -> bool:
        """See :meth:`loopai.StateStore.claim_sample`."""
        with self._lock:
            stats = self._stats.get(task_id)
            if stats is None:
                stats = self._stats[task_id] = TaskStatistics()
            last = stats.last_sample_time
            if last is not None and executed_at - last < interval:
                return False
            stats.last_sample_time = executed_at
            return True

    def observe(self, task_id: UUID, watch: Watch, valid: bool, latency_ms: float | None) -> list[Crossing]:
        """See :meth:`loopai.StateStore.observe`."""
        with self._lock:
            window = self._windows.get(task_id)
            if window is None or window.watch != watch:
                window = self._windows[task_id] = Rolling(watch)
            return window.add(valid, latency_ms)

    def close(self) -> None:
        """Nothing to release."""
