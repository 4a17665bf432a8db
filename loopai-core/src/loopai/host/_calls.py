"""The calls a host answers, over its current plan: validate, sample, emit, and one record end to end.

:class:`HostCalls` is the half of :class:`loopai.Host` that applications call per execution or
event; the other half (building the plugin set, lifecycle) is in :mod:`loopai.host._host`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from loopai._log import logger
from loopai._models import ExecutionRecord, SamplingContext, ValidationContext, WebhookEvent, WebhookEventType
from loopai._report import EmitReport, PluginFailure, SamplingReport, ValidationReport
from loopai.delivery import Outbox
from loopai.host._emit import Emitter
from loopai.host._invoke import Invoker, Tracer
from loopai.host._lifecycle import Lifecycle
from loopai.host._meter import Meter, PluginUsage
from loopai.host._monitor import Observation, TaskMonitor
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call, Plan, build_plan
from loopai.host._record import RecordReport
from loopai.host._sample import Sampling
from loopai.host._validate import avalidate, validate
from loopai.registry import PluginRegistry
from loopai.state import StateStore, TaskStatistics

__all__ = ["HostCalls"]

log = logger()


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
    _outbox: Outbox | None
    _lifecycle: Lifecycle
    _plan: Plan

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox events are written to before delivery, or None (direct delivery)."""
        return self._outbox

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
            self.registry, self._invoker, self._tracer, self._meter, self.default_timeout, self.max_retries
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
        return validate(plan.validators, execution, context, stop, self._outcomes)

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
        return await avalidate(plan.validators, execution, context, stop, self._outcomes)

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
        return self._sampling.sample(plan.samplers, execution, context)

    async def ashould_sample(
        self, execution: ExecutionRecord, context: SamplingContext | None = None
    ) -> SamplingReport:
        """The asyncio twin of :meth:`should_sample`."""
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        return await self._sampling.asample(plan.samplers, execution, context)

    # -- events ----------------------------------------------------------------------------

    def emit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """Deliver ``event`` to every enabled handler that supports its type, by priority.

        With an outbox (see :attr:`outbox`) the event and one pending delivery per
        handler are stored before any handler is called; each delivery ends
        ``delivered`` or, after its retries, ``dead`` with the last error, and what a
        killed process left pending is delivered by the next :meth:`start`. An event id
        already delivered to a handler is not delivered to it again.

        A handler that raises or times out is retried with exponential backoff and
        jitter (capped by ``retry_max_backoff``) up to its ``max_retries``, with
        ``context.retry_attempt`` counting the retries. When the exception has a
        ``retry_after`` (seconds; the HTTP handler sets it from ``Retry-After``) that
        wait is honoured in full, even past ``retry_max_backoff``, up to
        :attr:`retry_after_limit` (300 s unless changed).

        ``dry_run`` (default: the host's setting) sets ``context.is_dry_run``. A dry run
        is not written to the outbox: it does not count as a delivery, so a later real
        emit of the same event id still delivers it.
        """
        plan = self._plan
        if plan.stale:
            plan = self._rebuild()
        dry = self.dry_run if dry_run is None else dry_run
        return self._emitter.emit(plan, event, dry, self._outbox)

    async def aemit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """The asyncio twin of :meth:`emit`; handlers (and their retries) run concurrently."""
        dry = self.dry_run if dry_run is None else dry_run
        return await self._emitter.aemit(self._current(), event, dry, self._outbox)

    def redeliver(self) -> tuple[int, list[PluginFailure]]:
        """Deliver everything the outbox holds as pending (left by a killed process, or
        replayed): returns how many were delivered and the failures (now dead letters).
        Deliveries to handlers that are not loaded stay pending and are named in
        :attr:`problems`. Without an outbox: ``(0, [])``."""
        outbox = self._outbox
        if outbox is None:
            return 0, []
        delivered, failures, missing = self._emitter.redeliver(self._current(), outbox)
        for handler in sorted(missing):
            self._problem(
                f"outbox {outbox.path}: deliveries to webhook handler {handler!r} stay pending: it is not loaded"
            )
        return delivered, failures

    def _dead_letter(self, call: Any, error: BaseException, attempts: int) -> str:
        assert isinstance(call, Call)
        return self._outcomes.message(call, error, attempts)

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
        emitted = [self.emit(event) for event in observation.events(self.handled_events())]
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
        events = observation.events(self.handled_events())
        emitted = list(await asyncio.gather(*(self.aemit(event) for event in events)))
        return RecordReport(validation, sampling, observation, emitted)
