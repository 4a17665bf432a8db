"""A sampler that samples a task's executions while its error rate is above a threshold."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import loopai
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from loopai import Host

__version__ = "0.1.0"


class ErrorRateSampler(loopai.SamplerPlugin):
    """Samples every execution of a task while the task's error rate is at or above ``threshold``.

    The rate is the host's: :meth:`loopai.Host.statistics` counts each task's executions and
    the failed ones (``failed_executions``; the :class:`loopai.SamplingContext` carries only
    the total and sampled counts). The sampler keeps the host it was started by (a weak
    reference, taken in :meth:`startup`) and adds the execution being decided to the
    counts, which are the host's *before* it. Below ``min_executions`` the rate is not
    trusted and nothing is sampled; an instance that no host started samples nothing.

    One instance belongs to one host: a second host that starts it takes it over.
    Priority 150, ahead of the built-in samplers: while a task is failing, its reason wins.
    """

    name = "error-rate-sampler"
    description = "Samples every execution of a task while its error rate is above a threshold."
    version = __version__
    author = "Loopai"
    priority = 150

    class Config(BaseModel):
        """Settings: ``[plugins.samplers.error-rate-sampler.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        threshold: float = Field(
            default=0.1,
            gt=0.0,
            le=1.0,
            description="Error rate (failed / total) at or above which executions are sampled.",
        )
        min_executions: int = Field(
            default=20, ge=1, description="Executions a task needs before its rate is trusted."
        )

    config: Config
    _host: weakref.ReferenceType[Host] | None = None

    def startup(self, host: Host) -> None:
        """Keep the host whose statistics give the error rate."""
        self._host = weakref.ref(host)

    def shutdown(self, host: Host) -> None:
        """Let the host go."""
        if self._host is not None and self._host() is host:
            self._host = None

    def error_rate(self, execution: loopai.ExecutionRecord) -> tuple[int, int] | None:
        """``(failed, total)`` of the task, this execution included; None without a host."""
        host = self._host() if self._host is not None else None
        if host is None:
            return None
        stats = host.statistics(execution.task_id)
        failed = stats.failed_executions + (execution.status is not loopai.ExecutionStatus.SUCCESS)
        return failed, stats.total_executions + 1

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        counts = self.error_rate(execution)
        if counts is None:
            return self._decide(False, "no host statistics: this sampler was not started by a host")
        failed, total = counts
        rate = failed / total
        metadata = {"failed": failed, "total": total, "error_rate": rate}
        if total < self.config.min_executions:
            reason = f"{total} of {self.config.min_executions} executions needed to judge the rate"
            return self._decide(False, reason, metadata)
        high = rate >= self.config.threshold
        relation = "at or above" if high else "below"
        reason = (
            f"error rate {rate:.1%} ({failed}/{total}) is {relation} {self.config.threshold:.1%}"
        )
        return self._decide(high, reason, metadata)

    def _decide(
        self, sample: bool, reason: str, metadata: dict[str, float] | None = None
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(
            should_sample=sample, reason=reason, sampler_type=self.name, metadata=metadata or {}
        )
