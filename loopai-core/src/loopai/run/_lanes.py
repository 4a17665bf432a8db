"""Per-task lanes: what a caller that takes records one at a time keeps for each task.

``loopai run`` and ``loopai serve``'s ``batch/run`` offer each record to the host with its task's
contexts; making them per record (``Host.process`` copies the sampling context for every call,
since it may be called from many threads at once) costs more than the plugins' own work in a
fast pipeline. A lane makes them once per task: the validation context is shared (it is
read-only), and the sampling context is filled in place by the host before each call, so a lane
serves one caller at a time, as the sync engine and the service's event loop do.
"""

from __future__ import annotations

import uuid

from loopai._models import SamplingContext, ValidationContext
from loopai.host import Host, TaskView
from loopai.run._summary import TaskSummary

__all__ = ["Lane", "Lanes"]


class Lane:
    """One task: its view (schemas, label), its summary, and the contexts its records are offered with."""

    __slots__ = ("sampling", "summary", "validation", "view")

    def __init__(self, view: TaskView, summary: TaskSummary) -> None:
        self.view = view
        self.summary = summary
        self.validation: ValidationContext = view.validation
        self.sampling: SamplingContext = view.sampling.model_copy()


class Lanes(dict[uuid.UUID, Lane]):
    """A lane per task id, made on first use (``lanes[task_id]``): the task's view from ``host.tasks``,
    its summary from ``summaries`` (made there when missing, so that the caller's summary lists it).

    Call :meth:`fresh` before each record: when the tasks table changed since the lanes were made
    (a hot reload, ``host.tasks.define``), they are made again from the new views; the summaries stay.
    """

    def __init__(self, host: Host, summaries: dict[uuid.UUID, TaskSummary]) -> None:
        super().__init__()
        self._tasks = host.tasks
        self._summaries = summaries
        self._generation = self._tasks.generation

    def fresh(self) -> Lanes:
        """These lanes, emptied first when the tasks table changed since they were made."""
        if self._tasks.generation != self._generation:
            self.clear()
            self._generation = self._tasks.generation
        return self

    def __missing__(self, task_id: uuid.UUID) -> Lane:
        view = self._tasks.view(task_id)
        summary = self._summaries.get(task_id)
        if summary is None:
            summary = self._summaries[task_id] = TaskSummary(view.task_id, view.label, view.configured)
        lane = self[task_id] = Lane(view, summary)
        return lane
