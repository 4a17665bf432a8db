"""Task monitoring: what one execution record raises, and each task's rolling thresholds.

Every processed record raises, in order: its run status (``program.execution.completed``,
``failed`` or ``timeout``), its validation (``validation.completed`` or ``failed``, when a
validator ran), then each threshold its task's rolling window has just crossed
(``accuracy.threshold.breached``: the share of valid records over the task's last
``window`` records fell below ``accuracy_threshold``; ``latency.threshold.breached``: the
window's p95 ``latency_ms`` rose above ``latency_threshold_ms``). A crossing is raised once,
and again only after the value came back within its threshold. The windows live in the
host's :class:`~loopai.StateStore`, so every host sharing one store raises a crossing once;
with a :class:`~loopai.host._breaches.BreachRecorder` (PostgreSQL state and outbox in one
database) its events are recorded in the transaction that flips the flag.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Mapping
from typing import Any, Final

from loopai._models import (
    EventSeverity,
    ExecutionRecord,
    ExecutionStatus,
    ReadOnlyDict,
    SamplingContext,
    ValidationContext,
    WebhookEvent,
    WebhookEventType,
    new_event_id,
    read_only,
    utc_now,
)
from loopai._report import SamplingReport, ValidationReport
from loopai.config import TaskSettings
from loopai.host._breaches import BreachRecorder
from loopai.state import Crossing, StateStore, Watch

__all__ = ["Observation", "TaskMonitor", "TaskView", "validation_json"]

_T = WebhookEventType
Raised = list[tuple[WebhookEventType, EventSeverity]]

_BY_STATUS: Final = {
    ExecutionStatus.SUCCESS: (_T.PROGRAM_EXECUTION_COMPLETED, EventSeverity.INFO),
    ExecutionStatus.ERROR: (_T.PROGRAM_EXECUTION_FAILED, EventSeverity.ERROR),
    ExecutionStatus.TIMEOUT: (_T.PROGRAM_EXECUTION_TIMEOUT, EventSeverity.WARNING),
}
_VALIDATION: Final = {
    True: (_T.VALIDATION_COMPLETED, EventSeverity.INFO),
    False: (_T.VALIDATION_FAILED, EventSeverity.WARNING),
}
_BREACH: Final = {
    "accuracy": (_T.ACCURACY_THRESHOLD_BREACHED, EventSeverity.ERROR, "share of valid records"),
    "latency": (_T.LATENCY_THRESHOLD_BREACHED, EventSeverity.WARNING, "p95 latency_ms"),
}
_BREACHES: Final = frozenset(kind for kind, _, _ in _BREACH.values())


class TaskView:
    """One task as the host sees it: its contexts (schemas, sampling rate), label and thresholds."""

    __slots__ = ("configured", "id_text", "label", "sampling", "task_id", "validation", "watch")

    def __init__(self, task_id: uuid.UUID, settings: TaskSettings | None) -> None:
        known = settings or TaskSettings()
        self.task_id = task_id
        self.id_text = str(task_id)
        self.label = known.name or self.id_text
        """The task's name, else its id."""
        self.configured = settings is not None
        """Whether the task is in the tasks table."""
        self.validation = ValidationContext(
            task_id=task_id, input_schema=known.input_schema, output_schema=known.output_schema
        )
        self.sampling = SamplingContext(task_id=task_id, sampling_rate=known.sampling_rate)
        watch = Watch(known.window, known.accuracy_threshold, known.latency_threshold_ms)
        self.watch = watch if watch.watching else None

    def validation_context(self, expected_output: Any = None) -> ValidationContext:
        """The task's validation context, with ``expected_output`` when one is given."""
        if expected_output is None:
            return self.validation
        return self.validation.model_copy(update={"expected_output": read_only(expected_output)})


class Observation:
    """What one record raised: its events in order (``raised``), and the thresholds it crossed.

    ``recorded``: breach events already recorded in the outbox with their flag, by type; :meth:`events`
    returns these (the same ids), and emitting them records nothing twice.
    """

    __slots__ = ("crossings", "execution", "payload", "raised", "recorded", "sampling", "task", "validation")

    def __init__(
        self,
        task: TaskView,
        execution: ExecutionRecord,
        validation: ValidationReport,
        sampling: SamplingReport | None,
        crossings: list[Crossing],
        payload: Mapping[str, Any] | None,
        recorded: Mapping[WebhookEventType, WebhookEvent] | None = None,
    ) -> None:
        self.task = task
        self.execution = execution
        self.validation = validation
        self.sampling = sampling
        self.crossings = crossings
        self.payload = payload
        raised: Raised = [_BY_STATUS[execution.status]]
        if validation.results:
            raised.append(_VALIDATION[validation.is_valid])
        if crossings:
            raised.extend(_BREACH[crossing.metric][:2] for crossing in crossings)
        self.raised = raised
        self.recorded = recorded

    def events(self, wanted: Collection[WebhookEventType] | None = None) -> list[WebhookEvent]:
        """The raised events (those of a type in ``wanted``, when given), with their payloads."""
        return [self._event(t, severity) for t, severity in self.raised if wanted is None or t in wanted]

    def _event(self, event_type: WebhookEventType, severity: EventSeverity) -> WebhookEvent:
        if self.recorded and event_type in self.recorded:
            return self.recorded[event_type]
        execution = self.execution
        payload: dict[str, Any] = {**(self.payload or {}), "task": self.task.label}
        if event_type in (_T.VALIDATION_COMPLETED, _T.VALIDATION_FAILED):
            payload.update(validation_json(self.validation))
        elif event_type in (_T.ACCURACY_THRESHOLD_BREACHED, _T.LATENCY_THRESHOLD_BREACHED):
            crossing = next(c for c in self.crossings if _BREACH[c.metric][0] is event_type)
            payload.update(
                metric=crossing.metric,
                statistic=_BREACH[crossing.metric][2],
                value=round(crossing.value, 4),
                threshold=crossing.threshold,
                window=crossing.in_window,
            )
        else:
            payload.update(
                status=execution.status.value,
                latency_ms=execution.latency_ms,
                error_message=execution.error_message,
                sampled=self.sampling is not None and self.sampling.decision is not None,
            )
        # Built without validation: every value comes from validated models or from the host.
        return WebhookEvent.model_construct(
            event_id=new_event_id(),
            event_type=event_type,
            timestamp=utc_now(),
            task_id=execution.task_id,
            execution_id=execution.id,
            program_id=execution.program_id,
            payload=read_only(payload),  # read-only, as validation would have made it
            severity=severity,
            metadata=ReadOnlyDict(),
        )


def validation_json(validation: ValidationReport) -> dict[str, Any]:
    """``is_valid`` and each validator's verdict, message and errors."""
    return {
        "is_valid": validation.is_valid,
        "results": [
            {"validator_type": r.validator_type, "is_valid": r.is_valid, "message": r.message, "errors": r.errors}
            for r in validation.results
        ],
    }


class TaskMonitor:
    """The tasks table as the host uses it: per-task views, and observations of records.

    Tasks not in the table get plain contexts and are watched by no threshold.
    """

    def __init__(self, tasks: Mapping[uuid.UUID, TaskSettings], state: StateStore) -> None:
        self.settings = dict(tasks)
        self._state = state
        self.breaches: BreachRecorder | None = None
        """Set by the host when breaches are recorded with their flags (see :mod:`._breaches`)."""
        self._views: dict[uuid.UUID, TaskView] = {}
        self._lock = threading.Lock()
        self.generation = 0
        """Counts the changes of the table (:meth:`define`, :meth:`replace`): a view kept by a caller
        is the task's current one as long as the generation it was taken in is."""

    def define(self, tasks: Mapping[uuid.UUID, TaskSettings]) -> None:
        """Add ``tasks`` to the table (replacing what it held for their ids)."""
        with self._lock:
            self.settings.update(tasks)
            for task_id in tasks:
                self._views.pop(task_id, None)
            self.generation += 1

    def replace(self, tasks: Mapping[uuid.UUID, TaskSettings]) -> None:
        """Make ``tasks`` the whole table (a reload's new configuration); the tasks' state stays."""
        with self._lock:
            self.settings = dict(tasks)
            self._views.clear()
            self.generation += 1

    def view(self, task_id: uuid.UUID) -> TaskView:
        """The view of ``task_id`` (made once per task)."""
        view = self._views.get(task_id)
        if view is None:
            with self._lock:
                view = self._views.setdefault(task_id, TaskView(task_id, self.settings.get(task_id)))
        return view

    def observe(
        self,
        execution: ExecutionRecord,
        validation: ValidationReport,
        sampling: SamplingReport | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Count ``execution``'s outcome in its task's rolling window; what it raised."""
        task = self.view(execution.task_id)
        crossings: list[Crossing] = []
        recorded = None
        if task.watch is not None:
            breaches = self.breaches
            if breaches is None:
                crossings = self._state.observe(task.task_id, task.watch, validation.is_valid, execution.latency_ms)
            else:

                def build(found: list[Crossing]) -> list[WebhookEvent]:
                    return Observation(task, execution, validation, sampling, found, payload).events(_BREACHES)

                crossings, recorded = breaches.observe(
                    task.task_id, task.watch, validation.is_valid, execution.latency_ms, build
                )
        return Observation(task, execution, validation, sampling, crossings, payload, recorded)
