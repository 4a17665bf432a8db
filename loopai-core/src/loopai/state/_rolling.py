"""A task's rolling window: its last N outcomes and latencies, and whether each threshold is breached."""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from typing import Final

from loopai.state._store import Crossing, Watch

__all__ = ["LATENCY_PERCENTILE", "Rolling"]

LATENCY_PERCENTILE: Final = 95


class Rolling:
    """A task's last ``window`` outcomes and latencies, and whether each threshold is breached.

    Accuracy is the share of valid records in the window; latency is the window's p95
    (nearest rank) of ``latency_ms``, records without one left out. Each is judged once its
    window is full. A breach is reported once, when the value crosses the threshold; it
    is reported again only after the value has come back within the threshold.
    """

    __slots__ = (
        "accuracy_breached",
        "latencies",
        "latency_breached",
        "outcomes",
        "sorted_latencies",
        "valid",
        "watch",
    )

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.outcomes: deque[bool] = deque()
        self.valid = 0
        self.latencies: deque[float] = deque()
        self.sorted_latencies: list[float] = []
        self.accuracy_breached = False
        self.latency_breached = False

    @classmethod
    def resumed(
        cls,
        watch: Watch,
        outcomes: Sequence[bool],
        latencies: Sequence[float],
        accuracy_breached: bool,
        latency_breached: bool,
    ) -> Rolling:
        """A window read back from a shared store: the last ``watch.window`` of ``outcomes`` and
        ``latencies`` (oldest first), and the breach flags as they were."""
        rolling = cls(watch)
        kept = list(outcomes[-watch.window :]) if outcomes else []
        rolling.outcomes.extend(kept)
        rolling.valid = sum(kept)
        recent = [float(latency) for latency in latencies[-watch.window :]] if latencies else []
        rolling.latencies.extend(recent)
        rolling.sorted_latencies = sorted(recent)
        rolling.accuracy_breached = accuracy_breached
        rolling.latency_breached = latency_breached
        return rolling

    def add(self, valid: bool, latency_ms: float | None) -> list[Crossing]:
        """Count one record; return the thresholds it made the task cross (usually none)."""
        crossings: list[Crossing] = []
        watch = self.watch
        if watch.accuracy_threshold is not None and self._push_outcome(valid):
            self._judge_accuracy(watch.accuracy_threshold, crossings)
        if watch.latency_threshold_ms is not None and latency_ms is not None and self._push_latency(latency_ms):
            self._judge_latency(watch.latency_threshold_ms, crossings)
        return crossings

    def append(self, valid: bool, latency_ms: float | None) -> None:
        """Count one record without judging it: the breach flags stay as they are, for the next
        judged record to update (a shared store appends this way what no record is left to report)."""
        if self.watch.accuracy_threshold is not None:
            self._push_outcome(valid)
        if self.watch.latency_threshold_ms is not None and latency_ms is not None:
            self._push_latency(latency_ms)

    def _push_outcome(self, valid: bool) -> bool:
        """Add ``valid`` to the window; whether the window is full (and so judged)."""
        outcomes = self.outcomes
        outcomes.append(valid)
        self.valid += valid
        if len(outcomes) > self.watch.window:
            self.valid -= outcomes.popleft()
        return len(outcomes) >= self.watch.window

    def _judge_accuracy(self, threshold: float, crossings: list[Crossing]) -> None:
        accuracy = self.valid / len(self.outcomes)
        below = accuracy < threshold
        if below and not self.accuracy_breached:
            crossings.append(Crossing("accuracy", accuracy, threshold, len(self.outcomes)))
        self.accuracy_breached = below

    def _push_latency(self, latency_ms: float) -> bool:
        latencies, ordered = self.latencies, self.sorted_latencies
        latencies.append(latency_ms)
        bisect.insort(ordered, latency_ms)
        if len(latencies) > self.watch.window:
            del ordered[bisect.bisect_left(ordered, latencies.popleft())]
        return len(latencies) >= self.watch.window

    def _judge_latency(self, threshold: float, crossings: list[Crossing]) -> None:
        ordered = self.sorted_latencies
        p95 = ordered[math.ceil(len(ordered) * LATENCY_PERCENTILE / 100) - 1]
        above = p95 > threshold
        if above and not self.latency_breached:
            crossings.append(Crossing("latency", p95, threshold, len(self.latencies)))
        self.latency_breached = above
