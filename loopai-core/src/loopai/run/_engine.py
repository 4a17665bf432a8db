"""The engine of ``loopai run``: execution records through the host, in input order, streaming.

Each line is parsed, validated (``host.validate`` with the task's schemas and the line's
expected output), offered to the samplers (``host.should_sample`` with the task's rate)
and turned into events (``host.emit``). One JSON line per input line is written in
input order. Memory holds at most ``concurrency`` records, plus fixed-size state per task
(its rolling window and a latency histogram).

With ``concurrency`` 1 the sync host calls are used. Above 1, their asyncio twins run with
up to ``concurrency`` records in flight; the rolling windows and the summary are still
updated in input order (each record waits for the one before it after its plugin calls,
not before them), so which events a record raises does not depend on timing.

Events are emitted only when an enabled handler takes their type: with no handler for a
type there is nobody to deliver to, and nothing is written to the outbox. The output
line's ``events`` lists every event the record raised, either way.

A result line is written only once its record's events are stored (``host.emit_many``: with an
outbox, recorded for the delivery workers, which deliver in the background). Reading a regular
file, the lines of up to ``RunOptions.batch`` records wait for one commit of all their events;
from a pipe or stdin each record's line goes out with its own commit, so that a line is never
held back waiting for input.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from loopai._errors import LoopaiError
from loopai._models import ExecutionRecord, WebhookEvent
from loopai._report import EmitReport, SamplingReport, ValidationReport
from loopai.config import TaskSettings
from loopai.host import Host, Observation, TaskView
from loopai.run._input import Input, Malformed, parse_line
from loopai.run._record import error_line, result_line
from loopai.run._summary import Summary, TaskSummary
from loopai.run._terminal import Progress, Stop, interrupts

__all__ = ["RunOptions", "Runner"]


@dataclass
class RunOptions:
    """How to run: records in flight, stop at the first malformed line, show progress."""

    concurrency: int = 1
    fail_fast: bool = False
    progress: IO[str] | None = None
    """Where to draw the progress line (a terminal), or None for none."""
    batch: int = 256
    """Records whose events are stored in one commit, reading a regular file."""


class _Held:
    """Result lines waiting for their records' events to be stored (written in input order)."""

    __slots__ = ("events", "lines", "records")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.events: list[WebhookEvent] = []
        self.records = 0

    def add(self, line: str, events: list[WebhookEvent]) -> None:
        self.lines.append(line)
        self.events.extend(events)
        self.records += 1

    def clear(self) -> None:
        self.lines.clear()
        self.events.clear()
        self.records = 0


class Runner:
    """Runs one input through ``host``, writing one JSON line per input line to ``output``.

    ``tasks`` adds task settings to the host's tasks table (usually they are given to the host
    itself); records of tasks not in the table are validated and sampled with plain contexts
    and watched by no threshold. One runner per run.
    """

    def __init__(
        self,
        host: Host,
        tasks: Mapping[uuid.UUID, TaskSettings],
        output: IO[str],
        options: RunOptions | None = None,
    ) -> None:
        self.host = host
        if tasks:
            host.tasks.define(tasks)
        self.output = output
        self.options = options or RunOptions()
        self.summary = Summary()
        self.summary.outbox = host.outbox.path if host.outbox is not None else None
        self._tasks: dict[uuid.UUID, TaskSummary] = {}
        self._progress: Progress | None = None
        self._held = _Held()
        self._batch = 1

    def run(self, source: Input) -> Summary:
        """Process the lines of ``source`` until it ends, a Ctrl-C, or (with ``fail_fast``)
        the first malformed line; returns the summary. The output holds whole lines only."""
        if self.options.progress is not None:
            self._progress = Progress(self.options.progress, source.fraction)
        self._batch = max(1, self.options.batch) if source.regular else 1
        try:
            with interrupts() as stop:
                if self.options.concurrency <= 1:
                    self._run_sync(source, stop)
                else:
                    asyncio.run(self._run_async(source, stop))
        finally:
            if self._progress is not None:
                self._progress.clear()
            self.summary.finished = time.perf_counter()
            self.summary.plugins = self.host.plugin_usage()
            self.output.flush()
        return self.summary

    def _lines(self, source: Iterable[bytes], stop: Stop) -> Iterator[tuple[int, bytes]]:
        """Numbered non-blank lines, until the input ends or a stop is requested."""
        progress, summary = self._progress, self.summary
        for number, raw in enumerate(source, 1):
            if stop.requested:
                summary.interrupted = True
                return
            if progress is not None:
                progress.tick(summary.lines, summary.malformed)
            if len(raw) < 3 and not raw.strip():
                continue
            summary.lines += 1
            yield number, raw

    def _malformed(self, number: int, exc: Malformed) -> str:
        self.summary.malformed += 1
        if self.options.fail_fast:
            self.summary.stopped_by = f"--fail-fast: line {number} is malformed"
        return error_line(number, f"line {number}: {exc}")

    # -- the sync path ---------------------------------------------------------------

    def _run_sync(self, source: Iterable[bytes], stop: Stop) -> None:
        try:
            self._records_sync(source, stop)
        except BaseException:
            with contextlib.suppress(LoopaiError):  # what could not be stored is not written either
                self._release()
            raise
        self._release()

    def _records_sync(self, source: Iterable[bytes], stop: Stop) -> None:
        host, perf = self.host, time.perf_counter
        calls, seconds = self.summary.hook_calls, self.summary.hook_seconds
        tasks, held, batch = host.tasks, self._held, self._batch
        for number, raw in self._lines(source, stop):
            try:
                execution, expected = parse_line(raw)
            except Malformed as exc:
                held.add(self._malformed(number, exc) + "\n", [])
                if self.options.fail_fast:
                    return
                continue
            task = tasks.view(execution.task_id)
            started = perf()
            validation = host.validate(execution, task.validation_context(expected))
            middle = perf()
            sampling = host.should_sample(execution)
            seconds["validate"] += middle - started
            seconds["should_sample"] += perf() - middle
            calls["validate"] += 1
            calls["should_sample"] += 1
            observation = self._settle(number, execution, validation, sampling)
            events = observation.events(host.handled_events())
            held.add(
                result_line(number, execution, task.id_text, validation, sampling, observation.raised) + "\n", events
            )
            if held.records >= batch:
                self._release()

    def _release(self) -> None:
        """Store the held events (one commit), then write their lines."""
        held = self._held
        if held.events:
            self._before_emit()
            started = time.perf_counter()
            reports = self.host.emit_many(held.events)
            self._count_emits(reports, time.perf_counter() - started)
        if held.lines:
            self.output.write("".join(held.lines))
        held.clear()

    async def _arelease(self) -> None:
        held = self._held
        if held.events:
            self._before_emit()
            started = time.perf_counter()
            reports = await self.host.aemit_many(list(held.events))
            self._count_emits(reports, time.perf_counter() - started)
        if held.lines:
            self.output.write("".join(held.lines))
        held.clear()

    # -- the async path --------------------------------------------------------------

    async def _run_async(self, source: Iterable[bytes], stop: Stop) -> None:
        try:
            await self._records_async(source, stop)
        except Exception:
            with contextlib.suppress(LoopaiError):  # what could not be stored is not written either
                await self._arelease()
            raise
        await self._arelease()

    async def _records_async(self, source: Iterable[bytes], stop: Stop) -> None:
        loop = asyncio.get_running_loop()
        window: deque[Awaitable[tuple[str, list[WebhookEvent]]]] = deque()  # in input order, at most `limit`
        limit = self.options.concurrency
        previous: asyncio.Future[None] | None = None
        try:
            for number, raw in self._lines(source, stop):
                try:
                    parsed = parse_line(raw)
                except Malformed as exc:
                    done: asyncio.Future[tuple[str, list[WebhookEvent]]] = loop.create_future()
                    done.set_result((self._malformed(number, exc), []))
                    window.append(done)
                    if self.options.fail_fast:
                        break
                else:
                    turn: asyncio.Future[None] = loop.create_future()
                    window.append(asyncio.ensure_future(self._one(number, *parsed, previous, turn)))
                    previous = turn
                while len(window) >= limit:
                    await self._ahold(*await window.popleft())
            while window:
                await self._ahold(*await window.popleft())
        finally:
            for pending in window:  # left only when something raised: nothing more is written
                if isinstance(pending, asyncio.Future):
                    pending.cancel()

    async def _ahold(self, line: str, events: list[WebhookEvent]) -> None:
        self._held.add(line + "\n", events)
        if self._held.records >= self._batch:
            await self._arelease()

    async def _one(
        self,
        number: int,
        execution: ExecutionRecord,
        expected: Any,
        previous: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> tuple[str, list[WebhookEvent]]:
        """One record: plugin calls overlap with other records'; then it waits for
        ``previous`` (the record before it settled), settles, and resolves ``turn``. Returns
        its result line and the events to emit."""
        host, perf = self.host, time.perf_counter
        calls, seconds = self.summary.hook_calls, self.summary.hook_seconds
        try:
            task = host.tasks.view(execution.task_id)
            started = perf()
            validation = await host.avalidate(execution, task.validation_context(expected))
            middle = perf()
            sampling = await host.ashould_sample(execution)
            seconds["validate"] += middle - started
            seconds["should_sample"] += perf() - middle
            calls["validate"] += 1
            calls["should_sample"] += 1
            if previous is not None:
                await previous
            observation = self._settle(number, execution, validation, sampling)
        finally:
            if not turn.done():
                turn.set_result(None)
        events = observation.events(host.handled_events())
        return result_line(number, execution, task.id_text, validation, sampling, observation.raised), events

    # -- per record, in input order --------------------------------------------------

    def _summary_of(self, task: TaskView) -> TaskSummary:
        summary = self._tasks.get(task.task_id)
        if summary is None:
            summary = self._tasks[task.task_id] = TaskSummary(task.task_id, task.label, task.configured)
            self.summary.tasks[task.task_id] = summary
        return summary

    def _settle(
        self,
        number: int,
        execution: ExecutionRecord,
        validation: ValidationReport,
        sampling: SamplingReport,
    ) -> Observation:
        """Observe the record for its task's thresholds (in input order) and count it."""
        observation = self.host.observe(execution, validation, sampling, payload={"line": number})
        summary = self._summary_of(observation.task)
        summary.records += 1
        summary.valid += validation.is_valid
        summary.sampled += sampling.decision is not None
        if execution.latency_ms is not None:
            summary.latency.add(execution.latency_ms)
        for crossing in observation.crossings:
            summary.breaches[crossing.metric] = summary.breaches.get(crossing.metric, 0) + 1
        counts = summary.events
        for event_type, _ in observation.raised:
            counts[event_type] = counts.get(event_type, 0) + 1
        return observation

    def _count_emits(self, reports: list[EmitReport], seconds: float) -> None:
        self.summary.hook_calls["emit"] += len(reports)
        self.summary.hook_seconds["emit"] += seconds

    def _before_emit(self) -> None:
        if self._progress is not None:
            self._progress.clear()  # a console handler may print: let it start on a clean line
