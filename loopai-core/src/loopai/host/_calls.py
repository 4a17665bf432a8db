"""The calls a host answers, over its current plan: validate, sample, emit, and one record end to end.

:class:`HostCalls` is the half of :class:`loopai.Host` that applications call per execution or
event; the other half (building the plugin set, lifecycle) is in :mod:`loopai.host._host`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from loopai._errors import LoopaiError
from loopai._models import ExecutionRecord, SamplingContext, ValidationContext, WebhookEvent, WebhookEventType
from loopai._report import EmitReport, PluginFailure, SamplingReport, ValidationReport
from loopai.delivery import HandlerDeliveries, Outbox
from loopai.host._delivering import HostDelivery
from loopai.host._emit import Emitter
from loopai.host._invoke import Invoker, Tracer
from loopai.host._lifecycle import Lifecycle
from loopai.host._meter import Meter, PluginUsage
from loopai.host._monitor import Observation, TaskMonitor
from loopai.host._outcome import Outcomes
from loopai.host._plan import Plan, Scopes, build_plan
from loopai.host._record import RecordReport
from loopai.host._sample import Sampling
from loopai.host._validate import avalidate, validate
from loopai.registry import PluginRegistry
from loopai.state import StateStore, TaskStatistics

__all__ = ["HostCalls"]

log = logging.getLogger("loopai")


class HostCalls:
    """Validation, sampling and events over the host's current plan (see :class:`loopai.Host`)."""

    registry: PluginRegistry
    problems: list[str]
    dry_run: bool
    stop_on_failure: bool
    max_retries: int
    default_timeout: float | None
    state: StateStore
    tasks: TaskMonitor
    _invoker: Invoker
    _tracer: Tracer | None
    _meter: Meter | None
    _outcomes: Outcomes
    _sampling: Sampling
    _emitter: Emitter
    _delivery: HostDelivery
    _lifecycle: Lifecycle
    _plan: Plan
    _scopes: Scopes

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox events are recorded in for the delivery workers, or None (inline delivery)."""
        return self._delivery.outbox

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)

    # -- the plugin set as dispatch sees it --------------------------------------------------

    def _current(self) -> Plan:
        plan = self._plan
        return plan if not plan.stale else self._rebuild()

    def _rebuild(self) -> Plan:
        self._lifecycle.start_late(self)
        plan = build_plan(
            self.registry,
            self._invoker,
            self._tracer,
            self._meter,
            self.default_timeout,
            self.max_retries,
            self._scopes,
        )
        for problem in plan.problems:
            if problem not in self.problems:  # said once, not at every rebuild
                self._problem(problem)
        self._plan = plan
        return plan

    def handled_events(self) -> frozenset[WebhookEventType]:
        """The event types at least one enabled handler takes (emitting others reaches nobody)."""
        return self._current().handled

    def plugin_usage(self) -> list[PluginUsage]:
        """Calls, failures and time per plugin, when the host was built with ``meter=True``
        (metering wraps every call, so it is off by default); else an empty list."""
        return self._meter.usage() if self._meter is not None else []

    # -- validation ------------------------------------------------------------------------

    def validate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """Run every enabled validator, highest priority first, and report.

        ``context`` defaults to the task's (its schemas from the tasks table, when it is
        there). With ``stop_on_failure`` (default: the host's setting) the first invalid
        result ends the run. A validator that fails is reported invalid and named in
        ``report.failures``; the others still run.
        """
        plan = self._plan
        if plan.stale:
            plan = self._rebuild()
        if context is None:
            context = self.tasks.view(execution.task_id).validation
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        calls = plan.validators if not plan.scoped else plan.for_task(execution.task_id)[0]
        return validate(calls, execution, context, stop, self._outcomes)

    async def avalidate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """The asyncio twin of :meth:`validate`: async validators are awaited on the caller's loop."""
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).validation
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        calls = plan.validators if not plan.scoped else plan.for_task(execution.task_id)[0]
        return await avalidate(calls, execution, context, stop, self._outcomes)

    # -- sampling --------------------------------------------------------------------------

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """A snapshot of the host's counts for ``task_id`` (zeros for an unseen task)."""
        return self.state.statistics(task_id)

    def should_sample(self, execution: ExecutionRecord, context: SamplingContext | None = None) -> SamplingReport:
        """Ask enabled samplers, highest priority first, until one says yes.

        ``context`` defaults to the task's (its sampling rate from the tasks table). The host
        fills the context's ``total_executions``, ``sampled_executions`` and
        ``last_sample_time`` with its counts for the task *before* this execution (a given
        ``context`` is updated in place), then counts this execution, and its
        ``executed_at`` as the task's last sample time when it was sampled.
        """
        plan = self._plan
        if plan.stale:
            plan = self._rebuild()
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        calls = plan.samplers if not plan.scoped else plan.for_task(execution.task_id)[1]
        return self._sampling.sample(calls, execution, context)

    async def ashould_sample(
        self, execution: ExecutionRecord, context: SamplingContext | None = None
    ) -> SamplingReport:
        """The asyncio twin of :meth:`should_sample`."""
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        calls = plan.samplers if not plan.scoped else plan.for_task(execution.task_id)[1]
        return await self._sampling.asample(calls, execution, context)

    # -- events ----------------------------------------------------------------------------

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
        plan = self._plan
        if plan.stale:
            plan = self._rebuild()
        dry = self.dry_run if dry_run is None else dry_run
        if self._delivery.durable and not dry:
            return self._emitter.record(plan, (event,), self._delivery.record)[0]
        return self._emitter.emit(plan, event, dry)

    def emit_many(self, events: Sequence[WebhookEvent], *, dry_run: bool | None = None) -> list[EmitReport]:
        """:meth:`emit` for several events; with an outbox they are recorded in one commit (far
        cheaper than one each), and all are stored when this returns. A report per event."""
        plan = self._current()
        dry = self.dry_run if dry_run is None else dry_run
        if self._delivery.durable and not dry:
            return self._emitter.record(plan, events, self._delivery.record)
        return [self._emitter.emit(plan, event, dry) for event in events]

    async def aemit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """The asyncio twin of :meth:`emit`: recording runs in a worker thread; without an outbox the
        handlers (and their retries) run concurrently on the caller's loop."""
        return (await self.aemit_many((event,), dry_run=dry_run))[0]

    async def aemit_many(self, events: Sequence[WebhookEvent], *, dry_run: bool | None = None) -> list[EmitReport]:
        """The asyncio twin of :meth:`emit_many`."""
        plan = self._current()
        dry = self.dry_run if dry_run is None else dry_run
        if not any(event.event_type in plan.handled for event in events):
            return [plan.everyone[event.event_type] for event in events]  # nobody to tell: no thread, no commit
        if self._delivery.durable and not dry:
            return await asyncio.to_thread(self.emit_many, events, dry_run=False)
        return list(await asyncio.gather(*(self._emitter.aemit(plan, e, dry) for e in events)))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the delivery workers have nothing in flight and nothing due before ``timeout``
        seconds (None: until every scheduled retry is done), except deliveries waiting behind an
        open circuit; True then, False when the time ran out. Without an outbox: True at once.
        Raises :class:`loopai.OutboxError` when the outbox failed under the workers."""
        return self._delivery.drain(timeout)

    async def adrain(self, timeout: float | None = None) -> bool:
        """:meth:`drain` from async code (waits in a worker thread; async handlers keep delivering on
        the caller's loop meanwhile)."""
        return await asyncio.to_thread(self._delivery.drain, timeout)

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

    # -- one record, end to end --------------------------------------------------------------

    def observe(
        self,
        execution: ExecutionRecord,
        validation: ValidationReport,
        sampling: SamplingReport | None = None,
        *,
        payload: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Count ``execution``'s outcome in its task's rolling window and say what it raised.

        The :class:`~loopai.host.Observation` lists the record's events in order (run
        status, validation, threshold crossings) and builds them (``payload`` is added to
        each event's payload); nothing is emitted here: see :meth:`process`.
        """
        return self.tasks.observe(execution, validation, sampling, payload)

    def process(
        self,
        execution: ExecutionRecord,
        *,
        expected_output: Any = None,
        payload: Mapping[str, Any] | None = None,
    ) -> RecordReport:
        """What ``loopai run`` does with one record: validate it (against its task's schemas and
        ``expected_output``), offer it to the samplers, observe it for its task's thresholds,
        and emit the events it raised that some handler takes."""
        validation = self.validate(execution, self.tasks.view(execution.task_id).validation_context(expected_output))
        sampling = self.should_sample(execution)
        observation = self.observe(execution, validation, sampling, payload=payload)
        emitted = self.emit_many(observation.events(self.handled_events()))
        return RecordReport(validation, sampling, observation, emitted)

    async def aprocess(
        self,
        execution: ExecutionRecord,
        *,
        expected_output: Any = None,
        payload: Mapping[str, Any] | None = None,
    ) -> RecordReport:
        """The asyncio twin of :meth:`process`."""
        context = self.tasks.view(execution.task_id).validation_context(expected_output)
        validation = await self.avalidate(execution, context)
        sampling = await self.ashould_sample(execution)
        observation = self.observe(execution, validation, sampling, payload=payload)
        emitted = await self.aemit_many(observation.events(self.handled_events()))
        return RecordReport(validation, sampling, observation, emitted)
