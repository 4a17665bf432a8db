"""The sample strategy: enabled samplers in priority order until one says yes; per-task statistics.

Samplers see the task's statistics as they were before this execution (the host fills
``total_executions``, ``sampled_executions`` and ``last_sample_time`` into the context from
its :class:`~loopai.StateStore`), and the host then counts the execution. A decision with a
``claim_interval`` (a time-based sampler's) stands only if the host wins the task's claim for
that interval; otherwise it counts as "no" and the next sampler is asked. A sampler that
raises, times out or returns the wrong type counts as "no" and is named in the report. The
decision that samples gets the sampler's name as ``sampler_type`` when it has none (in a copy).
"""

from __future__ import annotations

from collections.abc import Sequence

from loopai._isolation import PASS_THROUGH, Raised
from loopai._models import ExecutionRecord, ExecutionStatus, SamplingContext, SamplingDecision
from loopai._report import PluginFailure, SamplingReport
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call
from loopai.state import StateStore

__all__ = ["Sampling"]

_SUCCESS = ExecutionStatus.SUCCESS


class Sampling:
    """Asks samplers and keeps the task statistics in ``state``."""

    def __init__(self, state: StateStore, outcomes: Outcomes) -> None:
        self.state = state
        self._outcomes = outcomes

    def _prepared(self, execution: ExecutionRecord, context: SamplingContext) -> None:
        stats = self.state.statistics(execution.task_id)
        # Plain stores into the model's field dict: validated values from our own counters.
        fields = context.__dict__
        fields["total_executions"] = stats.total_executions
        fields["sampled_executions"] = stats.sampled_executions
        fields["last_sample_time"] = stats.last_sample_time

    def sample(self, calls: Sequence[Call], execution: ExecutionRecord, context: SamplingContext) -> SamplingReport:
        """Ask ``calls`` in order until one samples ``execution``; count it for its task."""
        self._prepared(execution, context)
        failures: list[PluginFailure] = []
        chosen: SamplingDecision | None = None
        asked = 0
        for call in calls:
            asked += 1
            try:  # the isolation policy of loopai._isolation, written out: this loop runs per execution
                decision = call.fn(execution, context)
            except PASS_THROUGH:
                raise
            except BaseException as exc:  # noqa: BLE001 - the plugin's failure, reported by _chosen
                decision = Raised(exc)
            if type(decision) is not SamplingDecision or decision.should_sample:
                chosen = self._chosen(call, decision, execution, failures)
                if chosen is not None:
                    return self._report(execution, chosen, call.name, asked, failures)
        return self._report(execution, None, None, asked, failures)

    async def asample(
        self, calls: Sequence[Call], execution: ExecutionRecord, context: SamplingContext
    ) -> SamplingReport:
        """:meth:`sample` from async code: async samplers are awaited on the caller's loop."""
        self._prepared(execution, context)
        failures: list[PluginFailure] = []
        asked = 0
        for call in calls:
            asked += 1
            chosen = self._chosen(call, await call.afn(execution, context), execution, failures)  # isolated
            if chosen is not None:
                return self._report(execution, chosen, call.name, asked, failures)
        return self._report(execution, None, None, asked, failures)

    def _chosen(
        self, call: Call, outcome: object, execution: ExecutionRecord, failures: list[PluginFailure]
    ) -> SamplingDecision | None:
        """The decision when it samples the execution, else None (a failure is noted and counts as no)."""
        decision = outcome
        if type(decision) is not SamplingDecision:
            decision = self._outcomes.settle(call, decision, SamplingDecision, "should_sample")
            if isinstance(decision, PluginFailure):
                failures.append(decision)
                return None
        assert isinstance(decision, SamplingDecision)
        if not decision.should_sample:
            return None
        interval = decision.claim_interval
        if interval is not None and not self.state.claim_sample(execution.task_id, execution.executed_at, interval):
            return None  # another caller sampled this task within the interval
        return decision

    def _report(
        self,
        execution: ExecutionRecord,
        decision: SamplingDecision | None,
        winner: str | None,
        asked: int,
        failures: list[PluginFailure],
    ) -> SamplingReport:
        failed = execution.status is not _SUCCESS
        sampled = decision is not None
        if decision is not None and not decision.sampler_type:  # named after its sampler, in a copy
            decision = decision.model_copy(update={"sampler_type": winner})
        self.state.record(execution.task_id, sampled=sampled, failed=failed, executed_at=execution.executed_at)
        return SamplingReport(decision, winner, asked, failures)
