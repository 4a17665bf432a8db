"""``batch/run``: items through the host's per-record pipeline (what ``loopai run`` does per record, as
``Host.process`` / ``aprocess`` do it), results in item order, progress, and a summary.

When nothing in the pipeline can wait (plain validators and samplers without timeouts, no handler
taking events), items go through the host one at a time on the event loop, as ``loopai run`` runs
records: each task's contexts kept from item to item (:class:`loopai.run.Lanes`), concurrency could
only add overhead. Otherwise up to ``concurrency`` items are in flight through ``Host.aprocess``
(each a task of its own, kept by the service so that it finishes, and emits what it raised, even
when its client goes away). Either way results come out in item order, each as the line ``loopai
run`` writes for a record (``loopai.run.result_line`` / ``error_line``) with the item's ``id`` first.
Items are taken a list at a time (see :mod:`._batch_input`), and results handed on to the stream a
list at a time: after each list of items, and before any wait for a running item, so that nothing
finished waits behind it. ``stop_on_first_error`` stops taking items at the first item that is not
valid (invalid, or not an item at all); the items already in flight still finish and are reported.
A client that disconnects stops the batch the same way.

:meth:`BatchRun.outputs` yields lists of outputs: a progress first, then results (with a progress
whenever a second has passed since the last), then a last progress and the summary. The service's
verdict and sampling counters are told per list of results (see :meth:`BatchRun._tell`).
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
from typing import Any, Final

from loopai._errors import OutboxError
from loopai._log import logger
from loopai._plugin import WebhookHandlerPlugin
from loopai.database import DatabaseUnavailable
from loopai.host import Host, RecordReport
from loopai.run import Lanes, TaskSummary, error_line, result_line
from loopai.serve._batch_input import Disconnected, Item, ItemSource, next_list, unless
from loopai.serve._errors import unavailable_message
from loopai.serve._service import Service

__all__ = ["BatchRun", "Result"]

log = logger("loopai.serve")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_END: Final[list[Result]] = []
"""Put in the queue last: the batch has ended."""
_QUEUE_SIZE: Final = 8
"""Lists of results waiting for the client: a slow reader holds the batch back instead of filling memory
(and a batch stopped at shutdown has little left to send)."""
_CHUNK: Final = 512
"""Results handed on at once: once this many are taken, no more lists are (one list may pass it)."""


class Result:
    """One item's outcome: its output line, whether it failed, what the host reported, and the summary
    of its task that counts it (None when it is not a record)."""

    __slots__ = ("failed", "report", "seq", "summary", "text")

    def __init__(self, item: Item, text: str, report: RecordReport | None, summary: TaskSummary | None = None) -> None:
        self.seq = item.seq
        self.report = report
        self.summary = summary
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
        self.received = self.completed = self.errors = 0  # the rest is counted per task, in self.tasks
        self.stopped_by: str | None = None
        self.tasks: dict[uuid.UUID, TaskSummary] = {}
        self._lanes = Lanes(service.host, self.tasks)
        self._untold: set[TaskSummary] = set()
        """Summaries counted since the service's metrics were last told (see :meth:`_tell`)."""
        self._told: dict[uuid.UUID, tuple[int, int, int]] = {}
        self._queue: asyncio.Queue[list[Result]] = asyncio.Queue(_QUEUE_SIZE)
        self._started = time.perf_counter()
        self._payload = {"batch_id": str(self.batch_id)}
        self._inline = never_waits(service.host)
        """Items go through the host one by one on the event loop, as ``loopai run`` runs records, when
        nothing in it can wait; else through ``Host.aprocess``, up to ``concurrency`` at a time."""

    # -- the stream of outputs ---------------------------------------------------------------

    async def outputs(self) -> AsyncIterator[list[tuple[str, Any]]]:
        """Lists of ``("progress", dict)``, ``("results", [Result, ...])`` and, last, ``("done", summary)``."""
        producer = asyncio.create_task(self._produce(), name=f"loopai-batch-{self.batch_id}")
        queue = self._queue
        try:
            yield [("progress", self.progress())]
            due = time.monotonic() + 1.0
            while True:
                taken = _take(queue)
                if not taken:
                    taken += await _next(queue, due - time.monotonic())
                ended = bool(taken) and taken[-1] is _END
                if ended:
                    taken.pop()
                chunk: list[tuple[str, Any]] = [("results", results) for results in taken]
                now = time.monotonic()
                if now >= due and not ended:
                    chunk.append(("progress", self.progress()))
                    due = now + 1.0
                if ended:
                    break
                if chunk:
                    self._tell()
                    yield chunk
            await producer  # a failure of the batch itself ends the stream here
            self._tell()
            yield [*chunk, ("progress", self.progress()), ("done", self.summary())]
        finally:
            if not producer.done():
                producer.cancel()  # no new items; those in flight finish on their own

    def progress(self) -> dict[str, Any]:
        """``completed``, ``total`` (None while an upload is arriving), ``valid`` and ``failed``."""
        total, valid = self.source.total, sum(task.valid for task in self.tasks.values())
        return {"completed": self.completed, "total": total, "valid": valid, "failed": self.completed - valid}

    def summary(self) -> dict[str, Any]:
        """What the batch did (see :class:`loopai._wire.BatchRunSummary`)."""
        seconds = time.perf_counter() - self._started
        tasks = self.tasks.values()
        valid = sum(task.valid for task in tasks)
        return {
            "batch_id": str(self.batch_id),
            "items": self.received,
            "completed": self.completed,
            "valid": valid,
            "invalid": self.completed - self.errors - valid,
            "errors": self.errors,
            "failed": self.completed - valid,
            "sampled": sum(task.sampled for task in tasks),
            "events": sum(sum(task.events.values()) for task in tasks),
            "stopped_by": self.stopped_by,
            "duration_ms": round(seconds * 1000, 3),
            "items_per_second": round(self.completed / seconds, 1) if seconds > 0 else None,
            "tasks": [_finite(task.to_dict()) for task in sorted(self.tasks.values(), key=_task_order)],
        }

    # -- the items -----------------------------------------------------------------------------

    async def _produce(self) -> None:
        # Results wait here in item order: a Result when it is known, the item's task while it runs.
        window: deque[Result | asyncio.Task[Result]] = deque()
        settled: list[Result] = []  # counted, handed on together: after each list of items, or before a wait
        limit, loop = self.concurrency, asyncio.get_running_loop()
        try:
            try:
                async for items in self._lists():
                    for item in items:
                        if self.service.stop_taking_at is not None and self._out_of_time():
                            break
                        self.received += 1
                        if item.error is not None:
                            window.append(self._malformed(item))
                        elif self._inline:
                            window.append(self._process_inline(item))
                        elif limit == 1:
                            await self._hand_on(settled)
                            window.append(await self._process(item))
                        else:
                            task = loop.create_task(self._process(item))
                            self.service.track(task)
                            window.append(task)
                        while window and (len(window) >= limit or _finished(window[0])):
                            await self._settle_head(window, settled)
                        if self.stopped_by is not None:
                            break
                    await self._hand_on(settled)
                    if self.stopped_by is not None:
                        break
                    await asyncio.sleep(0)  # a turn for the other requests (probes too) between lists
            except Disconnected:
                self.stopped_by = "the client disconnected"
            while window:
                await self._settle_head(window, settled)
            await self._hand_on(settled)
            if self.stopped_by is not None and self.stopped_by != "the client disconnected":
                # The client sends its whole body before it reads the answer: let it, unless the server is
                # stopping. Then the answer goes at once and the connection is closed after it: the client,
                # its sending cut off, reads the answer.
                discarding = asyncio.ensure_future(self.source.discard_rest())
                if await unless(self.service.stop_taking, discarding):
                    with contextlib.suppress(Disconnected):
                        discarding.result()
        finally:
            self._tell()  # the stream may have ended already: the metrics are told all the same
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_END)  # when cancelled, nobody reads any more: never wait here

    async def _lists(self) -> AsyncIterator[list[Item]]:
        """The source's lists of items until they end, or until the service stops taking them (see
        :meth:`Service.shutting_down`): a wait for more of an upload ends then, however slowly it comes."""
        lists = aiter(self.source)
        while True:
            coming = asyncio.ensure_future(next_list(lists))
            if not await unless(self.service.stop_taking, coming):
                self._out_of_time()
                return
            items = coming.result()
            if items is None:
                return
            yield items

    def _out_of_time(self) -> bool:
        """Whether the server is stopping and this batch must end now to answer in full (see
        :meth:`Service.shutting_down`); says so in ``stopped_by``."""
        stop_at = self.service.stop_taking_at
        if stop_at is None or (time.monotonic() < stop_at and not self.service.stop_taking.is_set()):
            return False
        if self.stopped_by is None:
            self.stopped_by = (
                f"the service is shutting down: items after item {self.received} were not taken (send them again)"
            )
        return True

    async def _process(self, item: Item) -> Result:
        execution = item.execution
        assert execution is not None
        try:
            report = await self.service.host.aprocess(
                execution, expected_output=item.expected, payload={**self._payload, "item": item.seq}
            )
        except Exception as exc:  # noqa: BLE001 - the host isolates plugins: this is the host's own failure
            return self._failed(item, exc)
        return self._result(item, report, self._lanes.fresh()[execution.task_id].summary)

    def _process_inline(self, item: Item) -> Result:
        """What ``Host.process`` does, with the task's contexts kept in its lane from item to item,
        as ``loopai run`` runs records (this runs on the event loop: one item at a time)."""
        execution = item.execution
        assert execution is not None
        host = self.service.host
        try:
            lane = self._lanes.fresh()[execution.task_id]
            context = lane.validation if item.expected is None else lane.view.validation_context(item.expected)
            validation = host.validate(execution, context)
            sampling = host.should_sample(execution, lane.sampling)
            observation = host.observe(execution, validation, sampling, payload={**self._payload, "item": item.seq})
            handled = host.handled_events()  # none when the batch began; a reload may have added a handler
            emitted = host.emit_many(observation.events(handled)) if handled else []
        except Exception as exc:  # noqa: BLE001 - the host isolates plugins: this is the host's own failure
            return self._failed(item, exc)
        return self._result(item, RecordReport(validation, sampling, observation, emitted), lane.summary)

    def _failed(self, item: Item, exc: Exception) -> Result:
        trace_id = uuid.uuid4().hex
        if isinstance(exc, (OutboxError, DatabaseUnavailable)):  # not a bug: one line, and what to do
            said = " ".join(str(exc).split())
            log.warning("batch %s item %d failed: %s (trace %s)", self.batch_id, item.seq, said, trace_id)
            return Result(item, error_line(item.seq, f"{unavailable_message(exc)} (trace {trace_id})"), None)
        log.error("batch %s item %d failed (trace %s)", self.batch_id, item.seq, trace_id, exc_info=exc)
        return Result(item, error_line(item.seq, f"the service failed on this item (trace {trace_id})"), None)

    def _result(self, item: Item, report: RecordReport, summary: TaskSummary) -> Result:
        observation = report.observation
        assert item.execution is not None
        text = result_line(
            item.seq, item.execution, observation.task.id_text, report.validation, report.sampling, observation.raised
        )
        return Result(item, text, report, summary)

    def _malformed(self, item: Item) -> Result:
        return Result(item, error_line(item.seq, item.error or "not an item"), None)

    async def _settle_head(self, window: deque[Result | asyncio.Task[Result]], settled: list[Result]) -> None:
        """Count the item at the head of the window into ``settled``. When it is still running, what is
        settled is handed on first, then it is waited for (shielded: cancelling the batch never cancels
        a running item)."""
        head = window.popleft()
        if isinstance(head, Result):
            result = head
        elif head.done():
            result = head.result()
        else:
            await self._hand_on(settled)
            result = await asyncio.shield(head)
        self._settle(result)
        settled.append(result)

    async def _hand_on(self, settled: list[Result]) -> None:
        """Put what is in ``settled`` in the queue for the client, and empty it."""
        if not settled:
            return
        results = settled.copy()
        settled.clear()
        if self._queue.full():
            await self._queue.put(results)  # the client reads slower: wait for it
        else:
            self._queue.put_nowait(results)

    def _settle(self, result: Result) -> None:
        """Count ``result`` (in item order)."""
        self.completed += 1
        report, summary = result.report, result.summary
        if report is None or summary is None:
            self.errors += 1
        else:
            self._count(report, summary)
            result.report = result.summary = None  # counted: only its line goes on (little for the GC to walk)
        if result.failed and self.stop_on_first_error and self.stopped_by is None:
            self.stopped_by = f"stop_on_first_error: item {result.seq} failed"

    def _count(self, report: RecordReport, summary: TaskSummary) -> None:
        validation, sampling, observation = report.validation, report.sampling, report.observation
        execution = observation.execution
        if report.emitted:
            self.service.telemetry.emitted(report.emitted)
        summary.count(execution.latency_ms, validation.is_valid, sampling.should_sample, observation)
        self._untold.add(summary)

    def _tell(self) -> None:
        """Add the verdicts and sampling decisions counted since the last time to the service's
        metrics: per task, in bulk, as each chunk of results goes out and when the batch ends."""
        for summary in self._untold:
            records, valid, sampled = self._told.get(summary.task_id, (0, 0, 0))
            self._told[summary.task_id] = (summary.records, summary.valid, summary.sampled)
            records, valid, sampled = summary.records - records, summary.valid - valid, summary.sampled - sampled
            self.service.telemetry.judged(
                summary.task_id, valid=valid, invalid=records - valid, sampled=sampled, not_sampled=records - sampled
            )
        self._untold.clear()


def never_waits(host: Host) -> bool:
    """Whether items can go through the host on the event loop without holding it up: no enabled validator or
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


async def _next(queue: asyncio.Queue[list[Result]], seconds: float) -> list[list[Result]]:
    """The next list of results within ``seconds``, or none. Not ``asyncio.wait_for``: before Python
    3.12 it drops a cancellation (the client went away) that comes as the list does, and the batch
    would go on for nobody."""
    getting = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait({getting}, timeout=max(0.0, seconds))
    finally:
        if not getting.done():
            getting.cancel()
    return [getting.result()] if getting in done else []


def _take(queue: asyncio.Queue[list[Result]]) -> list[list[Result]]:
    """The lists of results the queue holds now, up to about a chunk of results, without waiting."""
    taken: list[list[Result]] = []
    count = 0
    try:
        while count < _CHUNK:
            results = queue.get_nowait()
            taken.append(results)
            if results is _END:
                break
            count += len(results)
    except asyncio.QueueEmpty:
        pass
    return taken
