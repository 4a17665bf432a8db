"""The calls a host answers per execution, over its current plugin set: validate, sample, one record end to end.

:class:`HostCalls` (with :class:`~loopai.host._event_calls.EventCalls` for events) is the half of
:class:`loopai.Host` that applications call per execution or event; the other half (building the
plugin set, lifecycle, reload) is in :mod:`loopai.host._host`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from loopai._models import ExecutionRecord, SamplingContext, ValidationContext
from loopai._report import SamplingReport, ValidationReport
from loopai.host._event_calls import EventCalls
from loopai.host._monitor import Observation
from loopai.host._record import RecordReport
from loopai.host._set import PluginSet
from loopai.host._validate import avalidate, validate
from loopai.state import TaskStatistics

__all__ = ["HostCalls"]


class HostCalls(EventCalls):
    """Validation, sampling and one record end to end, on the host's current plugin set (see :class:`loopai.Host`)."""

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
        # Written out (no helper calls): this is the hot path; _validate is the same for process().
        current = self._set
        current.active.append(None)
        if current.retired:
            current.active.pop()
            current = self._enter()
        try:
            plan = current.plan
            if plan.stale:
                plan = self._rebuild(current)
            if context is None:
                context = self.tasks.view(execution.task_id).validation
            stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
            calls = plan.validators if not plan.scoped else plan.for_task(execution.task_id)[0]
            return validate(calls, execution, context, stop, self._outcomes)
        except AttributeError:
            _not_a_record(execution, "validate")
            raise
        finally:
            current.active.pop()

    def _validate(
        self,
        current: PluginSet,
        execution: ExecutionRecord,
        context: ValidationContext | None,
        stop_on_failure: bool | None,
    ) -> ValidationReport:
        plan = current.plan
        if plan.stale:
            plan = self._rebuild(current)
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
        current = self._enter()
        try:
            return await self._avalidate(current, execution, context, stop_on_failure)
        except AttributeError:
            _not_a_record(execution, "avalidate")
            raise
        finally:
            current.active.pop()

    async def _avalidate(
        self,
        current: PluginSet,
        execution: ExecutionRecord,
        context: ValidationContext | None,
        stop_on_failure: bool | None,
    ) -> ValidationReport:
        plan = await self._aplan_of(current)
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
        current = self._set  # written out, as in validate()
        current.active.append(None)
        if current.retired:
            current.active.pop()
            current = self._enter()
        try:
            plan = current.plan
            if plan.stale:
                plan = self._rebuild(current)
            if context is None:
                context = self.tasks.view(execution.task_id).sampling.model_copy()
            calls = plan.samplers if not plan.scoped else plan.for_task(execution.task_id)[1]
            return self._sampling.sample(calls, execution, context)
        except AttributeError:
            _not_a_record(execution, "should_sample")
            raise
        finally:
            current.active.pop()

    def _should_sample(
        self, current: PluginSet, execution: ExecutionRecord, context: SamplingContext | None
    ) -> SamplingReport:
        plan = current.plan
        if plan.stale:
            plan = self._rebuild(current)
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        calls = plan.samplers if not plan.scoped else plan.for_task(execution.task_id)[1]
        return self._sampling.sample(calls, execution, context)

    async def ashould_sample(
        self, execution: ExecutionRecord, context: SamplingContext | None = None
    ) -> SamplingReport:
        """The asyncio twin of :meth:`should_sample`."""
        current = self._enter()
        try:
            return await self._ashould_sample(current, execution, context)
        except AttributeError:
            _not_a_record(execution, "ashould_sample")
            raise
        finally:
            current.active.pop()

    async def _ashould_sample(
        self, current: PluginSet, execution: ExecutionRecord, context: SamplingContext | None
    ) -> SamplingReport:
        plan = await self._aplan_of(current)
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        calls = plan.samplers if not plan.scoped else plan.for_task(execution.task_id)[1]
        return await self._sampling.asample(calls, execution, context)

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
        and emit the events it raised that some handler takes, all on one plugin set."""
        current = self._enter()
        try:
            context = self.tasks.view(execution.task_id).validation_context(expected_output)
            validation = self._validate(current, execution, context, None)
            sampling = self._should_sample(current, execution, None)
            observation = self.observe(execution, validation, sampling, payload=payload)
            emitted = self._emit_many(current, observation.events(self._plan_of(current).handled), None)
        except AttributeError:
            _not_a_record(execution, "process")
            raise
        finally:
            current.active.pop()
        return RecordReport(validation, sampling, observation, emitted)

    async def aprocess(
        self,
        execution: ExecutionRecord,
        *,
        expected_output: Any = None,
        payload: Mapping[str, Any] | None = None,
    ) -> RecordReport:
        """The asyncio twin of :meth:`process`."""
        current = self._enter()
        try:
            context = self.tasks.view(execution.task_id).validation_context(expected_output)
            validation = await self._avalidate(current, execution, context, None)
            sampling = await self._ashould_sample(current, execution, None)
            observation = self.observe(execution, validation, sampling, payload=payload)
            emitted = await self._aemit_many(current, observation.events(self._plan_of(current).handled), None)
        except AttributeError:
            _not_a_record(execution, "aprocess")
            raise
        finally:
            current.active.pop()
        return RecordReport(validation, sampling, observation, emitted)


def _not_a_record(value: Any, call: str) -> None:
    """Raise the TypeError that says what ``host.<call>()`` takes, when ``value`` (whose attributes a call
    looked for) is not an execution record; return for a record (the AttributeError is another's)."""
    if isinstance(value, ExecutionRecord):
        return
    hint = "; make one with loopai.ExecutionRecord.model_validate(...)" if isinstance(value, Mapping) else ""
    raise TypeError(f"host.{call}() takes a loopai.ExecutionRecord, not {type(value).__name__}{hint}") from None
