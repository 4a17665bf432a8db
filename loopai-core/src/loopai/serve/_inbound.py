"""Deliveries from upstream Loopai's ``WebhookService`` (C#): their body, their signature, and the
loopai event each becomes.

The body is snake_case JSON: ``{"id", "event_type", "task_id", "program_id", "message", "data",
"timestamp", "severity"}``, ``event_type`` the C# enum as a number or by name (``X-Loopai-Event-Type``
carries its name too; the body's is used), ``severity`` a name in any case (``"error"``; a number 0..3 is
read too) or ``null``, upstream's ``string? Severity`` when none is set, which is emitted as ``info``.
``X-Loopai-Signature: sha256=<hex>`` is the HMAC-SHA256 of the raw body keyed by the secret's UTF-8
bytes. Upstream's six event types map to loopai's as below; an A/B test's completion becomes
``validation.completed``: it reports the outcome of comparing two program versions, which is an
evaluation, and says nothing about which one won (promoting the winner is upstream's
``ProgramImproved``, which maps to ``program.version.promoted``). The upstream name stays in the
event's ``metadata.upstream_event_type`` for handlers that care.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import uuid
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, WithJsonSchema

from loopai._models import EventSeverity, UtcDatetime, WebhookEvent, WebhookEventType, utc_now
from loopai._suggest import did_you_mean

__all__ = ["UPSTREAM_EVENTS", "InboundDelivery", "UpstreamEventType", "signature_matches", "to_event"]


class UpstreamEventType(enum.IntEnum):
    """Upstream Loopai's ``WebhookEventType`` (C#), by number."""

    ProgramExecutionFailed = 0
    ValidationFailed = 1
    ProgramImproved = 2
    CanaryRollback = 3
    CanaryCompleted = 4
    ABTestCompleted = 5


UPSTREAM_EVENTS: Final = {
    UpstreamEventType.ProgramExecutionFailed: WebhookEventType.PROGRAM_EXECUTION_FAILED,
    UpstreamEventType.ValidationFailed: WebhookEventType.VALIDATION_FAILED,
    UpstreamEventType.ProgramImproved: WebhookEventType.PROGRAM_VERSION_PROMOTED,
    UpstreamEventType.CanaryRollback: WebhookEventType.CANARY_ROLLBACK,
    UpstreamEventType.CanaryCompleted: WebhookEventType.CANARY_DEPLOYMENT_SUCCEEDED,
    UpstreamEventType.ABTestCompleted: WebhookEventType.VALIDATION_COMPLETED,
}
"""Each upstream event type and the loopai event type it is emitted as."""

_SEVERITIES: Final = (EventSeverity.INFO, EventSeverity.WARNING, EventSeverity.ERROR, EventSeverity.CRITICAL)
_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "loopai:webhooks:receive")


def _squash(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _upstream_type(value: Any) -> Any:
    """A number or a C# name (any case, ``AB_TEST_COMPLETED`` too) as the enum; a name that is none
    is refused naming them (and the closest); anything else as given, for the model to refuse."""
    if isinstance(value, str):
        wanted = _squash(value)
        for member in UpstreamEventType:
            if _squash(member.name) == wanted:
                return member
        names = [member.name for member in UpstreamEventType]
        raise ValueError(
            f"{value!r} is not one of upstream's event types: {', '.join(names)} (or their numbers, "
            f"0..{len(names) - 1}){did_you_mean(value, names)}"
        )
    return value


def _severity(value: Any) -> Any:
    """A number (0 Info .. 3 Critical) or a name in any case (``error``, ``Error``) as the enum; null
    (upstream sends ``"severity": null`` when none is set) as ``info``, as if it were absent."""
    if value is None:
        return EventSeverity.INFO
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_SEVERITIES):
        return _SEVERITIES[value]
    if isinstance(value, str) and value.lower() in {severity.value for severity in _SEVERITIES}:
        return EventSeverity(value.lower())
    return value


_TYPE_SCHEMA: Final = {
    "oneOf": [
        {"type": "integer", "enum": [member.value for member in UpstreamEventType]},
        {"type": "string", "enum": [member.name for member in UpstreamEventType]},
    ],
    "description": "upstream's WebhookEventType: its number or its name",
}
_SEVERITY_SCHEMA: Final = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": 3},
        {"type": "string", "enum": [severity.value for severity in EventSeverity]},
        {"type": "null"},
    ],
    "description": "Info (0), Warning (1), Error (2) or Critical (3), by number or name; null or absent: info",
}


class InboundDelivery(BaseModel):
    """One delivery's body, as upstream's ``WebhookService`` sends it (fields it adds are ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    event_type: Annotated[UpstreamEventType, BeforeValidator(_upstream_type), WithJsonSchema(_TYPE_SCHEMA)]
    task_id: uuid.UUID | None = None
    program_id: uuid.UUID | None = None
    message: str = ""
    data: JsonValue = None
    timestamp: UtcDatetime | None = None
    severity: Annotated[EventSeverity, BeforeValidator(_severity), WithJsonSchema(_SEVERITY_SCHEMA)] = (
        EventSeverity.INFO
    )


def signature_matches(key: bytes | None, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex HMAC-SHA256 of body keyed by key>``, compared in constant time.

    False without a key (no ``[serve] inbound_secret``: nothing can be verified) or a header.
    """
    if key is None or not header:
        return False
    scheme, _, given = header.strip().partition("=")
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii")
    presented = given.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, presented) and scheme.lower() == "sha256"


def event_id_of(upstream_id: str) -> uuid.UUID:
    """The loopai event id of an upstream id: the id itself when it is a UUID (a C# Guid), else a
    UUID derived from it (the same every time, so that a repeat is known as one)."""
    try:
        return uuid.UUID(upstream_id)
    except ValueError:
        return uuid.uuid5(_NAMESPACE, upstream_id)


def to_event(delivery: InboundDelivery, attempt: str | None) -> WebhookEvent:
    """The loopai event a delivery becomes: its type mapped, ``message`` and ``data`` as the payload,
    upstream's name, id and delivery attempt in ``metadata``."""
    return WebhookEvent(
        event_id=event_id_of(delivery.id),
        event_type=UPSTREAM_EVENTS[delivery.event_type],
        timestamp=delivery.timestamp or utc_now(),
        task_id=delivery.task_id,
        program_id=delivery.program_id,
        payload={"message": delivery.message, "data": delivery.data},
        severity=delivery.severity,
        metadata={
            "source": "loopai-webhook-service",
            "upstream_event_type": delivery.event_type.name,
            "upstream_event_id": delivery.id,
            "delivery_attempt": attempt,
        },
    )
