"""The event calls of a host: emit (recorded for the delivery workers, or delivered inline), drain,
what was delivered, and redelivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from loopai._errors import HostStateError, LoopaiError
from loopai._models import WebhookEvent
from loopai._report import EmitReport, PluginFailure
from loopai.delivery import Backoff, HandlerDeliveries, Outbox
from loopai.host._dispatch import Dispatch
from loopai.host._set import PluginSet

__all__ = ["EventCalls"]


class EventCalls(Dispatch):
    """Emitting events and their delivery, on the host's current plugin set (see :class:`loopai.Host`)."""

    backoff: Backoff
    """How long a failed delivery waits before its retry (see :class:`loopai.delivery.Backoff`)."""

    @property
    def retry_backoff(self) -> float:
        """Seconds before the first retry of a failed delivery (doubling after each)."""
        return self.backoff.base

    @retry_backoff.setter
    def retry_backoff(self, seconds: float) -> None:
        self.backoff.base = seconds

    @property
    def retry_max_backoff(self) -> float:
        """The longest wait between two tries of a delivery (a ``retry_after`` may be longer)."""
        return self.backoff.ceiling

    @retry_max_backoff.setter
    def retry_max_backoff(self, seconds: float) -> None:
        self.backoff.ceiling = seconds

    @property
    def retry_after_limit(self) -> float:
        """Longest wait for a handler's ``retry_after``, in seconds (never below ``retry_max_backoff``)."""
        return self.backoff.retry_after_limit

    @retry_after_limit.setter
    def retry_after_limit(self, seconds: float) -> None:
        self.backoff.retry_after_limit = seconds

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox events are recorded in for the delivery workers, or None (inline delivery)."""
        return self._delivery.outbox

    def emit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """Hand ``event`` to every enabled handler that supports its type.

        With an outbox (see :attr:`outbox`; ``loopai`` and :meth:`from_config` use one by
        default) this records the event and one pending delivery per handler, durably, and
        returns: the report names those handlers as ``pending``. The host's delivery workers
        deliver in the background, each handler with up to ``[delivery] max_in_flight`` at
        once; a failed attempt is retried later, scheduled in the outbox (exponential backoff
        with jitter capped by ``retry_max_backoff``, or the exception's ``retry_after`` in
        seconds, which the HTTP handler sets from ``Retry-After``, up to
        :attr:`retry_after_limit`), ``context.retry_attempt`` counting the retries; after the
        handler's ``max_retries`` the delivery is dead, keeping its last error. A handler whose
        circuit opened (repeated failures) waits out a cool-down. An event id already recorded
        for a handler is not delivered to it again. :meth:`close` waits up to ``[delivery]
        drain_timeout`` for due deliveries; what is left (or what a killed process left) is
        delivered by the next :meth:`start` or ``loopai events deliver``. See
        :meth:`delivery_report` and :meth:`drain`.

        Without an outbox (``Host()``, ``outbox=False``) handlers are called now, by priority,
        and a failed one is retried inline: the call sleeps its backoff (as above) between
        tries, and the report says who took the event (``delivered``) and who gave up
        (``failures``). A killed process loses what it had not delivered.

        ``dry_run`` (default: the host's setting) sets ``context.is_dry_run``. A dry run is
        always inline and never recorded: it does not count as a delivery, so a later real
        emit of the same event id still delivers it.
        """
        current = self._set  # written out, as in validate(): one event, no list of them
        current.active.append(None)
        if current.retired:
            current.active.pop()
            current = self._enter()
        try:
            plan = current.plan
            if plan.stale:
                plan = self._rebuild(current)
            dry = self.dry_run if dry_run is None else dry_run
            if self._delivery.durable and not dry:
                return self._emitter.record(plan, (event,), self._delivery.record)[0]
            return self._emitter.emit(plan, event, dry)
        finally:
            current.active.pop()

    def emit_many(self, events: Sequence[WebhookEvent], *, dry_run: bool | None = None) -> list[EmitReport]:
        """:meth:`emit` for several events; with an outbox they are recorded in one commit (far
        cheaper than one each), and all are stored when this returns. A report per event."""
        current = self._enter()
        try:
            return self._emit_many(current, events, dry_run)
        finally:
            current.active.pop()

    def _emit_many(self, current: PluginSet, events: Sequence[WebhookEvent], dry_run: bool | None) -> list[EmitReport]:
        plan = current.plan
        if plan.stale:
            plan = self._rebuild(current)
        dry = self.dry_run if dry_run is None else dry_run
        if self._delivery.durable and not dry:
            return self._emitter.record(plan, events, self._delivery.record)
        return [self._emitter.emit(plan, event, dry) for event in events]

    async def aemit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """The asyncio twin of :meth:`emit`: recording runs in a worker thread; without an outbox the
        handlers (and their retries) run concurrently on the caller's loop."""
        return (await self.aemit_many((event,), dry_run=dry_run))[0]

    async def aemit_many(self, events: Sequence[WebhookEvent], *, dry_run: bool | None = None) -> list[EmitReport]:
        """The asyncio twin of :meth:`emit_many` (a plugin enabled since the start gets its async
        ``startup`` awaited on the caller's loop first, as :meth:`astart` does)."""
        current = self._enter()
        try:
            await self._aplan_of(current)
            return await self._aemit_many(current, events, dry_run)
        finally:
            current.active.pop()

    async def _aemit_many(
        self, current: PluginSet, events: Sequence[WebhookEvent], dry_run: bool | None
    ) -> list[EmitReport]:
        plan = self._plan_of(current)
        dry = self.dry_run if dry_run is None else dry_run
        if not any(event.event_type in plan.handled for event in events):
            return [plan.everyone[event.event_type] for event in events]  # nobody to tell: no thread, no commit
        if self._delivery.durable and not dry:
            return await asyncio.to_thread(self._emitter.record, plan, events, self._delivery.record)
        return list(await asyncio.gather(*(self._emitter.aemit(plan, e, dry) for e in events)))

    def drain(self, timeout: float | None = None, *, due_within: float | None = None) -> bool:
        """Wait until the delivery workers have nothing in flight and nothing due before ``timeout``
        seconds (None: until every scheduled retry is done), except deliveries waiting behind an
        open circuit; True then, False when the time ran out. ``due_within``: wait only ``timeout``
        seconds, but for what is due within these seconds (a first look that may find a retry due
        later than itself: False then). Without an outbox, or once the host is closed: True at
        once. Raises :class:`loopai.OutboxError` when the outbox failed under the workers.

        On a host that was never started, it starts nothing: it waits for the workers an ``emit``
        started (a host used without :meth:`start` still delivers what it emits), and when none
        runs it raises :class:`loopai.LoopaiError` saying to start the host first (its handlers'
        ``startup`` hooks have not run, so what the outbox holds would fail to deliver)."""
        self._drainable()
        return self._delivery.drain(timeout, due_within)

    async def adrain(self, timeout: float | None = None, *, due_within: float | None = None) -> bool:
        """:meth:`drain` from async code (waits in a worker thread; async handlers keep delivering on
        the caller's loop meanwhile)."""
        self._drainable()
        return await asyncio.to_thread(self._delivery.drain, timeout, due_within)

    def _drainable(self) -> None:
        if self._delivery.idle and not self._set.lifecycle.started:
            raise HostStateError(
                "host.drain(): the host was not started, so its delivery workers do not run: start it "
                "first (host.start(), or `with host:`), so that its handlers' startup hooks run before "
                "they deliver"
            )

    def delivery_report(self) -> list[HandlerDeliveries]:
        """Per webhook handler: deliveries this host's workers delivered, retried and gave up on,
        and what the outbox holds for it now (pending, quarantined); after :meth:`close`, the
        counts as they were then. Empty without an outbox."""
        return self._delivery.report()

    @property
    def delivery_failure(self) -> LoopaiError | None:
        """The :class:`loopai.OutboxError` that stopped the delivery workers (a damaged or full
        outbox), or None. What the outbox held stays in it."""
        return self._delivery.failure

    def redeliver(self) -> tuple[int, list[PluginFailure]]:
        """Deliver what the outbox holds as due (left by a killed process, or replayed) and wait
        until that is done, scheduled retries included: returns how many were delivered and the
        failures (now dead letters). Deliveries to handlers that are not loaded, and those
        behind an open circuit, stay pending; the former are named in :attr:`problems`.
        Without an outbox: ``(0, [])``."""
        outbox = self._delivery.outbox
        if outbox is None:
            return 0, []
        before = sum(row.delivered for row in self.delivery_report())
        since = time.time()
        self._name_missing_handlers()
        self._delivery.drain(None)
        delivered = sum(row.delivered for row in self.delivery_report()) - before
        failures = [
            PluginFailure(r.handler, "handle_event", "exception", r.last_error or "", None, r.attempts)
            for r in outbox.deliveries("dead")
            if r.updated_at >= since
        ]
        return delivered, failures

    def _name_missing_handlers(self) -> None:
        outbox = self._delivery.outbox
        if outbox is None:
            return
        for handler in self._delivery.not_loaded(self._current().by_name):
            message = f"outbox {outbox.path}: deliveries to webhook handler {handler!r} stay pending: it is not loaded"
            if message not in self.problems:
                self._problem(message)
