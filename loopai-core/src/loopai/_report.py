"""What one host call returns: every plugin's answer, and which plugins failed and how."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from loopai._models import SamplingDecision, ValidationResult, WebhookEventType

__all__ = ["EmitReport", "PluginFailure", "SamplingReport", "ValidationReport"]

FailureKind = Literal["exception", "wrong-type", "timeout", "crashed", "memory-limit", "cpu-limit", "disabled"]
"""What went wrong in one plugin call (see :class:`PluginFailure`)."""


class PluginFailure:
    """One plugin call that went wrong: which plugin, which hook, and what happened.

    ``problem`` is ``exception`` (it raised), ``wrong-type`` (it returned something
    other than the hook's result type) or ``timeout`` (it ran past its timeout; an
    isolated plugin's worker process is then killed and replaced). For an isolated plugin
    (``isolation = "process"``) it may also be ``crashed`` (its worker process died: a
    segfault, ``os._exit``, a signal), ``memory-limit`` (it ran out of its
    ``memory_limit_mb``) or ``cpu-limit`` (a call used more than ``cpu_time_limit_s``), and
    after five such failures in a row ``disabled`` (the validator was not called: it is given up
    on until a reload, and each record is judged invalid meanwhile, never valid without it).
    ``error`` is the exception, when there was one.
    """

    __slots__ = ("attempts", "error", "hook", "message", "plugin", "problem")

    def __init__(
        self,
        plugin: str,
        hook: str,
        problem: FailureKind,
        message: str,
        error: BaseException | None = None,
        attempts: int = 1,
    ) -> None:
        self.plugin = plugin
        self.hook = hook
        self.problem = problem
        self.message = message
        self.error = error
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"PluginFailure(plugin={self.plugin!r}, hook={self.hook!r}, problem={self.problem!r})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "plugin": self.plugin,
            "hook": self.hook,
            "problem": self.problem,
            "message": self.message,
            "attempts": self.attempts,
        }


_NO_FAILURES: tuple[PluginFailure, ...] = ()


class _Named(Protocol):
    """A plugin as a report needs it: its name."""

    @property
    def name(self) -> str: ...


class ValidationReport:
    """The outcome of ``Host.validate``: each validator's result, in the order they ran.

    ``is_valid`` is true when every result is valid (and vacuously when no validator
    is enabled). ``failures`` names validators that raised, returned the wrong type or
    timed out; each also appears in ``results`` as an invalid result. ``stopped_early``
    is true when ``stop_on_failure`` skipped the remaining validators. A result without
    ``validator_type`` is reported under the name of the plugin that returned it (in a copy:
    one result object may be returned by many calls).
    """

    __slots__ = ("_plugins", "_results", "failures", "is_valid", "stopped_early")

    def __init__(
        self,
        results: list[ValidationResult],
        failures: Sequence[PluginFailure] | None = None,
        stopped_early: bool = False,
        is_valid: bool | None = None,
        plugins: Sequence[_Named] | None = None,
    ) -> None:
        """``is_valid`` may be given when the caller already knows it (it must agree with ``results``).

        ``plugins`` (anything with a ``name``), when given, are the plugins that returned
        ``results``, in the same order: a result without ``validator_type`` is given its
        plugin's name when :attr:`results` is first read (the host's loop reads no more of a
        result than ``is_valid``).
        """
        self._results = results
        self._plugins = plugins
        self.failures: Sequence[PluginFailure] = failures if failures else _NO_FAILURES
        self.stopped_early = stopped_early
        self.is_valid = all(result.is_valid for result in results) if is_valid is None else is_valid

    @property
    def results(self) -> list[ValidationResult]:
        """Each validator's result, in the order they ran, each naming its validator."""
        plugins = self._plugins
        if plugins is not None:
            self._results = [
                result if result.validator_type else result.model_copy(update={"validator_type": plugin.name})
                for result, plugin in zip(self._results, plugins, strict=False)  # fewer results after a stop
            ]
            self._plugins = None
        return self._results

    @results.setter
    def results(self, results: list[ValidationResult]) -> None:
        self._results, self._plugins = results, None

    def __bool__(self) -> bool:
        return self.is_valid

    def __repr__(self) -> str:
        return f"ValidationReport(is_valid={self.is_valid}, results={len(self.results)}, failures={len(self.failures)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``is_valid``, ``results``, ``failures``, ``stopped_early``."""
        return {
            "is_valid": self.is_valid,
            "results": [r.model_dump(mode="json") for r in self.results],
            "failures": [f.to_dict() for f in self.failures],
            "stopped_early": self.stopped_early,
        }


class SamplingReport:
    """The outcome of ``Host.should_sample``: the winning decision, if any sampler said yes.

    ``decision`` is the decision that selected the execution and ``winner`` the name of
    the sampler that made it (both None when nothing was sampled); ``asked`` counts the
    samplers asked; ``failures`` names samplers that went wrong (each counted as "no").
    """

    __slots__ = ("asked", "decision", "failures", "winner")

    def __init__(
        self,
        decision: SamplingDecision | None = None,
        winner: str | None = None,
        asked: int = 0,
        failures: Sequence[PluginFailure] | None = None,
    ) -> None:
        chosen = decision is not None and decision.should_sample
        self.decision = decision if chosen else None
        self.winner = winner if chosen else None
        self.asked = asked
        self.failures: Sequence[PluginFailure] = failures or _NO_FAILURES

    @property
    def should_sample(self) -> bool:
        """True when a sampler selected the execution."""
        return self.decision is not None

    @property
    def reason(self) -> str:
        """The winning sampler's reason, or why nothing was sampled."""
        if self.decision is not None:
            return self.decision.reason
        return "no sampler selected it" if self.asked else "no sampler is enabled"

    @property
    def sampler_type(self) -> str:
        """The winning sampler's ``sampler_type`` (its name when it gave none), or ''."""
        if self.decision is None:
            return ""
        return self.decision.sampler_type or self.winner or ""

    def __bool__(self) -> bool:
        return self.should_sample

    def __repr__(self) -> str:
        return f"SamplingReport(should_sample={self.should_sample}, sampler_type={self.sampler_type!r})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``should_sample``, ``reason``, ``sampler_type``, ``winner``, ``decision``, ``failures``."""
        return {
            "should_sample": self.should_sample,
            "reason": self.reason,
            "sampler_type": self.sampler_type,
            "winner": self.winner,
            "decision": self.decision.model_dump(mode="json") if self.decision is not None else None,
            "failures": [f.to_dict() for f in self.failures],
        }


class EmitReport:
    """The outcome of ``Host.emit``: which handlers took the event, which gave up, which will get it.

    Without an outbox, handlers are called at once: ``delivered`` names those that returned
    without raising (after retries, perhaps), in priority order; ``failures`` those that failed
    every attempt, with the last error. With an outbox, ``emit`` records the event and
    returns: ``pending`` names the handlers it was recorded for, which the host's delivery
    workers will deliver to (``Host.delivery_report()`` and ``loopai events list`` tell how
    that went); ``delivered`` and ``failures`` are then empty. ``ok`` is true when no handler
    failed. Handlers that had this event id before (an outbox delivers an id once) appear in
    none of them. Reports are immutable: the host may hand the same one out for many events.
    """

    __slots__ = ("delivered", "event_type", "failures", "pending")

    event_type: WebhookEventType
    delivered: tuple[str, ...]
    failures: tuple[PluginFailure, ...]
    pending: tuple[str, ...]

    def __init__(
        self,
        event_type: WebhookEventType,
        delivered: Sequence[str] = (),
        failures: Sequence[PluginFailure] = (),
        pending: Sequence[str] = (),
    ) -> None:
        setter = object.__setattr__
        setter(self, "event_type", event_type)
        setter(self, "delivered", tuple(delivered))
        setter(self, "failures", tuple(failures))
        setter(self, "pending", tuple(pending))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("an EmitReport is immutable")

    @property
    def ok(self) -> bool:
        """True when no handler failed (with an outbox: the event was recorded)."""
        return not self.failures

    def __bool__(self) -> bool:
        return not self.failures

    def __repr__(self) -> str:
        pending = f", pending={list(self.pending)}" if self.pending else ""
        return (
            f"EmitReport(event_type={self.event_type.value!r}, delivered={list(self.delivered)}, "
            f"failures={len(self.failures)}{pending})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``event_type``, ``delivered``, ``failures``, ``pending``."""
        return {
            "event_type": self.event_type.value,
            "delivered": list(self.delivered),
            "failures": [f.to_dict() for f in self.failures],
            "pending": list(self.pending),
        }
