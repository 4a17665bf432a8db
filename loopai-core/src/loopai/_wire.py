"""What ``loopai serve`` receives and returns over HTTP, and what :mod:`loopai.client` reads back.

Every body is snake_case JSON. Requests of loopai's own shape refuse keys they do not know (a
typo would silently drop what it meant to say); the records inside them (``ExecutionRecord``,
``ValidationContext``, ``WebhookEvent``) ignore unknown fields from newer producers, as they do
everywhere, and so do upstream Loopai's DTOs (``batch/validate``). Responses ignore unknown
fields when read, so that an older client reads a newer server.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from loopai._models import ExecutionRecord, SamplingContext, SamplingDecision, ValidationContext, ValidationResult

__all__ = [
    "BatchRunItem",
    "BatchRunProgress",
    "BatchRunRequest",
    "BatchRunResponse",
    "BatchRunResult",
    "BatchRunSummary",
    "BatchValidateItem",
    "BatchValidateItemResult",
    "BatchValidateRequest",
    "BatchValidateResponse",
    "ErrorBody",
    "EventAccepted",
    "FieldProblem",
    "Health",
    "Liveness",
    "PluginFailureBody",
    "PluginInfo",
    "Readiness",
    "RunSampling",
    "RunValidation",
    "RunVerdict",
    "SampleRequest",
    "SamplingReportBody",
    "TaskSummaryBody",
    "ValidateRequest",
    "ValidationReportBody",
    "WebhookReceived",
]

DEFAULT_CONCURRENCY = 10
MAX_CONCURRENCY = 100
"""``max_concurrency`` of ``batch/run`` is 1..100 (upstream's rule); outside, 400 ``INVALID_CONCURRENCY``."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Upstream(BaseModel):
    """An upstream Loopai DTO: fields a newer upstream adds are ignored."""

    model_config = ConfigDict(extra="ignore")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- errors and health ---------------------------------------------------------------------


class FieldProblem(_Answer):
    """One refused field of a request: where (``execution.task_id``), and what is wrong."""

    field: str
    message: str
    type: str


class ErrorBody(_Answer):
    """Every error the service answers, whatever the status (upstream Loopai's shape).

    ``code`` is stable and meant for programs (``UNAUTHORIZED``, ``VALIDATION_ERROR``,
    ``PAYLOAD_TOO_LARGE``, ``BATCH_TOO_LARGE``, ``INVALID_CONCURRENCY``, ``TASK_NOT_FOUND``,
    ``NOT_READY``, ``INTERNAL_ERROR``...); ``message`` is for people; ``trace_id`` is in the
    service's log line about the request; for 422, ``details.errors`` lists every refused field.
    """

    code: str
    message: str
    details: dict[str, Any] | None = None
    trace_id: str
    timestamp: datetime


class Health(_Answer):
    """``GET /health``."""

    status: Literal["ok"] = "ok"
    version: str


class Liveness(_Answer):
    """``GET /api/v1/health/live``: the process answers."""

    status: Literal["ok"] = "ok"


class Readiness(_Answer):
    """``GET /api/v1/health/ready``: plugins started and the outbox and state store answer."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


class PluginInfo(_Answer):
    """One plugin, as ``loopai plugins list --json`` prints it."""

    name: str
    kind: str
    distribution: str
    version: str
    enabled: bool
    priority: int | None
    status: str
    reason: str | None
    selected_by: str
    entry_point: str
    group: str
    loaded: bool
    warnings: list[str]


# -- validate, sample, events ----------------------------------------------------------------


class ValidateRequest(_Request):
    """``POST /api/v1/validate``: the context defaults to the task's (schemas from the tasks table)."""

    execution: ExecutionRecord
    context: ValidationContext | None = None


class SampleRequest(_Request):
    """``POST /api/v1/sample``: the context defaults to the task's (its sampling rate)."""

    execution: ExecutionRecord
    context: SamplingContext | None = None


class PluginFailureBody(_Answer):
    """A plugin call that went wrong (raised, returned the wrong type, timed out)."""

    plugin: str
    hook: str
    problem: str
    message: str
    attempts: int = 1


class ValidationReportBody(_Answer):
    """Every validator's result in the order they ran; ``is_valid`` when all are valid."""

    is_valid: bool
    results: list[ValidationResult]
    failures: list[PluginFailureBody] = Field(default_factory=list)
    stopped_early: bool = False


class SamplingReportBody(_Answer):
    """Whether a sampler selected the execution, which one and why."""

    should_sample: bool
    reason: str
    sampler_type: str
    winner: str | None = None
    decision: SamplingDecision | None = None
    failures: list[PluginFailureBody] = Field(default_factory=list)


class EventAccepted(_Answer):
    """``POST /api/v1/events``: the event is in the outbox; ``handlers`` take it."""

    event_id: uuid.UUID
    handlers: list[str]


class WebhookReceived(_Answer):
    """``POST /api/v1/webhooks/receive``: the delivery as the event it became.

    ``duplicate`` is true (status 200) when this event id was received before: it is not
    emitted again.
    """

    event_id: uuid.UUID
    event_type: str
    duplicate: bool
    handlers: list[str]


# -- batch/validate: upstream Loopai's DTOs ----------------------------------------------------


class BatchValidateItem(_Upstream):
    """One output to judge against the task's schemas (and its expected output)."""

    id: str
    input: JsonValue = None
    output: JsonValue = None
    expected_output: JsonValue = None


class BatchValidateRequest(_Upstream):
    """``POST /api/v1/batch/validate``."""

    task_id: uuid.UUID
    items: list[BatchValidateItem]


class BatchValidateItemResult(_Answer):
    """One item's verdict: the first failing validator's message, the lowest confidence given."""

    id: str
    is_valid: bool
    message: str
    confidence_score: float | None = None


class BatchValidateResponse(_Answer):
    """The batch's verdicts, in item order, and its accuracy (valid / total; 0 for no items)."""

    batch_id: uuid.UUID
    task_id: uuid.UUID
    total_items: int
    valid_count: int
    invalid_count: int
    accuracy_rate: float
    results: list[BatchValidateItemResult]
    total_duration_ms: float


# -- batch/run ---------------------------------------------------------------------------------


class BatchRunItem(_Request):
    """One record for ``batch/run``; ``id`` defaults to the execution's id.

    As an NDJSON line, a bare ``ExecutionRecord`` is an item too (``loopai run``'s input lines
    are items).
    """

    id: str | None = None
    execution: ExecutionRecord
    expected_output: JsonValue = None


class BatchRunRequest(_Request):
    """``POST /api/v1/batch/run`` as one JSON document (at most ``[serve] max_batch_items`` items)."""

    items: list[BatchRunItem]
    max_concurrency: Annotated[int, Field(json_schema_extra={"minimum": 1, "maximum": MAX_CONCURRENCY})] = (
        DEFAULT_CONCURRENCY
    )
    stop_on_first_error: bool = False


class RunVerdict(_Answer):
    """One validator's verdict, as ``loopai run`` writes it."""

    validator_type: str
    is_valid: bool
    message: str
    errors: dict[str, list[str]]


class RunValidation(_Answer):
    is_valid: bool
    results: list[RunVerdict]


class RunSampling(_Answer):
    should_sample: bool
    reason: str
    sampler_type: str


class BatchRunResult(_Answer):
    """One item's result: the item's ``id`` and the fields of a ``loopai run`` output line.

    ``line`` is the item's sequence number (from 1, the SSE event id); ``error`` says why an
    item could not be processed (then the other fields are null or empty).
    """

    id: str | None
    line: int
    execution_id: uuid.UUID | None
    task_id: uuid.UUID | None
    validation: RunValidation | None
    sampling: RunSampling | None
    events: list[str]
    error: str | None


class BatchRunProgress(_Answer):
    """How far a batch got; ``total`` is null while an NDJSON upload is still arriving."""

    completed: int
    total: int | None
    valid: int
    failed: int


class TaskSummaryBody(_Answer):
    """One task's records in the batch, as ``loopai run --json`` summarises them."""

    task_id: uuid.UUID
    name: str | None
    in_tasks_table: bool
    records: int
    valid: int
    valid_percent: float | None
    sampled: int
    events: int
    events_by_type: dict[str, int]
    breaches: dict[str, int]
    latency_ms: dict[str, float | None]


class BatchRunSummary(_Answer):
    """What the batch did. ``failed`` = ``invalid`` + ``errors``; ``stopped_by`` says why it ended early
    (``stop_on_first_error``, the client disconnected, or the service shutting down: it names the last
    item taken, and the items after it are to be sent again); None when every item was taken."""

    batch_id: uuid.UUID
    items: int
    completed: int
    valid: int
    invalid: int
    errors: int
    failed: int
    sampled: int
    events: int
    stopped_by: str | None
    duration_ms: float
    items_per_second: float | None
    tasks: list[TaskSummaryBody]


class BatchRunResponse(_Answer):
    """``batch/run`` answered as JSON: every result in item order, then the summary."""

    batch_id: uuid.UUID
    results: list[BatchRunResult]
    summary: BatchRunSummary
