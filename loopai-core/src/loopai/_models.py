"""Pydantic models that plugins receive and return: executions, contexts, results, events."""

from __future__ import annotations

import enum
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, JsonValue, StrictBool

from loopai._redact import redact

__all__ = [
    "EventSeverity",
    "ExecutionRecord",
    "ExecutionStatus",
    "SamplingContext",
    "SamplingDecision",
    "ValidationContext",
    "ValidationResult",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookHandlerContext",
]

Score = Annotated[float, Field(ge=0.0, le=1.0)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Measure = Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]
"""A measured quantity (milliseconds, megabytes): a finite number, never ``true``, ``"12"`` or ``Infinity``."""


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def _as_utc(value: datetime) -> datetime:
    # Naive timestamps from Loopai's Python side are UTC; aware ones are converted.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def _squash(name: str) -> str:
    """``ProgramExecutionFailed``, ``program.execution.failed`` and ``PROGRAM_EXECUTION_FAILED`` alike."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


class ReadOnlyDict(dict[str, Any]):
    """A dict that refuses changes; serialises, copies and pickles like any dict."""

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("this mapping is read-only: the host shares it between calls; copy it to change it")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))  # not item by item: that would go through __setitem__


class ReadOnlyList(list[Any]):
    """A list that refuses changes (still a ``list`` to ``isinstance`` and JSON Schema)."""

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("this list is read-only: the host shares it between calls; copy it to change it")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))


# To plugin code they are a dict and a list: isinstance says so, and so does the name that messages
# print ("must be an object, not list"). The qualified name (repr, pickle) still tells them apart.
ReadOnlyDict.__name__ = "dict"
ReadOnlyList.__name__ = "list"

_CONTAINERS: frozenset[type] = frozenset((dict, list, ReadOnlyDict, ReadOnlyList))


def read_only(value: Any) -> Any:
    """``value`` with every dict and list in it, however deep, made read-only (others as they are)."""
    # Runs for every record parsed: scalars are not recursed into (a call each would cost more).
    kind = type(value)
    if kind is dict or kind is ReadOnlyDict:
        containers = _CONTAINERS
        return ReadOnlyDict({key: read_only(item) if type(item) in containers else item for key, item in value.items()})
    if kind is list or kind is ReadOnlyList:
        containers = _CONTAINERS
        return ReadOnlyList([read_only(item) if type(item) in containers else item for item in value])
    return value


def _read_only_or_none(value: Any) -> Any:
    return None if value is None else read_only(value)


_Frozen = AfterValidator(_read_only_or_none)
"""Makes a validated JSON value, or a dict field, read-only all the way down."""


class _Record(BaseModel):
    """Data that crosses the wire: unknown fields from newer producers are ignored.

    Printed (``repr``, ``str``, a log line), a plugin's ``configuration`` shows ``**********`` for
    its secrets (keys such as ``secret``, ``token``, ``password``; a URL's password): a handler that
    logs its context does not log its signing secret. The values themselves are unchanged.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact(value) if name == "configuration" else value


class _ReadOnlyRecord(_Record):
    """What the host hands to plugins: read-only, nested dicts and lists included.

    One object goes to every plugin of a call and back to the caller, so a plugin that
    changed it would change what every later plugin and the caller see: an attempt raises
    ``TypeError`` inside that plugin, and is reported as its failure. To change one, copy it:
    ``execution.model_copy(update={"output": ...})``.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} is read-only: the host hands the same object to every plugin and to "
            f"its caller; to change it, copy it: .model_copy(update={{{name!r}: ...}})"
        )

    def __delattr__(self, name: str) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only; copy it with .model_copy() to change it")


class ExecutionStatus(str, enum.Enum):
    """How a program run ended.

    Input also accepts C#'s spellings: ``Success``, ``Error``, ``Timeout`` (any case) and the
    enum's numbers ``0``, ``1``, ``2``; output is always the lower-case value.
    """

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> ExecutionStatus | None:
        if isinstance(value, str):
            return _STATUS_NAMES.get(value.lower())
        if type(value) is int and 0 <= value < len(_STATUS_ORDER):  # not a bool: true is no status
            return _STATUS_ORDER[value]
        return None


_STATUS_ORDER = tuple(ExecutionStatus)
"""C#'s ``ExecutionStatus`` by number: Success = 0, Error = 1, Timeout = 2."""
_STATUS_NAMES = {status.value: status for status in ExecutionStatus}


def _spellings(name: str) -> AliasChoices:
    """``task_id``, and C#'s ``TaskId`` (default serializer settings) and ``taskId`` (camel case)."""
    pascal = "".join(part.capitalize() for part in name.split("_"))
    return AliasChoices(name, pascal, pascal[0].lower() + pascal[1:])


class EventSeverity(str, enum.Enum):
    """How loud an event is; handlers may colour or route by it."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> EventSeverity | None:
        if isinstance(value, str):
            for member in cls:
                if _squash(member.value) == _squash(value):
                    return member
        return None


class WebhookEventType(str, enum.Enum):
    """The 17 events Loopai emits, by wire value.

    Input also accepts the C# names (``ProgramExecutionFailed``) and upper snake case
    (``PROGRAM_EXECUTION_FAILED``); output is always the dotted wire value.
    """

    TASK_CREATED = "task.created"
    TASK_UPDATED = "task.updated"
    TASK_DELETED = "task.deleted"
    PROGRAM_GENERATION_STARTED = "program.generation.started"
    PROGRAM_GENERATION_COMPLETED = "program.generation.completed"
    PROGRAM_GENERATION_FAILED = "program.generation.failed"
    PROGRAM_EXECUTION_COMPLETED = "program.execution.completed"
    PROGRAM_EXECUTION_FAILED = "program.execution.failed"
    PROGRAM_EXECUTION_TIMEOUT = "program.execution.timeout"
    VALIDATION_COMPLETED = "validation.completed"
    VALIDATION_FAILED = "validation.failed"
    CANARY_DEPLOYMENT_STARTED = "canary.deployment.started"
    CANARY_DEPLOYMENT_SUCCEEDED = "canary.deployment.succeeded"
    CANARY_ROLLBACK = "canary.rollback"
    PROGRAM_VERSION_PROMOTED = "program.version.promoted"
    ACCURACY_THRESHOLD_BREACHED = "accuracy.threshold.breached"
    LATENCY_THRESHOLD_BREACHED = "latency.threshold.breached"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> WebhookEventType | None:
        if isinstance(value, str):
            wanted = _squash(value)
            for member in cls:
                if _squash(member.value) == wanted:
                    return member
        return None


class ExecutionRecord(_ReadOnlyRecord):
    """One run of a generated program on one input (read-only: see ``model_copy``).

    Keys are read in snake case (``task_id``) and in C#'s spellings (``TaskId``, ``taskId``);
    unknown keys, from newer producers, are ignored.
    """

    id: uuid.UUID = Field(default_factory=uuid.uuid4, validation_alias=_spellings("id"))
    program_id: uuid.UUID = Field(validation_alias=_spellings("program_id"))
    task_id: uuid.UUID = Field(validation_alias=_spellings("task_id"))
    input: Annotated[JsonValue, _Frozen] = Field(default=None, validation_alias=_spellings("input"))
    output: Annotated[JsonValue, _Frozen] = Field(default=None, validation_alias=_spellings("output"))
    latency_ms: Measure | None = Field(default=None, validation_alias=_spellings("latency_ms"))
    memory_usage_mb: Measure | None = Field(default=None, validation_alias=_spellings("memory_usage_mb"))
    status: ExecutionStatus = Field(default=ExecutionStatus.SUCCESS, validation_alias=_spellings("status"))
    error_message: str | None = Field(default=None, validation_alias=_spellings("error_message"))
    sampled_for_validation: bool = Field(default=False, validation_alias=_spellings("sampled_for_validation"))
    validation_id: uuid.UUID | None = Field(default=None, validation_alias=_spellings("validation_id"))
    executed_at: UtcDatetime = Field(default_factory=utc_now, validation_alias=_spellings("executed_at"))


class ValidationContext(_ReadOnlyRecord):
    """What a validator knows about the task: its schemas and the expected output (read-only)."""

    task_id: uuid.UUID | None = None
    # A JSON Schema is an object or, since draft 6, true (anything) or false (nothing). Strict:
    # "yes" or 1 is not a schema, never coerced to true.
    input_schema: Annotated[dict[str, Any], _Frozen] | StrictBool | None = None
    output_schema: Annotated[dict[str, Any], _Frozen] | StrictBool | None = None
    expected_output: Annotated[JsonValue, _Frozen] = None
    configuration: Annotated[dict[str, Any], _Frozen] = Field(default_factory=ReadOnlyDict)
    metadata: Annotated[dict[str, str], _Frozen] = Field(default_factory=ReadOnlyDict)


class ValidationResult(_Record):
    """One validator's verdict on one execution."""

    is_valid: bool
    validator_type: str = ""
    message: str = ""
    errors: dict[str, list[str]] = Field(default_factory=dict)
    confidence_score: Score | None = None
    duration_ms: Annotated[float, Field(ge=0.0)] = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)


class SamplingContext(_ReadOnlyRecord):
    """What a sampler knows: the task's rate and the host's statistics for the task (read-only).

    The host fills ``total_executions``, ``sampled_executions`` and ``last_sample_time``
    with its own per-task counts *before* this execution, so samplers need no state.
    """

    task_id: uuid.UUID | None = None
    sampling_rate: Rate = 0.0
    total_executions: Annotated[int, Field(ge=0)] = 0
    sampled_executions: Annotated[int, Field(ge=0)] = 0
    last_sample_time: UtcDatetime | None = None
    configuration: Annotated[dict[str, Any], _Frozen] = Field(default_factory=ReadOnlyDict)
    metadata: Annotated[dict[str, str], _Frozen] = Field(default_factory=ReadOnlyDict)


class SamplingDecision(_Record):
    """One sampler's answer: sample this execution for deeper checking, or not.

    ``claim_interval`` is for time-based samplers: the execution is sampled only if no other
    execution of its task was sampled within that interval before it. The host claims the
    interval atomically (across every process sharing its state store); when another caller
    got there first, this decision counts as "no" and the next sampler is asked.
    """

    should_sample: bool
    reason: str = ""
    sampler_type: str = ""
    confidence_score: Score | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    claim_interval: timedelta | None = None


_UUID7 = getattr(uuid, "uuid7", None)  # Python 3.14+


def new_event_id() -> uuid.UUID:
    """A new event id: a UUID of version 7 (RFC 9562), random but ordered by its creation time, to
    the millisecond. Outboxes key their rows on it: ids that come in order are added at the end of
    their indexes instead of all over them, which halves what recording an event costs in SQLite
    (and spares PostgreSQL's indexes the same). As unique as a random UUID: 74 random bits each."""
    if _UUID7 is not None:
        return _UUID7()  # type: ignore[no-any-return]
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # the top 12 bits for rand_a, the low 62 for rand_b
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & _LOW_62))


_LOW_62 = (1 << 62) - 1


class WebhookEvent(_ReadOnlyRecord):
    """Something that happened, delivered to every handler that supports its type (read-only)."""

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    """Unique; a new one is time-ordered (see :func:`new_event_id`)."""
    event_type: WebhookEventType
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    task_id: uuid.UUID | None = None
    execution_id: uuid.UUID | None = None
    program_id: uuid.UUID | None = None
    payload: Annotated[JsonValue, _Frozen] = Field(default_factory=ReadOnlyDict)
    severity: EventSeverity = EventSeverity.INFO
    metadata: Annotated[dict[str, Any], _Frozen] = Field(default_factory=ReadOnlyDict)


class WebhookHandlerContext(_Record):
    """Per-delivery facts for a handler: its settings, which attempt this is, dry run or not.

    Read-only: the host reuses one context per handler across calls, so it is frozen and
    the host hands ``configuration`` and ``metadata`` over as read-only mappings.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    configuration: dict[str, Any] = Field(default_factory=dict)
    retry_attempt: Annotated[int, Field(ge=0)] = 0
    max_retries: Annotated[int, Field(ge=0)] = 3
    is_dry_run: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
