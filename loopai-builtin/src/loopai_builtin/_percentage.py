"""The ``percentage-sampler``: samples a fixed share of executions at random, reproducibly with a seed."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, Field

import loopai
from loopai_builtin._version import __version__

__all__ = ["PercentageSampler"]

_MASK: Final = (1 << 64) - 1


def _mix(value: int) -> float:
    """SplitMix64's finaliser: a 64-bit number to a uniform float in [0, 1), the same everywhere."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((value ^ (value >> 31)) >> 11) * (1.0 / (1 << 53))


class PercentageSampler(loopai.SamplerPlugin):
    """Samples each execution with probability ``sampling_rate``.

    A rate in the :class:`loopai.SamplingContext` wins when it is above zero, so a task
    can carry its own rate. With ``seed`` the decisions are reproducible, task by task: the
    n-th execution of a task (the context's ``total_executions``) draws the same number in
    every run with that seed, whatever other tasks' records come between and however many
    ``loopai run --workers`` share the input. A context without a task draws from the
    sampler's own seeded sequence. The global random generator is never touched.
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
        """Seed of the sampler's draws, for reproducible runs."""

    config: Config

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._lock = threading.Lock()
        self._reset()

    def configure(self, config: BaseModel | Mapping[str, Any] | None, *, where: str | None = None) -> None:
        """Apply new settings; the draws start again from the (new) seed."""
        super().configure(config, where=where)
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        seed = self.config.seed
        self._random = random.Random(seed)
        self._seed = seed
        self._texts: dict[tuple[bool, float], str] = {}

    def _draw(self, context: loopai.SamplingContext) -> float:
        seed, task = self._seed, context.task_id
        if seed is None or task is None:
            with self._lock:  # one draw per call, in call order, even from many threads
                return self._random.random()
        # Seeded, for a task: a function of (seed, task, position), not of what came before. The
        # hash of a tuple of integers is the same in every process (unlike a string's).
        return _mix(hash((seed, task.int, context.total_executions)) & _MASK)

    def _tail(self, sampled: bool, rate: float) -> str:
        """`` < sampling rate 0.1``: the reason's end, formatted once per rate."""
        key = (sampled, rate)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = f"{'<' if sampled else '>='} sampling rate {rate:g}"
        return text

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        """See :meth:`loopai.HookSpecs.should_sample`."""
        rate = context.sampling_rate if context.sampling_rate > 0 else self.config.sampling_rate
        value = self._draw(context)
        sampled = value < rate
        total, chosen = context.total_executions, context.sampled_executions
        return loopai.SamplingDecision(
            should_sample=sampled,
            reason=f"random value {value:.4f} {self._tail(sampled, rate)}",
            sampler_type=self.name,
            metadata={
                "sampling_rate": rate,
                "random_value": value,
                "total_executions": total,
                "sampled_executions": chosen,
                "actual_sampling_rate": chosen / total if total else 0.0,
            },
        )
