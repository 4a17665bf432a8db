"""A task's rolling window: its last N outcomes and latencies, and whether each threshold is breached."""

from __future__ import annotations

import bisect
import math
from collections import deque
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

    def add(self, valid: bool, latency_ms: float | None) -> list[Crossing]:
        """Count one record; return the thresholds it made the task cross (usually none)."""
        crossings: list[Crossing] = []
        if self.watch.accuracy_threshold is not None:
            self._add_outcome(valid, self.watch.accuracy_threshold, crossings)
        if self.watch.latency_threshold_ms is not None and latency_ms is not None:
            self._add_latency(latency_ms, self.watch.latency_threshold_ms, crossings)
        return crossings

    def _add_outcome(self, valid: bool, threshold: float, crossings: list[Crossing]) -> None:
        outcomes = self.outcomes
        outcomes.append(valid)
        self.valid += valid
        if len(outcomes) > self.watch.window:
            self.valid -= outcomes.popleft()
        if len(outcomes) < self.watch.window:
            return
        accuracy = self.valid / len(outcomes)
        below = accuracy < threshold
        if below and not self.accuracy_breached:
            crossings.append(Crossing("accuracy", accuracy, threshold, len(outcomes)))
        self.accuracy_breached = below

    def _add_latency(self, latency_ms: float, threshold: float, crossings: list[Crossing]) -> None:
        latencies, ordered = self.latencies, self.sorted_latencies
        latencies.append(latency_ms)
        bisect.insort(ordered, latency_ms)
        if len(latencies) > self.watch.window:
            del ordered[bisect.bisect_left(ordered, latencies.popleft())]
        if len(latencies) < self.watch.window:
            return
        p95 = ordered[math.ceil(len(ordered) * LATENCY_PERCENTILE / 100) - 1]
        above = p95 > threshold
        if above and not self.latency_breached:
            crossings.append(Crossing("latency", p95, threshold, len(latencies)))
        self.latency_breached = above
