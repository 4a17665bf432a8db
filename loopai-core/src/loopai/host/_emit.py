"""The emit strategy: fan an event out to every enabled handler that takes its type.

With an outbox (durable), the event and a pending delivery per handler are recorded, in one
commit for all the events of a call (and of concurrent callers), and the host's delivery workers
take it from there: ``emit`` returns once the event is stored, naming the handlers as pending.
Without one (inline), each handler is called in priority order and a failed delivery is retried
at once (the deliverer sleeps its backoff); the async driver runs the handlers concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from loopai._isolation import PASS_THROUGH
from loopai._models import WebhookEvent
from loopai._report import EmitReport, PluginFailure
from loopai.delivery import Deliverer, Outcome
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call, Plan

__all__ = ["Emitter", "Record"]

Record = Callable[[Sequence[tuple[WebhookEvent, Sequence[str]]]], list[list[str]]]
"""Stores events with their handlers durably; per event, the handlers it was recorded for."""


class Emitter:
    """Delivers events to a plan's handlers inline through ``deliverer``, or records them."""

    def __init__(self, deliverer: Deliverer, outcomes: Outcomes) -> None:
        self.deliverer = deliverer
        self._outcomes = outcomes

    # -- durable --------------------------------------------------------------------------

    def record(self, plan: Plan, events: Sequence[WebhookEvent], record: Record) -> list[EmitReport]:
        """Record ``events`` for their handlers (one call of ``record``); a report per event naming
        the handlers it was recorded for as ``pending``."""
        wanted = [(event, plan.everyone[event.event_type].delivered) for event in events]
        batch = [item for item in wanted if item[1]]
        recorded = iter(record(batch) if batch else ())
        reports = []
        for event, names in wanted:
            if not names:
                reports.append(plan.everyone[event.event_type])  # nobody takes it: nothing stored
                continue
            todo = next(recorded)
            everyone = len(todo) == len(names)
            reports.append(plan.recorded[event.event_type] if everyone else EmitReport(event.event_type, pending=todo))
        return reports

    # -- inline ---------------------------------------------------------------------------

    def emit(self, plan: Plan, event: WebhookEvent, dry_run: bool) -> EmitReport:
        """Call ``event``'s handlers now, retrying each failed one after its backoff."""
        kind = event.event_type
        calls = plan.handlers.get(kind, ())
        failures: list[PluginFailure] | None = None
        for call in calls:
            try:  # the isolation policy of loopai._isolation, written out: this loop runs per event
                result = call.fn(event, call.dry_context if dry_run else call.context)
            except PASS_THROUGH:
                raise
            except BaseException as exc:  # noqa: BLE001 - the handler's failure: retried, then reported
                outcome = self.deliverer.deliver(call, event, dry_run, attempt=1, error=exc)
                if not outcome.delivered:
                    failures = [*(failures or ()), self._failure(call, outcome)]
            else:
                if result is not None:  # delivered all the same; said once (see Call.returned)
                    call.returned(call, result)
        if failures is None:
            return plan.everyone[kind]  # the common case: one shared, immutable report
        return self._report(plan, event, [c.name for c in calls], failures)

    async def aemit(self, plan: Plan, event: WebhookEvent, dry_run: bool) -> EmitReport:
        """:meth:`emit` from async code; the handlers (and their retries) run concurrently."""
        calls = plan.handlers.get(event.event_type, ())
        outcomes = await asyncio.gather(*(self.deliverer.adeliver(c, event, dry_run) for c in calls))
        failures = [self._failure(c, o) for c, o in zip(calls, outcomes, strict=True) if not o.delivered]
        return self._report(plan, event, [c.name for c in calls], failures)

    def _failure(self, call: Call, outcome: Outcome) -> PluginFailure:
        assert outcome.error is not None
        return self._outcomes.failure(call, "handle_event", outcome.error, outcome.attempts)

    def _report(self, plan: Plan, event: WebhookEvent, called: list[str], failures: list[PluginFailure]) -> EmitReport:
        everyone = plan.everyone[event.event_type]
        if not failures and len(called) == len(everyone.delivered):
            return everyone  # the common case: one shared, immutable report
        failed = {failure.plugin for failure in failures}
        return EmitReport(event.event_type, [name for name in called if name not in failed], failures)
