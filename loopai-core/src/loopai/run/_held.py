"""Result lines held until their records' events are stored: the engine stores a batch's events in
one commit, then writes its lines (see :mod:`._engine`)."""

from __future__ import annotations

import time

from loopai._models import ExecutionRecord, WebhookEvent
from loopai._report import SamplingReport, ValidationReport
from loopai.run._record import Raised, result_line

__all__ = ["HOLD", "Held", "Unmade"]

Unmade = tuple[int, ExecutionRecord, str, ValidationReport, SamplingReport, Raised]
"""A processed record's result line, not made yet: the arguments of :func:`~._record.result_line`."""

HOLD = 0.25
"""The longest a result line waits for the records after it to share their commit (seconds)."""


class Held:
    """Result lines waiting for their records' events to be stored (written in input order).

    A record's line may be added unmade (:data:`Unmade`): the engine has the lines made together
    after each run of lines it read ahead (:meth:`make`), and what is left is made when written.
    Made right after each record's plugin calls, in turn with them, the lines cost about 5 % more
    of a run's CPU time (each evicts the other's working set from the CPU's caches); made for a
    whole commit's batch at once, more again (its records no longer fit the caches)."""

    __slots__ = ("events", "lines", "made", "records", "since")

    def __init__(self) -> None:
        self.lines: list[str | Unmade] = []  # a str: a whole line, its newline included
        self.made = 0  # lines[:made] are made
        self.events: list[WebhookEvent] = []
        self.records = 0
        self.since = 0.0  # when the first of them was added (time.perf_counter())

    def add(self, line: str | Unmade, events: list[WebhookEvent]) -> None:
        if not self.records:
            self.since = time.perf_counter()
        self.lines.append(line)
        self.events.extend(events)
        self.records += 1

    def due(self, batch: int) -> bool:
        """Whether to store and write them now: ``batch`` of them, or the first has waited :data:`HOLD`."""
        return self.records >= batch or time.perf_counter() - self.since >= HOLD

    def make(self) -> None:
        """Make the lines of the records added since the last call."""
        lines = self.lines
        for index in range(self.made, len(lines)):
            line = lines[index]
            if type(line) is not str:
                lines[index] = result_line(*line) + "\n"
        self.made = len(lines)

    def text(self) -> str:
        """The held lines, made and joined."""
        self.make()
        return "".join(self.lines)  # type: ignore[arg-type]  # made: every one a str

    def clear(self) -> None:
        self.lines.clear()
        self.made = 0
        self.events.clear()
        self.records = 0
