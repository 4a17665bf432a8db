"""The seam for per-task state: what the host counts, claims and watches, behind one protocol.

The embedded default keeps it in the process (:class:`~loopai.state.MemoryStateStore`); a
shared engine (PostgreSQL) implements the same protocol so that many processes behave as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable
from uuid import UUID

__all__ = ["Crossing", "StateStore", "TaskStatistics", "Watch"]


class TaskStatistics:
    """The host's running counts for one task, as samplers see them."""

    __slots__ = ("failed_executions", "last_sample_time", "sampled_executions", "total_executions")

    def __init__(
        self,
        total_executions: int = 0,
        sampled_executions: int = 0,
        failed_executions: int = 0,
        last_sample_time: datetime | None = None,
    ) -> None:
        self.total_executions = total_executions
        self.sampled_executions = sampled_executions
        self.failed_executions = failed_executions
        self.last_sample_time = last_sample_time

    def copy(self) -> TaskStatistics:
        """An independent snapshot of these counts."""
        return TaskStatistics(
            self.total_executions, self.sampled_executions, self.failed_executions, self.last_sample_time
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskStatistics):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return (
            f"TaskStatistics(total={self.total_executions}, sampled={self.sampled_executions}, "
            f"failed={self.failed_executions}, last_sample_time={self.last_sample_time})"
        )


@dataclass(frozen=True)
class Watch:
    """What a task's rolling window watches: its size and the thresholds (None: not watched)."""

    window: int
    accuracy_threshold: float | None = None
    latency_threshold_ms: float | None = None

    @property
    def watching(self) -> bool:
        """Whether any threshold is set."""
        return self.accuracy_threshold is not None or self.latency_threshold_ms is not None


@dataclass(frozen=True)
class Crossing:
    """A threshold a task's rolling value has just crossed (it was within it before).

    ``metric`` is ``accuracy`` (share of valid records) or ``latency`` (p95 ``latency_ms``);
    ``in_window`` is how many records the value was computed over.
    """

    metric: str
    value: float
    threshold: float
    in_window: int


@runtime_checkable
class StateStore(Protocol):
    """Per-task state a host keeps: execution counts, time-based sample claims, rolling windows.

    Implementations are safe to call from many threads. A shared implementation makes every
    answer cluster-wide: counts are exact once every process has flushed, a claim succeeds in
    one process only, and a threshold crossing is reported by one process only.

    A store that connects to a server may also have an ``open()`` method: the host calls it
    when it starts, so that a server that cannot be reached is an error at start, not at the
    first record.
    """

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """A copy of the counts for ``task_id`` (zeros for an unseen task)."""
        ...

    def record(self, task_id: UUID, *, sampled: bool, failed: bool, executed_at: datetime) -> None:
        """Count one execution of ``task_id``; a sampled one sets the task's last sample time."""
        ...

    def claim_sample(self, task_id: UUID, executed_at: datetime, interval: timedelta) -> bool:
        """Claim the task's time-based sample for the interval ``executed_at`` falls in.

        True when no execution of the task was sampled within ``interval`` before
        ``executed_at``: the claim then sets the task's last sample time, atomically, so that
        of many callers racing for one interval exactly one wins.
        """
        ...

    def observe(self, task_id: UUID, watch: Watch, valid: bool, latency_ms: float | None) -> list[Crossing]:
        """Add one record to the task's rolling window; return the thresholds it made the task cross."""
        ...

    def close(self) -> None:
        """Write what is buffered and release resources (idempotent)."""
        ...
