"""One process's view of the cluster-wide counts: what the database said last, plus what this process counted since."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from loopai.state._store import TaskStatistics

__all__ = ["Delta", "LocalCounts", "later"]


def later(first: datetime | None, second: datetime | None) -> datetime | None:
    """The later of two times, either of which may be missing."""
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


class Delta:
    """What one process counted for one task since its last flush."""

    __slots__ = ("failed", "last_sample_time", "sampled", "total")

    def __init__(self) -> None:
        self.total = 0
        self.sampled = 0
        self.failed = 0
        self.last_sample_time: datetime | None = None

    def merge(self, other: Delta) -> None:
        """Add ``other``'s counts to these."""
        self.total += other.total
        self.sampled += other.sampled
        self.failed += other.failed
        self.last_sample_time = later(self.last_sample_time, other.last_sample_time)


class LocalCounts:
    """Each task's counts as this process sees them: the values the database returned at the last
    flush (``known``), plus what this process counted since, both ``pending`` and ``in_flight``
    (taken by a flush that has not returned yet), so that a flush never hides a count.

    Not locked: its owner (the PostgreSQL store) holds its lock around every call.
    """

    def __init__(self) -> None:
        self.known: dict[UUID, TaskStatistics] = {}
        self.pending: dict[UUID, Delta] = {}
        self.in_flight: dict[UUID, Delta] = {}
        self.records = 0
        """Executions counted in ``pending``."""

    def view(self, task_id: UUID) -> TaskStatistics | None:
        """The task's counts as far as this process knows (None: never read from the database)."""
        known = self.known.get(task_id)
        if known is None:
            return None
        view = known.copy()
        for deltas in (self.in_flight, self.pending):
            delta = deltas.get(task_id)
            if delta is not None:
                view.total_executions += delta.total
                view.sampled_executions += delta.sampled
                view.failed_executions += delta.failed
                view.last_sample_time = later(view.last_sample_time, delta.last_sample_time)
        return view

    def count(self, task_id: UUID, *, sampled: bool, failed: bool, executed_at: datetime) -> int:
        """Count one execution; how many are now waiting for a flush."""
        delta = self.pending.get(task_id)
        if delta is None:
            delta = self.pending[task_id] = Delta()
        delta.total += 1
        if failed:
            delta.failed += 1
        if sampled:
            delta.sampled += 1
            delta.last_sample_time = later(delta.last_sample_time, executed_at)
        self.records += 1
        return self.records

    def learned(self, task_id: UUID, statistics: TaskStatistics) -> None:
        """Take the database's counts for a task this process had not read yet."""
        self.known.setdefault(task_id, statistics)

    def sampled_at(self, task_id: UUID, last_sample_time: datetime | None) -> None:
        """The database's last sample time for the task, as a claim just read or set it."""
        known = self.known.setdefault(task_id, TaskStatistics())
        known.last_sample_time = later(known.last_sample_time, last_sample_time)

    def take(self) -> dict[UUID, Delta]:
        """What is pending, now in flight (empty when a flush is in flight already, or nothing is pending)."""
        if self.in_flight or not self.pending:
            return {}
        self.in_flight, self.pending = self.pending, {}
        self.records = 0
        return self.in_flight

    def settle(self, rows: dict[UUID, TaskStatistics]) -> None:
        """The flush is written: ``rows`` are the database's counts now (ours included)."""
        for task_id, row in rows.items():
            before = self.known.get(task_id)
            if before is not None:  # a claim may have set a later time than this read saw
                row.last_sample_time = later(row.last_sample_time, before.last_sample_time)
            self.known[task_id] = row
        self.in_flight = {}

    def give_back(self) -> None:
        """The flush failed: what was in flight is pending again, to be written by the next one."""
        for task_id, delta in self.in_flight.items():
            self.records += delta.total
            mine = self.pending.get(task_id)
            if mine is None:
                self.pending[task_id] = delta
            else:
                mine.merge(delta)
        self.in_flight = {}
