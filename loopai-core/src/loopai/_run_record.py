"""What one record of ``loopai run`` produces: the events it raises, their payloads, its output line."""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

from loopai._models import EventSeverity, ExecutionRecord, ExecutionStatus, WebhookEvent, WebhookEventType, utc_now
from loopai._report import SamplingReport, ValidationReport
from loopai._run_tasks import Crossing

__all__ = [
    "ALERT_EVENTS",
    "Raised",
    "build_events",
    "error_line",
    "raised_events",
    "result_line",
    "supported_events",
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


def supported_events(handler: object) -> frozenset[WebhookEventType]:
    """The event types a webhook handler takes (its ``supported_events``; default all)."""
    declared = getattr(handler, "supported_events", None)
    if declared is None:
        return frozenset(WebhookEventType)
    if isinstance(declared, (str, WebhookEventType)):
        declared = [declared]
    return frozenset(WebhookEventType(e) for e in declared)


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
    validation: ValidationReport,
    sampling: SamplingReport,
    raised: Raised,
) -> str:
    """The output line (without its newline) of a processed record."""
    return _encode(
        {
            "line": line,
            "execution_id": str(execution.id),
            "task_id": str(execution.task_id),
            "validation": validation_json(validation),
            "sampling": {
                "should_sample": sampling.decision is not None,
                "reason": sampling.reason,
                "sampler_type": sampling.sampler_type,
            },
            "events": [event_type.value for event_type, _ in raised],
            "error": None,
        }
    )


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
