"""Result lines held until their records' events are stored: the engine stores a batch's events in
one commit, then writes its lines (see :mod:`._engine`)."""

from __future__ import annotations

import time

from loopai._models import WebhookEvent

__all__ = ["HOLD", "Held"]

HOLD = 0.25
"""The longest a result line waits for the records after it to share their commit (seconds)."""


class Held:
    """Result lines waiting for their records' events to be stored (written in input order)."""

    __slots__ = ("events", "lines", "records", "since")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.events: list[WebhookEvent] = []
        self.records = 0
        self.since = 0.0  # when the first of them was added (time.perf_counter())

    def add(self, line: str, events: list[WebhookEvent]) -> None:
        if not self.records:
            self.since = time.perf_counter()
        self.lines.append(line)
        self.events.extend(events)
        self.records += 1

    def due(self, batch: int) -> bool:
        """Whether to store and write them now: ``batch`` of them, or the first has waited :data:`HOLD`."""
        return self.records >= batch or time.perf_counter() - self.since >= HOLD

    def clear(self) -> None:
        self.lines.clear()
        self.events.clear()
        self.records = 0
