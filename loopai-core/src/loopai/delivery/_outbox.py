"""The seam for durable delivery: what a host writes before delivering, behind one protocol.

The embedded default is a SQLite file (:class:`~loopai.delivery.SqliteOutbox`); a shared engine
(PostgreSQL) implements the same protocol so that every replica sees one outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from loopai._models import WebhookEvent

__all__ = ["DeliveryRecord", "DeliveryStatus", "Outbox", "Pending"]

DeliveryStatus = Literal["pending", "delivered", "dead"]


class Pending(NamedTuple):
    """One delivery still to make: the event, the handler's name, attempts so far, dry run or not."""

    event: WebhookEvent
    handler: str
    attempts: int
    dry_run: bool


@dataclass(frozen=True)
class DeliveryRecord:
    """One event's delivery to one handler, as the outbox holds it.

    ``dry_run`` marks a rehearsal (``is_dry_run`` in the handler's context), written by
    earlier versions or by :meth:`Outbox.record` with ``dry_run=True``; the host does not
    record dry runs.
    """

    event_id: str
    event_type: str
    handler: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    emitted_at: float
    updated_at: float
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as Unix seconds)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "handler": self.handler,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "emitted_at": self.emitted_at,
            "updated_at": self.updated_at,
            "dry_run": self.dry_run,
        }


@runtime_checkable
class Outbox(Protocol):
    """Events and their per-handler deliveries, written before delivery is tried.

    Every (event, handler) pair is ``pending`` until the handler takes it (``delivered``) or
    gives up after its retries (``dead``, keeping the last error). Recording an event id twice
    changes nothing: delivery is idempotent by event id. A delivery marked ``delivered``
    stays so. Implementations are safe to share between threads (and, for the shipped
    ones, between processes).
    """

    path: str
    """Where the outbox is, as messages name it (a file path, or a URL without its password)."""

    def record(self, event: WebhookEvent, handlers: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Store ``event`` with a pending delivery per handler; return the handlers to deliver to now
        (those that had no delivery of this event id yet)."""
        ...

    def pending(self) -> list[Pending]:
        """Undelivered work, oldest first."""
        ...

    def delivered(self, event_id: str, handler: str, attempts: int) -> None:
        """The handler took the event after ``attempts`` tries."""
        ...

    def failed_attempt(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """Attempt number ``attempts`` failed with ``error``; the delivery stays pending."""
        ...

    def dead(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """The handler gave up after ``attempts`` tries; ``error`` is kept as the last one."""
        ...

    def deliveries(
        self, status: DeliveryStatus | None = None, event_ids: Iterable[str] | None = None
    ) -> list[DeliveryRecord]:
        """Delivery records, oldest first, optionally of one status and/or some events."""
        ...

    def requeue(self, event_ids: Iterable[str] | None = None) -> int:
        """Make dead deliveries pending again (all, or those of ``event_ids``); how many."""
        ...

    def prune(self, older_than: float, *, dead: bool = False, now: float | None = None) -> tuple[int, int]:
        """Remove finished deliveries older than ``older_than`` seconds; (deliveries, events) removed."""
        ...

    def counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered and dead."""
        ...

    def flush(self) -> None:
        """Write buffered marks now."""
        ...

    def close(self) -> None:
        """Write what is buffered, then release the store (idempotent)."""
        ...
