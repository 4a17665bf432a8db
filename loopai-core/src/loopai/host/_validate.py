"""The validate strategy: every enabled validator, in priority order, optionally stopping at the first "invalid".

A validator that raises, times out or returns something other than a
:class:`loopai.ValidationResult` is reported as an invalid result naming it, and listed in the
report's ``failures``; the others still run. A result without ``validator_type`` gets the
validator's name in the report (which reads it when its results are first read: the loop reads
no more of a result than ``is_valid``). The sync and async drivers share this policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopai._isolation import PASS_THROUGH, Raised
from loopai._models import ValidationResult
from loopai._report import PluginFailure, ValidationReport
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call

__all__ = ["avalidate", "validate"]


def validate(calls: Sequence[Call], execution: Any, context: Any, stop: bool, outcomes: Outcomes) -> ValidationReport:
    """Run ``calls`` on ``execution``; with ``stop`` the first invalid result ends the run."""
    results: list[ValidationResult] = []
    failures: list[PluginFailure] | None = None
    valid = True
    for call in calls:
        try:  # the isolation policy of loopai._isolation, written out: this loop runs per execution
            result = call.fn(execution, context)
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # noqa: BLE001 - the plugin's failure, reported below
            result = Raised(exc)
        if type(result) is not ValidationResult:
            failures = failures if failures is not None else []
            result = _settled(call, result, failures, outcomes)
        results.append(result)
        if not result.is_valid:
            valid = False
            if stop:
                break
    return ValidationReport(results, failures, len(results) < len(calls), valid, calls)


async def avalidate(
    calls: Sequence[Call], execution: Any, context: Any, stop: bool, outcomes: Outcomes
) -> ValidationReport:
    """:func:`validate` from async code: async validators are awaited on the caller's loop."""
    results: list[ValidationResult] = []
    failures: list[PluginFailure] = []
    valid = True
    for call in calls:
        result = await call.afn(execution, context)  # isolated: see loopai.host._plan
        if type(result) is not ValidationResult:
            result = _settled(call, result, failures, outcomes)
        results.append(result)
        if not result.is_valid:
            valid = False
            if stop:
                break
    return ValidationReport(results, failures, len(results) < len(calls), valid, calls)


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
