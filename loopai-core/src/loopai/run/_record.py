"""``loopai run``'s output lines: one JSON object per input line, assembled from cached pieces."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from pydantic_core import to_json

from loopai._models import EventSeverity, ExecutionRecord, ValidationResult, WebhookEventType
from loopai._report import SamplingReport, ValidationReport

__all__ = ["ALERT_EVENTS", "error_line", "result_line"]

ALERT_EVENTS: Final = frozenset(
    {
        WebhookEventType.PROGRAM_EXECUTION_FAILED,
        WebhookEventType.PROGRAM_EXECUTION_TIMEOUT,
        WebhookEventType.ACCURACY_THRESHOLD_BREACHED,
        WebhookEventType.LATENCY_THRESHOLD_BREACHED,
    }
)
"""What ``loopai run`` shows on the console handler when the configuration does not set it up."""

Raised = Sequence[tuple[WebhookEventType, EventSeverity]]

_ascii = json.JSONEncoder(separators=(",", ":")).encode


def _encode(value: Any) -> str:
    """Compact JSON text of ``value`` (pydantic-core's encoder, several times json's speed); text that
    is not valid Unicode (a plugin's message with a lone surrogate) is written escaped, never refused."""
    try:
        return to_json(value).decode()
    except (ValueError, UnicodeError):
        return _ascii(value)


def result_line(
    line: int,
    execution: ExecutionRecord,
    task_id: str,
    validation: ValidationReport,
    sampling: SamplingReport,
    raised: Raised,
) -> str:
    """The output line (without its newline) of a processed record (``task_id``: its task's id as text).

    Assembled from pieces rather than encoded as one dict: the pieces that repeat from record
    to record (a valid result's verdict, "not sampled", the event list) are encoded once.
    UUIDs and integers need no escaping. A sampler that went wrong is listed in ``sampling``'s
    ``failures`` (as a validator that went wrong is an invalid result in ``validation``'s).
    """
    results = ",".join([_result_text(r) for r in validation.results])
    valid = "true" if validation.is_valid else "false"
    return (
        f'{{"line":{line},"execution_id":"{execution.id}","task_id":"{task_id}",'
        f'"validation":{{"is_valid":{valid},"results":[{results}]}},'
        f'"sampling":{_sampling_text(sampling)},"events":{_events_text(raised)},"error":null}}'
    )


_CACHE_LIMIT = 4096
_results_cache: dict[tuple[str, bool, str], str] = {}
_sampling_cache: dict[str, str] = {}
_events_cache: dict[tuple[WebhookEventType, ...], str] = {}


def _remember(cache: dict[Any, str], key: Any, text: str) -> str:
    if len(cache) >= _CACHE_LIMIT:  # messages that never repeat: keep memory bounded
        cache.clear()
    cache[key] = text
    return text


def _result_text(result: ValidationResult) -> str:
    if result.errors:
        return _encode(
            {
                "validator_type": result.validator_type,
                "is_valid": result.is_valid,
                "message": result.message,
                "errors": result.errors,
            }
        )
    key = (result.validator_type, result.is_valid, result.message)
    text = _results_cache.get(key)
    if text is None:
        verdict = {"validator_type": key[0], "is_valid": key[1], "message": key[2], "errors": {}}
        text = _remember(_results_cache, key, _encode(verdict))
    return text


def _sampling_text(sampling: SamplingReport) -> str:
    if sampling.failures:  # samplers that went wrong (each counted as "no") are named, as failed validators are
        return _encode(
            {
                "should_sample": sampling.should_sample,
                "reason": sampling.reason,
                "sampler_type": sampling.sampler_type,
                "failures": [failure.to_dict() for failure in sampling.failures],
            }
        )
    decision = sampling.decision
    if decision is not None:
        reason, sampler = _encode(decision.reason), _encode(sampling.sampler_type)
        return f'{{"should_sample":true,"reason":{reason},"sampler_type":{sampler}}}'
    reason = sampling.reason
    text = _sampling_cache.get(reason)
    if text is None:
        text = _remember(
            _sampling_cache, reason, _encode({"should_sample": False, "reason": reason, "sampler_type": ""})
        )
    return text


def _events_text(raised: Raised) -> str:
    key = tuple([event_type for event_type, _ in raised])
    text = _events_cache.get(key)
    if text is None:
        text = _remember(_events_cache, key, _encode([event_type.value for event_type in key]))
    return text


def error_line(line: int, error: str) -> str:
    """The output line (without its newline) of a line that could not be processed."""
    return _encode(
        {
            "line": line,
            "execution_id": None,
            "task_id": None,
            "validation": None,
            "sampling": None,
            "events": [],
            "error": error,
        }
    )
