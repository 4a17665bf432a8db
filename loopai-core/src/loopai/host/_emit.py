"""The emit strategy: fan an event out to every enabled handler that takes its type.

Without an outbox each handler is called in priority order and a failed delivery is retried
at once (the deliverer sleeps its backoff). With one, the event and a pending delivery per
handler are recorded first, so that a killed process loses nothing, and each delivery's
outcome is written back. The async driver runs the handlers (and their retries) concurrently.
"""

from __future__ import annotations

import asyncio

from loopai._isolation import PASS_THROUGH
from loopai._models import WebhookEvent
from loopai._report import EmitReport, PluginFailure
from loopai.delivery import Deliverer, Outbox, Outcome
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call, Plan

__all__ = ["Emitter"]


class Emitter:
    """Delivers events to a plan's handlers through ``deliverer``, recording them in an outbox if given."""

    def __init__(self, deliverer: Deliverer, outcomes: Outcomes) -> None:
        self.deliverer = deliverer
        self._outcomes = outcomes

    def emit(self, plan: Plan, event: WebhookEvent, dry_run: bool, outbox: Outbox | None) -> EmitReport:
        """Deliver ``event`` to its handlers; dry runs are never recorded."""
        if outbox is not None and not dry_run:
            return self._emit_durably(plan, event, outbox)
        calls = plan.handlers.get(event.event_type, ())
        failures: list[PluginFailure] | None = None
        for call in calls:
            try:  # the isolation policy of loopai._isolation, written out: this loop runs per event
                call.fn(event, call.dry_context if dry_run else call.context)
            except PASS_THROUGH:
                raise
            except BaseException as exc:  # noqa: BLE001 - the handler's failure: retried, then reported
                outcome = self.deliverer.deliver(call, event, dry_run, None, attempt=1, error=exc)
                if not outcome.delivered:
                    failures = [*(failures or ()), self._failure(call, outcome)]
        if failures is None:
            return plan.everyone[event.event_type]  # the common case: one shared, immutable report
        return self._report(plan, event, [c.name for c in calls], failures)

    def _emit_durably(self, plan: Plan, event: WebhookEvent, outbox: Outbox) -> EmitReport:
        calls = plan.handlers.get(event.event_type, ())
        if not calls:
            return plan.everyone[event.event_type]
        todo = set(outbox.record(event, [call.name for call in calls]))
        called = [call for call in calls if call.name in todo]
        failures = []
        for call in called:
            outcome = self.deliverer.deliver(call, event, False, outbox)
            if not outcome.delivered:
                failures.append(self._failure(call, outcome))
        return self._report(plan, event, [c.name for c in called], failures)

    async def aemit(self, plan: Plan, event: WebhookEvent, dry_run: bool, outbox: Outbox | None) -> EmitReport:
        """:meth:`emit` from async code; the handlers run concurrently."""
        calls = plan.handlers.get(event.event_type, ())
        if outbox is not None and not dry_run:
            todo = set(outbox.record(event, [call.name for call in calls]))
            calls = tuple(call for call in calls if call.name in todo)
        else:
            outbox = None
        outcomes = await asyncio.gather(*(self.deliverer.adeliver(c, event, dry_run, outbox) for c in calls))
        failures = [self._failure(c, o) for c, o in zip(calls, outcomes, strict=True) if not o.delivered]
        return self._report(plan, event, [c.name for c in calls], failures)

    def redeliver(self, plan: Plan, outbox: Outbox) -> tuple[int, list[PluginFailure], set[str]]:
        """Deliver what ``outbox`` holds as pending: how many were delivered, the failures (now
        dead letters) and the handlers not loaded (their deliveries stay pending)."""
        delivered, failures = 0, []
        outcomes, missing = self.deliverer.redeliver(outbox, plan.handler)
        for outcome in outcomes:
            if outcome.delivered:
                delivered += 1
            else:
                call = next(c for calls in plan.handlers.values() for c in calls if c.name == outcome.handler)
                failures.append(self._failure(call, outcome))
        return delivered, failures, missing

    def _failure(self, call: Call, outcome: Outcome) -> PluginFailure:
        assert outcome.error is not None
        return self._outcomes.failure(call, "handle_event", outcome.error, outcome.attempts)

    def _report(self, plan: Plan, event: WebhookEvent, called: list[str], failures: list[PluginFailure]) -> EmitReport:
        everyone = plan.everyone[event.event_type]
        if not failures and len(called) == len(everyone.delivered):
            return everyone  # the common case: one shared, immutable report
        failed = {failure.plugin for failure in failures}
        return EmitReport(event.event_type, [name for name in called if name not in failed], failures)
