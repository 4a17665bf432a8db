"""What one host call returns: every plugin's answer, and which plugins failed and how."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from loopai._models import SamplingDecision, ValidationResult, WebhookEvent

__all__ = ["EmitReport", "PluginFailure", "SamplingReport", "ValidationReport"]

FailureKind = Literal["exception", "wrong-type", "timeout"]


class PluginFailure:
    """One plugin call that went wrong: which plugin, which hook, and what happened.

    ``problem`` is ``exception`` (it raised), ``wrong-type`` (it returned something
    other than the hook's result type) or ``timeout`` (it ran past its timeout).
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


class ValidationReport:
    """The outcome of ``Host.validate``: each validator's result, in the order they ran.

    ``is_valid`` is true when every result is valid (and vacuously when no validator
    is enabled). ``failures`` names validators that raised, returned the wrong type or
    timed out; each also appears in ``results`` as an invalid result. ``stopped_early``
    is true when ``stop_on_failure`` skipped the remaining validators.
    """

    # Class-level defaults: the host builds reports with object.__new__ and sets only
    # what differs, which keeps a dispatch close to the cost of a bare loop.
    results: list[ValidationResult]
    failures: Sequence[PluginFailure] = _NO_FAILURES
    stopped_early: bool = False
    is_valid: bool = True

    def __init__(
        self,
        results: list[ValidationResult],
        failures: Sequence[PluginFailure] | None = None,
        stopped_early: bool = False,
    ) -> None:
        self.results = results
        if failures:
            self.failures = failures
        if stopped_early:
            self.stopped_early = True
        if not all(result.is_valid for result in results):
            self.is_valid = False

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

    ``decisions`` are the answers of the samplers asked, in order; the last one is the
    winner when ``should_sample`` is true, and ``winner`` is that sampler's name.
    ``failures`` names samplers that went wrong (each counted as "no").
    """

    decisions: list[SamplingDecision]
    failures: Sequence[PluginFailure] = _NO_FAILURES
    winner: str | None = None

    def __init__(
        self,
        decisions: list[SamplingDecision],
        failures: Sequence[PluginFailure] | None = None,
        winner: str | None = None,
    ) -> None:
        self.decisions = decisions
        if failures:
            self.failures = failures
        if winner is not None:
            self.winner = winner

    @property
    def decision(self) -> SamplingDecision | None:
        """The decision that selected the execution, or None when none did."""
        if self.decisions and self.decisions[-1].should_sample:
            return self.decisions[-1]
        return None

    @property
    def should_sample(self) -> bool:
        """True when a sampler selected the execution."""
        return bool(self.decisions) and self.decisions[-1].should_sample

    @property
    def reason(self) -> str:
        """The winning sampler's reason, or why nothing was sampled."""
        decision = self.decision
        if decision is not None:
            return decision.reason
        return "no sampler selected it" if self.decisions or self.failures else "no sampler is enabled"

    @property
    def sampler_type(self) -> str:
        """The winning sampler's ``sampler_type`` (its name when it gave none), or ''."""
        decision = self.decision
        if decision is None:
            return ""
        return decision.sampler_type or self.winner or ""

    def __bool__(self) -> bool:
        return self.should_sample

    def __repr__(self) -> str:
        return f"SamplingReport(should_sample={self.should_sample}, sampler_type={self.sampler_type!r})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``should_sample``, ``reason``, ``sampler_type``, ``decisions``, ``failures``."""
        return {
            "should_sample": self.should_sample,
            "reason": self.reason,
            "sampler_type": self.sampler_type,
            "decisions": [d.model_dump(mode="json") for d in self.decisions],
            "failures": [f.to_dict() for f in self.failures],
        }


class EmitReport:
    """The outcome of ``Host.emit``: which handlers took the event, and which gave up.

    ``delivered`` names the handlers that returned without raising (after retries,
    perhaps); ``failures`` names those that failed every attempt, with the last error.
    ``ok`` is true when no handler failed. With a durable outbox, handlers that took
    this event id before are not called again and appear in neither list.
    """

    event: WebhookEvent
    delivered: list[str]
    failures: Sequence[PluginFailure] = _NO_FAILURES

    def __init__(
        self, event: WebhookEvent, delivered: list[str], failures: Sequence[PluginFailure] | None = None
    ) -> None:
        self.event = event
        self.delivered = delivered
        if failures:
            self.failures = failures

    @property
    def ok(self) -> bool:
        """True when every matching handler took the event."""
        return not self.failures

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"EmitReport(event_type={str(self.event.event_type)!r}, delivered={self.delivered}, failures={len(self.failures)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``event_id``, ``event_type``, ``delivered``, ``failures``."""
        return {
            "event_id": str(self.event.event_id),
            "event_type": str(self.event.event_type),
            "delivered": list(self.delivered),
            "failures": [f.to_dict() for f in self.failures],
        }
