"""The wire models: defaults, JSON round trips, UTC times, event names, and bad data."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

import loopai
from loopai import (
    EventSeverity,
    ExecutionRecord,
    ExecutionStatus,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
    WebhookEventType,
    WebhookHandlerContext,
)

WIRE_VALUES = [
    "task.created",
    "task.updated",
    "task.deleted",
    "program.generation.started",
    "program.generation.completed",
    "program.generation.failed",
    "program.execution.completed",
    "program.execution.failed",
    "program.execution.timeout",
    "validation.completed",
    "validation.failed",
    "canary.deployment.started",
    "canary.deployment.succeeded",
    "canary.rollback",
    "program.version.promoted",
    "accuracy.threshold.breached",
    "latency.threshold.breached",
]


def _csharp(wire: str) -> str:
    return "".join(part.capitalize() for part in wire.split("."))


def _record(**fields: object) -> ExecutionRecord:
    return ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4(), **fields)


# -- ExecutionRecord -------------------------------------------------------------------


def test_execution_record_defaults() -> None:
    before = datetime.now(timezone.utc)
    first, second = _record(), _record()
    after = datetime.now(timezone.utc)

    assert isinstance(first.id, uuid.UUID)
    assert first.id != second.id
    assert first.status is ExecutionStatus.SUCCESS
    assert first.executed_at.utcoffset() == timedelta(0)
    assert before <= first.executed_at <= after
    assert first.input is None and first.output is None
    assert first.sampled_for_validation is False
    assert first.validation_id is None


def test_execution_record_json_round_trip_is_snake_case() -> None:
    record = _record(
        input={"text": "hello", "n": [1, 2.5, None]},
        output="greeting",
        latency_ms=12.5,
        memory_usage_mb=3.0,
        status="error",
        error_message="boom",
        sampled_for_validation=True,
        validation_id=uuid.uuid4(),
    )

    wire = record.model_dump(mode="json")

    assert set(wire) == {
        "id",
        "program_id",
        "task_id",
        "input",
        "output",
        "latency_ms",
        "memory_usage_mb",
        "status",
        "error_message",
        "sampled_for_validation",
        "validation_id",
        "executed_at",
    }
    assert wire["status"] == "error"
    assert wire["id"] == str(record.id)
    assert wire["executed_at"].endswith("Z") or wire["executed_at"].endswith("+00:00")
    assert ExecutionRecord.model_validate_json(record.model_dump_json()) == record
    assert ExecutionRecord.model_validate(wire) == record


def test_naive_datetime_is_taken_as_utc() -> None:
    record = ExecutionRecord.model_validate_json(
        f'{{"program_id": "{uuid.uuid4()}", "task_id": "{uuid.uuid4()}", "executed_at": "2024-05-01T12:30:00"}}'
    )

    assert record.executed_at == datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    assert record.executed_at.tzinfo is not None


def test_aware_datetime_is_converted_to_utc() -> None:
    paris_summer = timezone(timedelta(hours=2))
    record = _record(executed_at=datetime(2024, 5, 1, 14, 30, tzinfo=paris_summer))

    assert record.executed_at.utcoffset() == timedelta(0)
    assert record.executed_at.hour == 12


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    # Documented decision: records from newer producers keep working.
    record = ExecutionRecord.model_validate(
        {"program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4()), "gpu_seconds": 3, "region": "eu"}
    )

    assert "gpu_seconds" not in record.model_dump()
    assert not hasattr(record, "region")


def test_other_models_round_trip_through_json() -> None:
    task = uuid.uuid4()
    models = [
        ValidationContext(task_id=task, input_schema={"type": "object"}, expected_output=[1], metadata={"k": "v"}),
        ValidationResult(is_valid=False, validator_type="schema", errors={"a.b": ["too long"]}, confidence_score=0.5),
        SamplingContext(task_id=task, sampling_rate=0.25, total_executions=4, last_sample_time=datetime(2024, 1, 1)),
        SamplingDecision(should_sample=True, reason="slow", sampler_type="latency", confidence_score=1),
        WebhookEvent(event_type="canary.rollback", task_id=task, payload={"x": 1}, severity="critical"),
        WebhookHandlerContext(configuration={"url": "x"}, retry_attempt=2, is_dry_run=True),
    ]

    for model in models:
        again = type(model).model_validate_json(model.model_dump_json())
        assert again == model, type(model).__name__


def test_model_defaults_match_the_issue() -> None:
    event = WebhookEvent(event_type=WebhookEventType.TASK_CREATED)
    handler_context = WebhookHandlerContext()

    assert isinstance(event.event_id, uuid.UUID)
    assert event.severity is EventSeverity.INFO
    assert event.timestamp.utcoffset() == timedelta(0)
    assert handler_context.retry_attempt == 0
    assert handler_context.max_retries == 3
    assert handler_context.is_dry_run is False
    assert SamplingContext().sampling_rate == 0.0
    assert ValidationResult(is_valid=True).errors == {}


# -- event types and severities --------------------------------------------------------


def test_all_seventeen_event_types_have_the_wire_values_of_the_issue() -> None:
    assert [member.value for member in WebhookEventType] == WIRE_VALUES


def test_event_type_serialises_as_its_wire_value() -> None:
    event = WebhookEvent(event_type=WebhookEventType.PROGRAM_EXECUTION_FAILED)

    assert event.model_dump(mode="json")["event_type"] == "program.execution.failed"
    assert '"event_type":"program.execution.failed"' in event.model_dump_json()
    assert str(event.event_type) == "program.execution.failed"


@pytest.mark.parametrize("wire", WIRE_VALUES)
def test_csharp_and_upper_snake_names_are_accepted_on_input(wire: str) -> None:
    upper_snake = wire.replace(".", "_").upper()
    expected = WebhookEventType(wire)

    assert WebhookEventType(_csharp(wire)) is expected
    assert WebhookEventType(upper_snake) is expected
    assert WebhookEvent.model_validate({"event_type": _csharp(wire)}).event_type is expected
    assert WebhookEvent.model_validate_json(f'{{"event_type": "{upper_snake}"}}').event_type is expected


def test_severity_values() -> None:
    assert [s.value for s in EventSeverity] == ["info", "warning", "error", "critical"]
    assert EventSeverity("WARNING") is EventSeverity.WARNING
    assert WebhookEvent(event_type="task.created", severity="Critical").severity is EventSeverity.CRITICAL


def test_models_are_exported_from_loopai() -> None:
    for name in ("ExecutionRecord", "WebhookEventType", "EventSeverity", "WebhookHandlerContext"):
        assert name in loopai.__all__


# -- bad data --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ExecutionRecord, {"program_id": str(uuid.uuid4())}, "task_id"),
        (ExecutionRecord, {"program_id": "not-a-uuid", "task_id": str(uuid.uuid4())}, "program_id"),
        (ExecutionRecord, {"program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4()), "status": "ok"}, "status"),
        (ValidationResult, {"is_valid": True, "confidence_score": 1.5}, "confidence_score"),
        (SamplingDecision, {"should_sample": True, "confidence_score": -0.5}, "confidence_score"),
        (SamplingContext, {"sampling_rate": -0.1}, "sampling_rate"),
        (WebhookHandlerContext, {"retry_attempt": -1}, "retry_attempt"),
        (WebhookEvent, {"event_type": "program.execution.exploded"}, "event_type"),
        (WebhookEvent, {"event_type": "task.created", "severity": "loud"}, "severity"),
    ],
)
def test_bad_data_raises_a_validation_error_naming_the_field(
    model: type[pydantic.BaseModel], data: dict[str, object], field: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)

    assert caught.value.errors()[0]["loc"] == (field,)
    assert field in str(caught.value)


def test_unknown_event_type_is_a_value_error_not_a_key_error() -> None:
    with pytest.raises(ValueError, match=r"'task\.exploded' is not a valid WebhookEventType"):
        WebhookEventType("task.exploded")


def test_new_event_ids_are_unique_and_ordered_by_creation_time() -> None:
    """Outboxes key their rows on event ids: ids in creation order go to the end of their indexes."""
    import time

    first = [loopai.WebhookEvent(event_type=loopai.WebhookEventType.PROGRAM_EXECUTION_COMPLETED) for _ in range(1000)]
    time.sleep(0.002)
    later = loopai.WebhookEvent(event_type=loopai.WebhookEventType.PROGRAM_EXECUTION_COMPLETED)

    ids = [event.event_id for event in first]
    assert len(set(ids)) == len(ids)
    assert {event_id.version for event_id in ids} == {7} and ids[0].variant == uuid.RFC_4122
    assert all(str(event_id) < str(later.event_id) for event_id in ids)  # as text too: the SQLite outbox's key
    created = datetime.fromtimestamp((later.event_id.int >> 80) / 1000, tz=timezone.utc)
    assert abs(created - later.timestamp) < timedelta(seconds=1)
