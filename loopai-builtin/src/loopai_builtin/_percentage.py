"""The ``percentage-sampler``: samples a fixed share of executions at random, reproducibly with a seed."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field

import loopai
from loopai_builtin._version import __version__

__all__ = ["PercentageSampler"]


class PercentageSampler(loopai.SamplerPlugin):
    """Samples each execution with probability ``sampling_rate``.

    A rate in the :class:`loopai.SamplingContext` wins when it is above zero, so a task
    can carry its own rate. With ``seed`` the sequence of decisions is reproducible
    (the sampler owns a private :class:`random.Random`; the global one is never touched).
    """

    name = "percentage-sampler"
    version = __version__
    author = "Loopai"
    description = "Samples a configurable share of executions at random."
    priority = 100

    class Config(BaseModel):
        """Settings of the ``percentage-sampler``."""

        sampling_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
        """Share of executions to sample, 0..1, when the context gives no rate of its own."""
        seed: int | None = None
        """Seed of the sampler's own random generator, for reproducible runs."""

    config: Config

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._lock = threading.Lock()
        self._random = random.Random(self.config.seed)

    def configure(self, config: BaseModel | Mapping[str, Any] | None, *, where: str | None = None) -> None:
        """Apply new settings; the random generator starts again from the (new) seed."""
        super().configure(config, where=where)
        with self._lock:
            self._random = random.Random(self.config.seed)

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        """See :meth:`loopai.HookSpecs.should_sample`."""
        rate = context.sampling_rate if context.sampling_rate > 0 else self.config.sampling_rate
        with self._lock:  # one draw per call, in call order, even from many threads
            value = self._random.random()
        sampled = value < rate
        total, chosen = context.total_executions, context.sampled_executions
        relation = "<" if sampled else ">="
        return loopai.SamplingDecision(
            should_sample=sampled,
            reason=f"random value {value:.4f} {relation} sampling rate {rate:g}",
            sampler_type=self.name,
            metadata={
                "sampling_rate": rate,
                "random_value": value,
                "total_executions": total,
                "sampled_executions": chosen,
                "actual_sampling_rate": chosen / total if total else 0.0,
            },
        )
