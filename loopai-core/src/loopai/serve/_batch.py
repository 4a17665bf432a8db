"""``batch/run``: items through the host's per-record pipeline (``Host.process`` / ``aprocess``, what
``loopai run`` does per record), results in item order, progress, and a summary.

When nothing in the pipeline can wait (plain validators and samplers without timeouts, no handler
taking events), items go through ``Host.process`` one at a time, as ``loopai run`` runs them:
concurrency could only add overhead. Otherwise up to ``concurrency`` items are in flight through
``Host.aprocess`` (each a task of its own, kept by the service so that it finishes, and emits what
it raised, even when its client goes away). Either way results come out in item
order, each as the line ``loopai run`` writes for a record (``loopai.run.result_line`` /
``error_line``) with the item's ``id`` first. ``stop_on_first_error`` stops taking items at the
first item that is not valid (invalid, or not an item at all); the items already in flight still
finish and are reported. A client that disconnects stops the batch the same way.

:meth:`BatchRun.outputs` yields lists of outputs: a progress first, then results (with a progress
whenever a second has passed since the last), then a last progress and the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final, Protocol

from loopai._log import logger
from loopai._plugin import WebhookHandlerPlugin
from loopai.host import Host, RecordReport
from loopai.run import TaskSummary, error_line, result_line
from loopai.serve._batch_input import Disconnected, Item
from loopai.serve._service import Service

__all__ = ["BatchRun", "ItemSource", "Result"]

log = logger("loopai.serve")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_END: Final = ("end", None)
_QUEUE_SIZE: Final = 256
"""Results waiting for the client: a slow reader holds the batch back instead of filling memory."""
_CHUNK: Final = 512
"""Outputs handed on at once, at most."""


class ItemSource(Protocol):
    """Where a batch's items come from (see :mod:`loopai.serve._batch_input`)."""

    total: int | None

    def __aiter__(self) -> AsyncIterator[Item]: ...

    async def discard_rest(self) -> None: ...


class Result:
    """One item's outcome: its output line, whether it failed, and what the host reported."""

    __slots__ = ("failed", "item", "report", "seq", "text")

    def __init__(self, item: Item, text: str, report: RecordReport | None) -> None:
        self.seq = item.seq
        self.item = item
        self.report = report
        self.failed = report is None or not report.validation.is_valid
        item_id = "null" if item.id is None else _encode(item.id)
        self.text = f'{{"id":{item_id},{text[1:]}'  # the line's own fields after the item's id


class BatchRun:
    """One batch of ``source``'s items through ``service``'s host."""

    def __init__(self, service: Service, source: ItemSource, concurrency: int, stop_on_first_error: bool) -> None:
        self.service = service
        self.source = source
        self.concurrency = concurrency
        self.stop_on_first_error = stop_on_first_error
        self.batch_id = uuid.uuid4()
        self.received = self.completed = self.valid = self.invalid = self.errors = self.sampled = self.events = 0
        self.stopped_by: str | None = None
        self.tasks: dict[uuid.UUID, TaskSummary] = {}
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(_QUEUE_SIZE)
        self._started = time.perf_counter()
        self._payload = {"batch_id": str(self.batch_id)}
        self._inline = never_waits(service.host)
        """Items go through ``Host.process`` one by one, as ``loopai run`` runs them, when nothing in it
        can wait; else through ``Host.aprocess``, up to ``concurrency`` at a time."""

    # -- the stream of outputs ---------------------------------------------------------------

    async def outputs(self) -> AsyncIterator[list[tuple[str, Any]]]:
        """Lists of ``("progress", dict)``, ``("result", Result)`` and, last, ``("done", summary)``."""
        producer = asyncio.create_task(self._produce(), name=f"loopai-batch-{self.batch_id}")
        queue = self._queue
        try:
            yield [("progress", self.progress())]
            due = time.monotonic() + 1.0
            while True:
                chunk = _take(queue)
                if not chunk:
                    with contextlib.suppress(asyncio.TimeoutError):
                        chunk.append(await asyncio.wait_for(queue.get(), max(0.0, due - time.monotonic())))
                ended = bool(chunk) and chunk[-1] is _END
                if ended:
                    chunk.pop()
                now = time.monotonic()
                if now >= due and not ended:
                    chunk.append(("progress", self.progress()))
                    due = now + 1.0
                if ended:
                    break
                if chunk:
                    yield chunk
            await producer  # a failure of the batch itself ends the stream here
            yield [*chunk, ("progress", self.progress()), ("done", self.summary())]
        finally:
            if not producer.done():
                producer.cancel()  # no new items; those in flight finish on their own

    def progress(self) -> dict[str, Any]:
        """``completed``, ``total`` (None while an upload is arriving), ``valid`` and ``failed``."""
        total = self.source.total
        return {"completed": self.completed, "total": total, "valid": self.valid, "failed": self.invalid + self.errors}

    def summary(self) -> dict[str, Any]:
        """What the batch did (see :class:`loopai._wire.BatchRunSummary`)."""
        seconds = time.perf_counter() - self._started
        return {
            "batch_id": str(self.batch_id),
            "items": self.received,
            "completed": self.completed,
            "valid": self.valid,
            "invalid": self.invalid,
            "errors": self.errors,
            "failed": self.invalid + self.errors,
            "sampled": self.sampled,
            "events": self.events,
            "stopped_by": self.stopped_by,
            "duration_ms": round(seconds * 1000, 3),
            "items_per_second": round(self.completed / seconds, 1) if seconds > 0 else None,
            "tasks": [_finite(task.to_dict()) for task in sorted(self.tasks.values(), key=_task_order)],
        }

    # -- the items -----------------------------------------------------------------------------

    async def _produce(self) -> None:
        # Results wait here in item order: a Result when it is known, the item's task while it runs.
        window: deque[Result | asyncio.Task[Result]] = deque()
        limit, loop = self.concurrency, asyncio.get_running_loop()
        try:
            try:
                async for item in self.source:
                    self.received += 1
                    if item.error is not None:
                        window.append(self._malformed(item))
                    elif self._inline:
                        window.append(self._process_inline(item))
                    elif limit == 1:
                        window.append(await self._process(item))
                    else:
                        task = loop.create_task(self._process(item))
                        self.service.track(task)
                        window.append(task)
                    while window and (len(window) >= limit or _finished(window[0])):
                        await self._hand_on(window.popleft())
                    if self.stopped_by is not None:
                        break
            except Disconnected:
                self.stopped_by = "the client disconnected"
            while window:
                await self._hand_on(window.popleft())
            if self.stopped_by is not None and self.stopped_by != "the client disconnected":
                with contextlib.suppress(Disconnected):
                    await self.source.discard_rest()
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_END)  # when cancelled, nobody reads any more: never wait here

    async def _process(self, item: Item) -> Result:
        execution = item.execution
        assert execution is not None
        try:
            report = await self.service.host.aprocess(
                execution, expected_output=item.expected, payload={**self._payload, "item": item.seq}
            )
        except Exception as exc:  # noqa: BLE001 - the host isolates plugins: this is the host's own failure
            return self._failed(item, exc)
        return self._result(item, report)

    def _process_inline(self, item: Item) -> Result:
        execution = item.execution
        assert execution is not None
        try:
            report = self.service.host.process(
                execution, expected_output=item.expected, payload={**self._payload, "item": item.seq}
            )
        except Exception as exc:  # noqa: BLE001 - the host isolates plugins: this is the host's own failure
            return self._failed(item, exc)
        return self._result(item, report)

    def _failed(self, item: Item, exc: Exception) -> Result:
        trace_id = uuid.uuid4().hex
        log.error("batch %s item %d failed (trace %s)", self.batch_id, item.seq, trace_id, exc_info=exc)
        return Result(item, error_line(item.seq, f"the service failed on this item (trace {trace_id})"), None)

    def _result(self, item: Item, report: RecordReport) -> Result:
        observation = report.observation
        assert item.execution is not None
        text = result_line(
            item.seq, item.execution, observation.task.id_text, report.validation, report.sampling, observation.raised
        )
        return Result(item, text, report)

    def _malformed(self, item: Item) -> Result:
        return Result(item, error_line(item.seq, item.error or "not an item"), None)

    async def _hand_on(self, waiting: Result | asyncio.Task[Result]) -> None:
        """Settle the item at the head of the window, waiting for it (shielded: cancelling the batch never
        cancels a running item) only when it is still running."""
        if isinstance(waiting, Result):
            result = waiting
        else:
            result = waiting.result() if waiting.done() else await asyncio.shield(waiting)
        self._settle(result)
        if self._queue.full():
            await self._queue.put(("result", result))  # the client reads slower: wait for it
        else:
            self._queue.put_nowait(("result", result))

    def _settle(self, result: Result) -> None:
        """Count ``result`` (in item order)."""
        self.completed += 1
        report = result.report
        if report is None:
            self.errors += 1
        else:
            self._count(report)
            result.report = None  # counted: only its line goes on (what waits in the queue stays small for the GC)
        if result.failed and self.stop_on_first_error and self.stopped_by is None:
            self.stopped_by = f"stop_on_first_error: item {result.seq} failed"

    def _count(self, report: RecordReport) -> None:
        validation, sampling, observation = report.validation, report.sampling, report.observation
        execution = observation.execution
        self.valid += validation.is_valid
        self.invalid += not validation.is_valid
        self.sampled += sampling.should_sample
        self.events += len(observation.raised)
        self.service.telemetry.judged(execution.task_id, validation, sampling, report.emitted)
        task = self.tasks.get(execution.task_id)
        if task is None:
            view = observation.task
            task = self.tasks[execution.task_id] = TaskSummary(view.task_id, view.label, view.configured)
        task.records += 1
        task.valid += validation.is_valid
        task.sampled += sampling.should_sample
        if execution.latency_ms is not None:
            task.latency.add(execution.latency_ms)
        for crossing in observation.crossings:
            task.breaches[crossing.metric] = task.breaches.get(crossing.metric, 0) + 1
        for event_type, _ in observation.raised:
            task.events[event_type] = task.events.get(event_type, 0) + 1


def never_waits(host: Host) -> bool:
    """Whether ``host.process`` can run on the event loop without holding it up: no enabled validator or
    sampler is async or has a timeout (each would need a loop or a thread), and no handler takes any
    event (a sync emit waits for the handlers' deliveries)."""
    if host.handled_events():
        return False
    for entry in host.registry:
        if entry.kind is WebhookHandlerPlugin or not entry.plugin.enabled:
            continue
        if entry.is_async or (entry.plugin.timeout or host.default_timeout) is not None:
            return False
    return True


def _finished(waiting: Result | asyncio.Task[Result]) -> bool:
    return isinstance(waiting, Result) or waiting.done()


def _task_order(task: TaskSummary) -> tuple[bool, str]:
    return (not task.configured, task.label)


def _finite(value: Any) -> Any:
    """``value`` with infinite and NaN numbers as None: JSON has no such numbers (a latency of 1e308
    is accepted as a record's, and its rounded quantile overflows)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _take(queue: asyncio.Queue[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """What the queue holds now, up to a chunk, without waiting."""
    taken: list[tuple[str, Any]] = []
    try:
        while len(taken) < _CHUNK:
            item = queue.get_nowait()
            taken.append(item)
            if item is _END:
                break
    except asyncio.QueueEmpty:
        pass
    return taken
