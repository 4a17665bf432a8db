"""A sampler that samples executions whose latency is an outlier for their task."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import loopai
from pydantic import BaseModel, ConfigDict, Field

__version__ = "0.1.0"


class RunningStats:
    """Count, mean and variance of a stream of numbers, one at a time (Welford's algorithm).

    Numerically stable and O(1) per value: no list of past values is kept.
    """

    __slots__ = ("count", "m2", "mean")

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared distances from the mean

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def copy(self) -> RunningStats:
        twin = RunningStats()
        twin.count, twin.mean, twin.m2 = self.count, self.mean, self.m2
        return twin

    @property
    def stddev(self) -> float:
        """Sample standard deviation (0 until there are two values)."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


class AnomalySampler(loopai.SamplerPlugin):
    """Samples an execution whose latency is more than ``sigma`` standard deviations from its
    task's running mean.

    Each task's mean and standard deviation are kept with Welford's algorithm, updated with
    every execution that reports a latency (outliers included, so that the statistics follow
    a lasting change). The first ``warmup`` executions of a task only teach the statistics.
    ``min_stddev_ms`` keeps a very steady task from flagging every millisecond of jitter.
    By default only slow outliers count; ``two_sided`` samples unusually fast ones too.
    Statistics of at most ``max_tasks`` tasks are kept (the least recently seen are dropped).
    """

    name = "anomaly-sampler"
    description = "Samples executions whose latency is an outlier for their task."
    version = __version__
    author = "Loopai"
    priority = 120

    class Config(BaseModel):
        """Settings: ``[plugins.samplers.anomaly-sampler.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        sigma: float = Field(default=3.0, gt=0.0, description="Standard deviations that count.")
        warmup: int = Field(default=30, ge=2, description="Executions per task before judging.")
        min_stddev_ms: float = Field(
            default=1.0, ge=0.0, description="Floor of the standard deviation, in milliseconds."
        )
        two_sided: bool = Field(default=False, description="Sample unusually fast runs too.")
        max_tasks: int = Field(default=10_000, ge=1, description="Tasks whose statistics are kept.")

    config: Config

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._stats: OrderedDict[UUID, RunningStats] = OrderedDict()
        self._lock = threading.Lock()

    def statistics(self, task_id: UUID) -> RunningStats | None:
        """A copy of a task's running statistics, or None for a task not seen (or dropped)."""
        with self._lock:
            stats = self._stats.get(task_id)
            return stats.copy() if stats is not None else None

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        latency = execution.latency_ms
        if latency is None or not math.isfinite(latency):
            return self._decide(False, "no latency reported")
        with self._lock:  # judge, then learn, as one step: concurrent calls see consistent stats
            stats = self._task(execution.task_id)
            count, mean, stddev = stats.count, stats.mean, stats.stddev
            stats.add(latency)
        if count < self.config.warmup:
            return self._decide(False, f"warming up ({count} of {self.config.warmup} executions)")
        spread = max(stddev, self.config.min_stddev_ms)
        z = (latency - mean) / spread
        metadata = {"latency_ms": latency, "mean_ms": mean, "stddev_ms": stddev, "z": z}
        outlier = z > self.config.sigma or (self.config.two_sided and z < -self.config.sigma)
        direction = "above" if z >= 0 else "below"
        reason = (
            f"latency {latency:.1f} ms is {abs(z):.1f} sigma {direction} the mean of "
            f"{mean:.1f} ms (threshold {self.config.sigma:g} sigma)"
        )
        return self._decide(outlier, reason, metadata)

    def _task(self, task_id: UUID) -> RunningStats:
        stats = self._stats.get(task_id)
        if stats is None:
            stats = self._stats[task_id] = RunningStats()
            if len(self._stats) > self.config.max_tasks:
                self._stats.popitem(last=False)
        else:
            self._stats.move_to_end(task_id)
        return stats

    def _decide(
        self, sample: bool, reason: str, metadata: dict[str, float] | None = None
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(
            should_sample=sample, reason=reason, sampler_type=self.name, metadata=metadata or {}
        )
