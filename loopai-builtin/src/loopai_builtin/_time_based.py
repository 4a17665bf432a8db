"""The ``time-based-sampler``: the first execution of a task, then one per interval."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, field_validator

import loopai
from loopai_builtin._version import __version__

__all__ = ["TimeBasedSampler", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.I)
_WHOLE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+", re.I)


def parse_duration(value: Any) -> Any:
    """``"5m"``, ``"1h30m"``, ``"90s"`` or ``"250ms"`` as a :class:`~datetime.timedelta`.

    Anything else is passed on to pydantic, which reads seconds (``300``), ISO 8601
    (``"PT5M"``) and ``"HH:MM:SS"``.
    """
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        seconds = sum(float(number) * _UNITS[unit.lower()] for number, unit in _PART.findall(value))
        return timedelta(seconds=seconds)
    return value


class TimeBasedSampler(loopai.SamplerPlugin):
    """Samples the first execution of a task, then the first one at least ``interval`` after
    the task's last sampled execution (measured on ``executed_at``).

    It keeps no state: the host fills ``context.last_sample_time`` with the task's last
    sampled execution time, whichever sampler chose it. Each "yes" carries the interval as
    ``claim_interval``, so that the host samples one execution per interval even when many
    threads, or many processes sharing one state store, ask at once.
    """

    name = "time-based-sampler"
    version = __version__
    author = "Loopai"
    description = "Samples the first execution of a task, then one execution per time interval."
    priority = 50

    class Config(BaseModel):
        """Settings of the ``time-based-sampler``."""

        interval: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(minutes=5)
        """Time between samples: seconds, ``"5m"``, ``"1h30m"``, ``"PT5M"`` or ``"00:05:00"``."""

        @field_validator("interval")
        @classmethod
        def _positive(cls, value: timedelta) -> timedelta:
            if value <= timedelta(0):
                raise ValueError("must be a positive duration")
            return value

    config: Config

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        """See :meth:`loopai.HookSpecs.should_sample`."""
        interval = self.config.interval
        last = context.last_sample_time
        metadata: dict[str, Any] = {"interval_seconds": interval.total_seconds()}
        if last is None:
            return loopai.SamplingDecision(
                should_sample=True,
                reason="first execution of the task",
                sampler_type=self.name,
                metadata=metadata,
                claim_interval=interval,
            )
        elapsed = execution.executed_at - last
        due = last + interval
        metadata.update(
            elapsed_seconds=elapsed.total_seconds(),
            last_sample_time=last.isoformat(),
            next_sample_at=due.isoformat(),
        )
        sampled = elapsed >= interval
        if sampled:
            reason = f"{elapsed.total_seconds():g} s since the last sample (interval {interval.total_seconds():g} s)"
        else:
            reason = f"next sample due at {due.isoformat()} (interval {interval.total_seconds():g} s)"
        return loopai.SamplingDecision(
            should_sample=sampled,
            reason=reason,
            sampler_type=self.name,
            metadata=metadata,
            claim_interval=interval if sampled else None,
        )
