"""The validate strategy: every enabled validator, in priority order, optionally stopping at the first "invalid".

A validator that raises, times out or returns something other than a
:class:`loopai.ValidationResult` is reported as an invalid result naming it, and listed in the
report's ``failures``; the others still run. The sync and async drivers share this policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopai._models import ValidationResult
from loopai._report import PluginFailure, ValidationReport
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call

__all__ = ["avalidate", "validate"]


def validate(calls: Sequence[Call], execution: Any, context: Any, stop: bool, outcomes: Outcomes) -> ValidationReport:
    """Run ``calls`` on ``execution``; with ``stop`` the first invalid result ends the run."""
    results: list[ValidationResult] = []
    failures: list[PluginFailure] = []
    for call in calls:
        result = call.fn(execution, context)
        if type(result) is not ValidationResult:
            result = _settled(call, result, failures, outcomes)
        results.append(result)
        if stop and not result.is_valid:
            break
    return ValidationReport(results, failures, stopped_early=len(results) < len(calls))


async def avalidate(
    calls: Sequence[Call], execution: Any, context: Any, stop: bool, outcomes: Outcomes
) -> ValidationReport:
    """:func:`validate` from async code: async validators are awaited on the caller's loop."""
    results: list[ValidationResult] = []
    failures: list[PluginFailure] = []
    for call in calls:
        result = await call.afn(execution, context)
        if type(result) is not ValidationResult:
            result = _settled(call, result, failures, outcomes)
        results.append(result)
        if stop and not result.is_valid:
            break
    return ValidationReport(results, failures, stopped_early=len(results) < len(calls))


def _settled(call: Call, outcome: Any, failures: list[PluginFailure], outcomes: Outcomes) -> ValidationResult:
    settled = outcomes.settle(call, outcome, ValidationResult, "validate")
    if not isinstance(settled, PluginFailure):
        return settled  # type: ignore[no-any-return]
    failures.append(settled)
    return ValidationResult(
        is_valid=False,
        validator_type=call.name,
        message=settled.message,
        metadata={"plugin_failure": settled.problem},
    )
