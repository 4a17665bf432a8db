"""A threshold breach recorded in the transaction that flips its flag: one event per crossing, cluster-wide.

With PostgreSQL state (``[state] url``) and the PostgreSQL outbox in the same database, the state
store decides each crossing under the task window's row lock and flips its flag; the host hands
it a function that records the breach events in the outbox on that transaction's connection. So
the flag and its event commit together or not at all: a process killed in between loses
neither, and no process records an event for a crossing it did not win. ``state`` and
``delivery`` never import each other: they meet here, in the host, over ``loopai.database``.

The events recorded so come back to the caller (the observation lists them, with their ids);
when the caller emits them afterwards (``process``, ``loopai run``) they are not recorded twice:
:class:`Recorded` answers for them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from loopai._models import WebhookEvent, WebhookEventType
from loopai.delivery import PostgresOutbox
from loopai.state import Crossing, PostgresStateStore, Watch

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["BreachRecorder", "Recorded", "atomic_breaches"]

Batch = Sequence[tuple[WebhookEvent, Sequence[str]]]
Build = Callable[[list[Crossing]], list[WebhookEvent]]
"""Builds a record's breach events for the crossings it made."""

KEPT: Final = 1024
"""Events recorded with their flag that are remembered until emitted (an observation that is never
emitted is forgotten after this many others)."""


class Recorded:
    """Events already recorded (with their flag), by id, with the handlers they were recorded for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: OrderedDict[UUID, list[str]] = OrderedDict()

    def add(self, event_id: UUID, handlers: list[str]) -> None:
        """``event_id`` was recorded for ``handlers``."""
        with self._lock:
            self._events[event_id] = handlers
            while len(self._events) > KEPT:
                self._events.popitem(last=False)

    def record(self, batch: Batch, write: Callable[[Batch], list[list[str]]]) -> list[list[str]]:
        """Per event of ``batch``, the handlers it was recorded for: from here for events recorded
        already, from ``write`` (one call, for the rest) otherwise."""
        if not self._events:  # the usual case: nothing to look up
            return write(batch)
        with self._lock:
            known = {
                n: self._events.pop(event.event_id)
                for n, (event, _) in enumerate(batch)
                if event.event_id in self._events
            }
        if not known:
            return write(batch)
        rest = [item for n, item in enumerate(batch) if n not in known]
        written = iter(write(rest) if rest else ())
        return [known[n] if n in known else next(written) for n in range(len(batch))]


class BreachRecorder:
    """Observes records in the shared windows, recording each crossing's events with its flag.

    ``handlers(event_type)`` names the handlers an event of that type is recorded for now (none in
    a dry run: then nothing is recorded here, and the caller's emit delivers inline);
    ``wake`` tells this process's delivery workers that something was recorded.
    """

    def __init__(
        self,
        state: PostgresStateStore,
        outbox: PostgresOutbox,
        handlers: Callable[[WebhookEventType], Sequence[str]],
        recorded: Recorded,
        wake: Callable[[], None],
    ) -> None:
        self._state = state
        self._outbox = outbox
        self._handlers = handlers
        self._recorded = recorded
        self._wake = wake

    def observe(
        self, task_id: UUID, watch: Watch, valid: bool, latency_ms: float | None, build: Build
    ) -> tuple[list[Crossing], dict[WebhookEventType, WebhookEvent]]:
        """Add one record to the task's window; the crossings it made and, by type, the breach events
        recorded with them (built by ``build``)."""
        written: dict[WebhookEventType, WebhookEvent] = {}
        answers: dict[UUID, list[str]] = {}

        def with_crossings(conn: Connection[Any], crossings: list[Crossing]) -> None:
            written.clear()  # a try rolled back and made again: only the last one's events count
            answers.clear()
            wanted = [(event, self._handlers(event.event_type)) for event in build(crossings)]
            batch = [(event, names) for event, names in wanted if names]
            for (event, _), names in zip(batch, self._outbox.record_in(conn, batch), strict=True):
                written[event.event_type] = event
                answers[event.event_id] = names

        crossings = self._state.observe(task_id, watch, valid, latency_ms, with_crossings=with_crossings)
        if not crossings:
            return crossings, {}
        for event_id, names in answers.items():
            self._recorded.add(event_id, names)
        if answers:
            self._wake()
        return crossings, written


def atomic_breaches(
    state: object,
    outbox: object,
    handlers: Callable[[WebhookEventType], Sequence[str]],
    recorded: Recorded,
    wake: Callable[[], None],
) -> BreachRecorder | None:
    """A :class:`BreachRecorder` when ``state`` and ``outbox`` are PostgreSQL ones in the same database;
    None otherwise (a breach is then recorded by the caller's emit, after its flag)."""
    if not isinstance(state, PostgresStateStore) or not isinstance(outbox, PostgresOutbox):
        return None
    if not state.database.url.same_database(outbox.database.url):
        return None
    return BreachRecorder(state, outbox, handlers, recorded, wake)
