"""Factories for tests: valid models with stable defaults, and odd cases a plugin must survive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel, JsonValue

from loopai._models import (
    EventSeverity,
    ExecutionRecord,
    ExecutionStatus,
    ReadOnlyDict,
    SamplingContext,
    ValidationContext,
    WebhookEvent,
    WebhookEventType,
    WebhookHandlerContext,
)

__all__ = [
    "PROGRAM_ID",
    "TASK_ID",
    "make_event",
    "make_execution",
    "make_handler_context",
    "make_sampling_context",
    "make_validation_context",
    "odd_events",
    "odd_executions",
]

TASK_ID: Final = UUID("00000000-0000-4000-8000-00000000a5c1")
"""The task every factory-made execution, context and event belongs to by default."""

PROGRAM_ID: Final = UUID("00000000-0000-4000-8000-0000000090d1")
"""The program every factory-made execution and event belongs to by default."""

_UNSET: Any = object()


def make_execution(
    output: JsonValue = _UNSET,
    *,
    input: JsonValue = _UNSET,
    status: ExecutionStatus | str = ExecutionStatus.SUCCESS,
    error_message: str | None = _UNSET,
    latency_ms: float | None = 12.5,
    task_id: UUID | str = TASK_ID,
    program_id: UUID | str = PROGRAM_ID,
    **fields: Any,
) -> ExecutionRecord:
    """An execution record of task :data:`TASK_ID`: ``{"text": "hello"}`` in, ``{"result": "ok"}`` out.

    ``output=None`` is an execution without output. A non-success ``status`` gets an
    ``error_message`` unless one is given. ``fields`` sets any other field (``id``,
    ``memory_usage_mb``, ``executed_at``...).
    """
    status = ExecutionStatus(status)
    if error_message is _UNSET:
        error_message = None if status is ExecutionStatus.SUCCESS else f"simulated {status.value}"
    return ExecutionRecord(
        task_id=_uuid(task_id),
        program_id=_uuid(program_id),
        input={"text": "hello"} if input is _UNSET else input,
        output={"result": "ok"} if output is _UNSET else output,
        status=status,
        error_message=error_message,
        latency_ms=latency_ms,
        **fields,
    )


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def make_validation_context(**fields: Any) -> ValidationContext:
    """A validation context of task :data:`TASK_ID`; ``fields`` sets the others
    (``output_schema``, ``expected_output``, ``configuration``...)."""
    fields.setdefault("task_id", TASK_ID)
    return ValidationContext(**fields)


def make_sampling_context(sampling_rate: float = 0.1, **fields: Any) -> SamplingContext:
    """A sampling context of task :data:`TASK_ID` with ``sampling_rate`` and no history.

    Through a host, the statistics (``total_executions``, ``sampled_executions``,
    ``last_sample_time``) are overwritten with the host's own counts for the task.
    """
    fields.setdefault("task_id", TASK_ID)
    return SamplingContext(sampling_rate=sampling_rate, **fields)


def make_event(
    event_type: WebhookEventType | str = WebhookEventType.PROGRAM_EXECUTION_COMPLETED,
    *,
    payload: JsonValue = _UNSET,
    severity: EventSeverity | str = EventSeverity.INFO,
    **fields: Any,
) -> WebhookEvent:
    """A webhook event about task :data:`TASK_ID` and program :data:`PROGRAM_ID`.

    ``event_type`` takes wire values or C# names (``"ProgramExecutionFailed"``); the
    payload defaults to ``{"message": "simulated <event type>"}``.
    """
    event_type = WebhookEventType(event_type)
    fields.setdefault("task_id", TASK_ID)
    fields.setdefault("program_id", PROGRAM_ID)
    return WebhookEvent(
        event_type=event_type,
        payload={"message": f"simulated {event_type.value}"} if payload is _UNSET else payload,
        severity=EventSeverity(severity),
        **fields,
    )


def make_handler_context(
    configuration: Mapping[str, Any] | BaseModel | None = None, **fields: Any
) -> WebhookHandlerContext:
    """A handler context as the host builds one: first try, 3 retries allowed, not a dry run.

    ``configuration`` (a mapping, or a settings model that is dumped) and ``metadata`` are
    handed over read-only, as the host does; ``fields`` sets ``retry_attempt``,
    ``is_dry_run``...
    """
    if isinstance(configuration, BaseModel):
        configuration = configuration.model_dump()
    context = WebhookHandlerContext(**fields)
    context.__dict__["configuration"] = ReadOnlyDict(configuration or {})
    context.__dict__["metadata"] = ReadOnlyDict(context.metadata)
    return context


def _nested(depth: int) -> JsonValue:
    value: JsonValue = {"leaf": True}
    for level in range(depth):
        value = {"level": level, "child": value} if level % 2 else [value]
    return value


_UNICODE: Final = "héllo wörld ✓ — 你好 🌍 مرحبا ‮reversed‬ e\u0301 \x00 \u2028 \ufeff"


def odd_executions() -> list[tuple[str, ExecutionRecord]]:
    """Executions a plugin must survive, each with a label saying what is odd about it.

    No output, error and timeout statuses, no measurements, non-object inputs and outputs,
    big and deeply nested JSON, awkward unicode, and a plain ordinary one. Use them to
    parametrize your own tests::

        @pytest.mark.parametrize(("label", "execution"), odd_executions())
        def test_never_raises(label, execution): ...
    """
    big_list: list[JsonValue] = [{"i": i, "text": f"item {i}"} for i in range(20_000)]
    return [
        ("ordinary", make_execution()),
        ("output=None", make_execution(output=None)),
        ("status=error, output=None", make_execution(output=None, status=ExecutionStatus.ERROR)),
        ("status=timeout", make_execution(status=ExecutionStatus.TIMEOUT, latency_ms=30_000.0)),
        ("error status without message", make_execution(status=ExecutionStatus.ERROR, error_message=None)),
        ("no latency, input=None", make_execution(input=None, latency_ms=None)),
        ("output is a string", make_execution(output="just text")),
        ("output is a number", make_execution(output=0)),
        ("output is false", make_execution(output=False)),
        ("output is a list", make_execution(output=[1, "two", None, 3.5])),
        ("output is an empty object", make_execution(output={})),
        ("huge output (20,000 items)", make_execution(output={"items": big_list})),
        ("long string output (1 MB)", make_execution(output="x" * 1_000_000)),
        ("deeply nested output (100 levels)", make_execution(output=_nested(100), input=_nested(100))),
        ("unicode output", make_execution(output={_UNICODE: _UNICODE, "list": [_UNICODE]}, input=_UNICODE)),
        ("zero and huge latency", make_execution(latency_ms=0.0, memory_usage_mb=1e12)),
    ]


def odd_events(event_types: Iterable[WebhookEventType | str] = WebhookEventType) -> list[tuple[str, WebhookEvent]]:
    """Events a handler must survive: every type in ``event_types`` once, then odd payloads,
    severities and missing ids on the first of them."""
    types = [WebhookEventType(t) for t in event_types]
    if not types:
        return []
    first = types[0]
    events = [(f"{t.value}", make_event(t)) for t in types]
    events += [
        ("payload=None", make_event(first, payload=None)),
        ("payload is a list", make_event(first, payload=[1, "two", None])),
        ("empty payload", make_event(first, payload={})),
        (
            "huge payload (20,000 items)",
            make_event(first, payload={"items": [{"i": i, "text": f"item {i}"} for i in range(20_000)]}),
        ),
        ("deeply nested payload (100 levels)", make_event(first, payload=_nested(100))),
        ("unicode payload", make_event(first, payload={"message": _UNICODE, _UNICODE: [_UNICODE]})),
        ("severity=critical", make_event(first, severity=EventSeverity.CRITICAL)),
        ("no task, program or execution id", make_event(first, task_id=None, program_id=None)),
        ("metadata set", make_event(first, metadata={"source": "loopai.testing", "attempt": 2})),
    ]
    return events
