"""The seam for durable delivery: what a host writes before delivering, behind one protocol.

The embedded default is a SQLite file (:class:`~loopai.delivery.SqliteOutbox`); a shared engine
(PostgreSQL) implements the same protocol so that every replica sees one outbox. The protocol is
shaped for both: delivery workers *claim* due deliveries with a lease (one worker at a time per
delivery: SQLite takes its write lock, PostgreSQL ``FOR UPDATE SKIP LOCKED``), then settle each
one (delivered, a retry scheduled, dead) or hand it back (released).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from loopai._models import WebhookEvent

__all__ = ["Claim", "DeliveryRecord", "DeliveryStatus", "Notifying", "Outbox", "Requeued"]

DeliveryStatus = Literal["pending", "delivered", "dead", "quarantined"]
Requeued = Literal["dead", "quarantined"]
"""The statuses :meth:`Outbox.requeue` makes pending again."""
"""Where a delivery is: waiting (due now or at a scheduled time), taken by the handler, given up
after its retries, or set aside because its stored event cannot be read (see
:meth:`Outbox.quarantine`)."""


class Claim(NamedTuple):
    """One delivery a worker took to make: the event, the handler's name, attempts so far, dry run or not."""

    event: WebhookEvent
    handler: str
    attempts: int
    dry_run: bool


@dataclass(frozen=True)
class DeliveryRecord:
    """One event's delivery to one handler, as the outbox holds it.

    ``next_attempt_at`` (Unix seconds) is when a pending delivery is due; ``last_error`` is the
    last failed attempt's error, or why a quarantined delivery cannot be made. ``dry_run`` marks
    a rehearsal (``is_dry_run`` in the handler's context), written by earlier versions or by
    :meth:`Outbox.record` with ``dry_run=True``; the host does not record dry runs.
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
    next_attempt_at: float = 0.0

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
            "next_attempt_at": self.next_attempt_at,
            "dry_run": self.dry_run,
        }


@runtime_checkable
class Outbox(Protocol):
    """Events and their per-handler deliveries, written before delivery is tried.

    Every (event, handler) pair is ``pending`` until the handler takes it (``delivered``) or
    gives up after its retries (``dead``, keeping the last error). A pending delivery is due at
    its ``next_attempt_at``: a failed attempt schedules the next one there (backoff, or the
    receiver's ``Retry-After``) instead of waiting in the caller. Recording an event id twice
    changes nothing: delivery is idempotent by event id. A delivery marked ``delivered`` stays
    so, whatever another worker says later.

    Workers :meth:`claim` due deliveries: a claimed delivery is leased to the claiming outbox
    for ``lease`` seconds and no other claim returns it meanwhile. A worker that dies loses its
    leases when they expire (an implementation may notice sooner: the SQLite outbox frees the
    leases of a process that is gone at once). A row whose event cannot be read back (a type
    from a newer version, a damaged body) is never returned: it is set aside as
    ``quarantined`` with the reason, and the rest goes on.

    Methods raise :class:`loopai.OutboxError` (naming the outbox, the damage and what to do)
    when the store itself fails. Implementations are safe to share between threads (and, for
    the shipped ones, between processes).
    """

    path: str
    """Where the outbox is, as messages name it (a file path, or a URL without its password)."""

    def record(self, event: WebhookEvent, handlers: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Store ``event`` with a pending delivery per handler, due now, durably; return the handlers
        it was recorded for (those that had no delivery of this event id yet)."""
        ...

    def record_many(self, batch: Sequence[tuple[WebhookEvent, Sequence[str]]]) -> list[list[str]]:
        """:meth:`record` for several events in one transaction (one commit): when it returns, every
        one is stored. Returns, per event, the handlers it was recorded for."""
        ...

    def claim(self, handler: str, limit: int, *, lease: float, now: float | None = None) -> list[Claim]:
        """Take up to ``limit`` of ``handler``'s deliveries that are due (oldest first), leased for
        ``lease`` seconds. Undecodable rows met on the way are quarantined, not returned."""
        ...

    def next_due(self, handlers: Collection[str]) -> float | None:
        """When the earliest unleased pending delivery of ``handlers`` is due (Unix seconds), or None."""
        ...

    def delivered(self, event_id: str, handler: str, attempts: int) -> None:
        """The handler took the event after ``attempts`` tries (the lease ends)."""
        ...

    def retry(self, event_id: str, handler: str, attempts: int, error: str, at: float) -> None:
        """Attempt number ``attempts`` failed with ``error``: the delivery stays pending, due at ``at``
        (the lease ends). A delivery marked delivered meanwhile stays delivered."""
        ...

    def dead(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """The handler gave up after ``attempts`` tries; ``error`` is kept as the last one."""
        ...

    def release(self, deliveries: Iterable[tuple[str, str]]) -> None:
        """End the leases of these claimed ``(event_id, handler)`` deliveries, untried: they stay
        pending, due as they were, for any worker (a host stopping with deliveries in flight)."""
        ...

    def quarantine(self, event_id: str, handler: str, reason: str) -> None:
        """Set a delivery aside: its stored event cannot be delivered (``reason`` says why). It is
        listed, never claimed, and removed by :meth:`prune` with ``dead``."""
        ...

    def deliveries(
        self, status: DeliveryStatus | None = None, event_ids: Iterable[str] | None = None
    ) -> list[DeliveryRecord]:
        """Delivery records, oldest first, optionally of one status and/or some events. Reading
        never decodes a stored event: a quarantined row is listed like any other."""
        ...

    def requeue(self, event_ids: Iterable[str] | None = None, *, status: Requeued = "dead") -> int:
        """Make the deliveries of ``status`` pending and due again, attempts counted afresh (all, or those
        of ``event_ids``); how many. ``"quarantined"``: after an upgrade, this loopai may read events an
        older one set aside (one it still cannot read is set aside again)."""
        ...

    def due_now(self, handlers: Collection[str] | None = None) -> int:
        """Make every pending delivery (of ``handlers``, else all) due now, whatever its schedule (an
        operator's "try again now"); leases are kept. How many."""
        ...

    def prune(self, older_than: float, *, dead: bool = False, now: float | None = None) -> tuple[int, int]:
        """Remove finished deliveries older than ``older_than`` seconds (with ``dead``, dead and
        quarantined ones too; pending ones never); (deliveries, events) removed."""
        ...

    def counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered, dead and quarantined."""
        ...

    def open_counts(self) -> dict[str, dict[str, int]]:
        """Per handler, how many of its deliveries are pending, dead and quarantined (not delivered)."""
        ...

    def flush(self) -> None:
        """Write buffered marks now."""
        ...

    def close(self) -> None:
        """Write what is buffered, end this outbox's leases, then release the store (idempotent)."""
        ...


@runtime_checkable
class Notifying(Protocol):
    """An outbox that can say when other processes recorded deliveries (the PostgreSQL one:
    ``LISTEN``/``NOTIFY``): workers are woken at once instead of at their next poll."""

    def listen(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from another thread; it must not block) whenever deliveries may have
        become due; returns the function that stops it. Best effort: workers poll as well."""
        ...
