"""What one record of ``loopai run`` produces: the events it raises, their payloads, its output line."""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

from loopai._models import (
    EventSeverity,
    ExecutionRecord,
    ExecutionStatus,
    ValidationResult,
    WebhookEvent,
    WebhookEventType,
    utc_now,
)
from loopai._report import SamplingReport, ValidationReport
from loopai._run_tasks import Crossing

__all__ = [
    "ALERT_EVENTS",
    "Raised",
    "build_events",
    "error_line",
    "raised_events",
    "result_line",
]

_T = WebhookEventType
Raised = list[tuple[WebhookEventType, EventSeverity]]

_BY_STATUS: Final = {
    ExecutionStatus.SUCCESS: (_T.PROGRAM_EXECUTION_COMPLETED, EventSeverity.INFO),
    ExecutionStatus.ERROR: (_T.PROGRAM_EXECUTION_FAILED, EventSeverity.ERROR),
    ExecutionStatus.TIMEOUT: (_T.PROGRAM_EXECUTION_TIMEOUT, EventSeverity.WARNING),
}
_VALIDATION: Final = {
    True: (_T.VALIDATION_COMPLETED, EventSeverity.INFO),
    False: (_T.VALIDATION_FAILED, EventSeverity.WARNING),
}
_BREACH: Final = {
    "accuracy": (_T.ACCURACY_THRESHOLD_BREACHED, EventSeverity.ERROR, "share of valid records"),
    "latency": (_T.LATENCY_THRESHOLD_BREACHED, EventSeverity.WARNING, "p95 latency_ms"),
}
ALERT_EVENTS: Final = frozenset(
    {
        _T.PROGRAM_EXECUTION_FAILED,
        _T.PROGRAM_EXECUTION_TIMEOUT,
        _T.ACCURACY_THRESHOLD_BREACHED,
        _T.LATENCY_THRESHOLD_BREACHED,
    }
)
"""What ``loopai run`` shows on the console handler when the configuration does not set it up."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def raised_events(execution: ExecutionRecord, validation: ValidationReport, crossings: list[Crossing]) -> Raised:
    """The events of one record, in order: its run status, its validation (when a validator
    ran), then each threshold it made its task cross."""
    raised = [_BY_STATUS[execution.status]]
    if validation.results:
        raised.append(_VALIDATION[validation.is_valid])
    for crossing in crossings:
        event_type, severity, _ = _BREACH[crossing.metric]
        raised.append((event_type, severity))
    return raised


def build_events(
    raised: Raised,
    wanted: frozenset[WebhookEventType],
    *,
    line: int,
    task: str,
    execution: ExecutionRecord,
    validation: ValidationReport,
    sampling: SamplingReport,
    crossings: list[Crossing],
) -> list[WebhookEvent]:
    """The events of ``raised`` whose type is in ``wanted``, with their payloads."""
    events = []
    for event_type, severity in raised:
        if event_type not in wanted:
            continue
        payload: dict[str, Any] = {"line": line, "task": task}
        if event_type in (_T.VALIDATION_COMPLETED, _T.VALIDATION_FAILED):
            payload.update(validation_json(validation))
        elif event_type in (_T.ACCURACY_THRESHOLD_BREACHED, _T.LATENCY_THRESHOLD_BREACHED):
            crossing = next(c for c in crossings if _BREACH[c.metric][0] is event_type)
            payload.update(
                metric=crossing.metric,
                statistic=_BREACH[crossing.metric][2],
                value=round(crossing.value, 4),
                threshold=crossing.threshold,
                window=crossing.in_window,
            )
        else:
            payload.update(
                status=execution.status.value,
                latency_ms=execution.latency_ms,
                error_message=execution.error_message,
                sampled=sampling.decision is not None,
            )
        # Built without validation: every value comes from validated models or from the engine.
        event = WebhookEvent.model_construct(
            event_id=uuid.uuid4(),
            event_type=event_type,
            timestamp=utc_now(),
            task_id=execution.task_id,
            execution_id=execution.id,
            program_id=execution.program_id,
            payload=payload,
            severity=severity,
        )
        events.append(event)
    return events


def validation_json(validation: ValidationReport) -> dict[str, Any]:
    """``is_valid`` and each validator's verdict, message and errors."""
    return {
        "is_valid": validation.is_valid,
        "results": [
            {"validator_type": r.validator_type, "is_valid": r.is_valid, "message": r.message, "errors": r.errors}
            for r in validation.results
        ],
    }


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
    UUIDs and integers need no escaping.
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
    decision = sampling.decision
    if decision is not None:
        return _encode({"should_sample": True, "reason": decision.reason, "sampler_type": sampling.sampler_type})
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
