"""Recording events in the outbox with one commit for all the callers that arrive together."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from loopai._models import WebhookEvent
from loopai.delivery._outbox import Outbox

__all__ = ["CommitGroup"]

Batch = Sequence[tuple[WebhookEvent, Sequence[str]]]
"""Events, each with the handlers to record it for."""


class _Entry:
    __slots__ = ("batch", "done", "error", "recorded")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.done = False
        self.error: BaseException | None = None
        self.recorded: list[list[str]] = []


class CommitGroup:
    """Group commit over an :class:`~loopai.delivery.Outbox`: callers that arrive while a commit
    is being written are written together by the next one.

    A caller returns only once a commit holding its events is done, so the promise of
    :meth:`Outbox.record` stands (what returned is stored); threads emitting at once share
    commits instead of queueing for one each. A single caller pays one commit, as before.
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._queue: list[_Entry] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def record(self, batch: Batch) -> list[list[str]]:
        """Store every event of ``batch``; per event, the handlers it was recorded for (see
        :meth:`Outbox.record_many`). Raises what the outbox raised for the commit."""
        entry = _Entry(batch)
        with self._queue_lock:
            self._queue.append(entry)
        with self._commit_lock:
            if not entry.done:  # no earlier committer took it: commit everything waiting
                with self._queue_lock:
                    taken, self._queue = self._queue, []
                self._commit(taken)
        if entry.error is not None:
            raise entry.error
        return entry.recorded

    def _commit(self, entries: list[_Entry]) -> None:
        everything = [item for entry in entries for item in entry.batch]
        try:
            recorded = self._outbox.record_many(everything)
        except BaseException as exc:  # noqa: BLE001 - every caller of this commit hears of it
            for entry in entries:
                entry.error, entry.done = exc, True
            return
        start = 0
        for entry in entries:
            entry.recorded = recorded[start : start + len(entry.batch)]
            entry.done = True
            start += len(entry.batch)
