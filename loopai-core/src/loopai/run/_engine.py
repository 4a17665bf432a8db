"""The engine of ``loopai run``: execution records through the host, in input order, streaming.

Each line is parsed, validated (``host.validate`` with the task's schemas and the line's
expected output), offered to the samplers (``host.should_sample`` with the task's rate)
and turned into events (``host.emit``). One JSON line per input line is written in
input order. Memory holds at most ``concurrency`` records, plus fixed-size state per task
(its rolling window and a latency histogram). One record at a time, lines that are there to be read
(a regular file's, a ``--workers`` worker's) are parsed :data:`~._numbered.READ_AHEAD` at a time
before their records go through the plugins; a stop leaves out, uncounted, those not yet processed.

With ``concurrency`` 1 the sync host calls are used. Above 1, their asyncio twins run with
up to ``concurrency`` records in flight; the rolling windows and the summary are still
updated in input order (each record waits for the one before it after its plugin calls,
not before them), so which events a record raises does not depend on timing.

Events are emitted only when an enabled handler takes their type: with no handler for a
type there is nobody to deliver to, and nothing is written to the outbox. The output
line's ``events`` lists every event the record raised, either way.

A result line is written only once its record's events are stored (``host.emit_many``: with an
outbox, recorded for the delivery workers, which deliver in the background). Reading a regular
file, the lines of up to ``RunOptions.batch`` records wait for one commit of all their events, and
none of them longer than :data:`~._held.HOLD` seconds (slow plugins: the output grows as records finish, and
a crash loses at most that much finished work); from a pipe or stdin each record's line goes out
with its own commit, so that a line is never held back waiting for input.

Several processes (``--workers``) each run one of these on their share of the tasks: see
:mod:`._workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import IO, Any

from loopai._errors import LoopaiError
from loopai._models import ExecutionRecord, WebhookEvent
from loopai._report import EmitReport, SamplingReport, ValidationReport
from loopai.config import TaskSettings
from loopai.host import Host, Observation
from loopai.run._held import Held, Unmade
from loopai.run._input import Input, Malformed, parse_line
from loopai.run._lanes import Lanes
from loopai.run._notes import Keys, closing_warnings
from loopai.run._numbered import READ_AHEAD, Lines, ahead, numbered
from loopai.run._paced import paced
from loopai.run._record import error_line, result_line
from loopai.run._stall import StallWatch
from loopai.run._summary import Summary, TaskSummary
from loopai.run._terminal import Progress, Stop, interrupts

__all__ = ["RunOptions", "Runner"]


_Unknown = tuple[list[str], Collection[str]]
"""A record's keys that no field has, and the fields it gives (see :meth:`loopai.run._notes.Keys.add`)."""


@dataclass
class RunOptions:
    """How to run: records in flight, stop at the first malformed line, show progress."""

    concurrency: int = 1
    fail_fast: bool = False
    progress: IO[str] | None = None
    """Where to draw the progress line (a terminal), or None for none."""
    warn: Callable[[str], None] | None = None
    """Told what the user should know about the input: each unknown key once, as it is met (see
    :mod:`._notes`), and, at the end of :meth:`Runner.run`, how many more keys and the tasks not in
    the tasks table."""
    batch: int = 256
    """Records whose events are stored in one commit (1 when the input is a pipe: see the module)."""
    say: Callable[[str], None] | None = None
    """Told what the run waits for, when that lasts (a plugin's call, the deliveries still due at the
    end), or None (quiet). May be called from another thread."""


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
        self._lanes = Lanes(host, self.summary.tasks)
        self._progress: Progress | None = None
        self._seconds = {"validate": 0.0, "should_sample": 0.0}
        self._number = 0  # the line processed (or, with records in flight, parsed) last
        self._met: _Unknown | None = None  # the unknown keys of the line read last (see _read)
        self._stop = Stop()  # run()'s: a Ctrl-C or --fail-fast
        self._held = Held()
        self._batch = max(1, self.options.batch)
        self._keys = Keys(self.summary.unknown_keys, self.options.warn)

    def run(self, source: Input) -> Summary:
        """Process the lines of ``source`` until it ends, a Ctrl-C, or (with ``fail_fast``)
        the first malformed line; returns the summary. The output holds whole lines only."""
        if self.options.progress is not None:
            self._progress = Progress(self.options.progress, source.fraction)
        if not source.regular:
            self._batch = 1
        # With records in flight, the results of a pipe's lines must not wait for its next line:
        # read by a thread, it says when it pauses (one at a time, each result is written at once).
        threaded = self.options.concurrency > 1 and not source.regular
        try:
            with interrupts() as stop:
                lines = paced(source) if threaded else source
                self._stop = stop
                read = numbered(lines, self.summary, stop, self._progress, cut=not threaded)
                left_out = self.process(read, READ_AHEAD if source.regular else 1)
                self.summary.lines -= left_out  # read ahead as the run stopped: not counted
            self.summary.interrupted = self.summary.interrupted or stop.interrupted  # after the last line read, too
        finally:
            if self._progress is not None:
                self._progress.clear()
            self.finish()
            for text in closing_warnings(self.summary, self._keys.said):
                if self.options.warn is not None:
                    self.options.warn(text)
        return self.summary

    def process(self, lines: Lines, ahead: int = 1) -> int:
        """Process numbered lines (``numbered``), writing each one's result line in order. A
        None among them says the input is about to wait: what is held is stored and written.
        A plugin call that holds the run up is said (``options.say``: see :mod:`._stall`).

        With one record at a time, up to ``ahead`` lines are read and parsed before their records
        go through the plugins: more than 1 only for ``lines`` that never wait with lines held
        (see :func:`~loopai.run._numbered.ahead`). A stop (a Ctrl-C, ``--fail-fast``) leaves the
        lines read ahead unprocessed: returns how many, which the caller counts as not read."""
        with self._stall_watch():
            if self.options.concurrency <= 1:
                return self._run_sync(lines, ahead)
            asyncio.run(self._run_async(lines))
            return 0

    def _stall_watch(self) -> contextlib.AbstractContextManager[object]:
        after, say = self.host.config.dispatch.stall_notice, self.options.say
        if say is None or after <= 0:
            return contextlib.nullcontext()
        one_at_a_time = self.options.concurrency <= 1

        def said(text: str) -> None:
            if self._progress is not None:
                self._progress.clear()  # the engine's thread, which draws it, is held up
            say(text)

        return StallWatch(self.host, said, lambda: self._number, lambda: self._number if one_at_a_time else None, after)

    def finish(self) -> None:
        """Complete the summary (hook counts and times, plugin usage) and flush the output."""
        summary = self.summary
        summary.finished = time.perf_counter()
        records = summary.records
        for hook, seconds in self._seconds.items():
            summary.hook_calls[hook] = records
            summary.hook_seconds[hook] = seconds
        summary.plugins = self.host.plugin_usage()
        summary.tabled = bool(self.host.tasks.settings)
        self.output.flush()

    def _malformed(self, number: int, exc: Malformed) -> str:
        summary = self.summary
        summary.malformed += 1
        if self.options.fail_fast:
            summary.stopped_by = f"--fail-fast: line {number} is malformed"
        why = f"line {number}: {exc}"
        if summary.first_malformed is None or number < summary.first_malformed[0]:
            summary.first_malformed = (number, why)
        return error_line(number, why)

    # -- the sync path ---------------------------------------------------------------

    def _run_sync(self, lines: Lines, size: int) -> int:
        try:
            left = self._records_sync(lines, size)
        except BaseException:
            with contextlib.suppress(LoopaiError):  # what could not be stored is not written either
                self._release()
            raise
        self._release()
        return left

    def _records_sync(self, lines: Lines, size: int) -> int:
        held, batch, stop = self._held, self._batch, self._stop
        for chunk in ahead(lines, size):
            if chunk is None:  # the input waits: no result waits with it
                self._release()
                continue
            parsed = [(number, *self._read(raw)) for number, raw in chunk]
            for index, (number, execution, expected, unknown) in enumerate(parsed):
                if stop.requested:  # the lines read ahead of it are left out
                    return len(parsed) - index
                self._number = number  # for the stall watch
                self._said(number, unknown)
                if isinstance(execution, Malformed):
                    held.add(self._malformed(number, execution) + "\n", [])
                    if self.options.fail_fast:
                        return len(parsed) - index - 1
                    continue
                held.add(*self._one_sync(number, execution, expected))
                if held.due(batch):
                    self._release()
            held.make()
        return 0

    def _read(self, raw: bytes) -> tuple[ExecutionRecord | Malformed, Any, _Unknown | None]:
        """A line parsed: the record and its expected output, or why it is malformed, and the keys it
        has that no field has (said when the line is processed: a line read ahead may not be)."""
        self._met = None
        try:
            execution, expected = parse_line(raw, self._aside)
        except Malformed as exc:
            return exc, None, self._met
        return execution, expected, self._met

    def _aside(self, keys: list[str], given: Collection[str]) -> None:
        self._met = (keys, given)

    def _said(self, number: int, unknown: _Unknown | None) -> None:
        """The keys of line ``number`` that no field has: each said once (see :mod:`._notes`)."""
        if unknown is not None:
            keys, given = unknown
            self._keys.add(keys, number, given)

    def _release(self) -> None:
        """Store the held events (one commit), then write their lines."""
        held = self._held
        if held.events:
            self._before_emit()
            started = time.perf_counter()
            reports = self.host.emit_many(held.events)
            self._count_emits(reports, time.perf_counter() - started)
        if held.lines:
            self.output.write(held.text())
            self.output.flush()  # written as they are released, not when a buffer fills
        held.clear()

    async def _arelease(self) -> None:
        held = self._held
        if held.events:
            self._before_emit()
            started = time.perf_counter()
            reports = await self.host.aemit_many(list(held.events))
            self._count_emits(reports, time.perf_counter() - started)
        if held.lines:
            self.output.write(held.text())
            self.output.flush()
        held.clear()

    def _one_sync(self, number: int, execution: ExecutionRecord, expected: Any) -> tuple[Unmade, list[WebhookEvent]]:
        """One record through the host; its result line (made when written) and the events to emit."""
        host, perf, seconds = self.host, time.perf_counter, self._seconds
        lane = self._lanes.fresh()[execution.task_id]
        context = lane.validation if expected is None else lane.view.validation_context(expected)
        started = perf()
        validation = host.validate(execution, context)
        middle = perf()
        sampling = host.should_sample(execution, lane.sampling)
        seconds["should_sample"] += perf() - middle
        seconds["validate"] += middle - started
        observation = self._settle(number, execution, validation, sampling, lane.summary)
        handled = host.handled_events()
        events = observation.events(handled) if handled else []
        return (number, execution, lane.view.id_text, validation, sampling, observation.raised), events

    # -- the async path --------------------------------------------------------------

    async def _run_async(self, lines: Lines) -> None:
        try:
            await self._records_async(lines)
        except Exception:
            with contextlib.suppress(LoopaiError):  # what could not be stored is not written either
                await self._arelease()
            raise
        await self._arelease()

    async def _records_async(self, lines: Lines) -> None:
        loop = asyncio.get_running_loop()
        window: deque[Awaitable[tuple[str, list[WebhookEvent]]]] = deque()  # in input order, at most `limit`
        limit = self.options.concurrency
        previous: asyncio.Future[None] | None = None
        try:
            for line in lines:
                if line is None:  # the input waits: no result waits with it
                    while window:
                        await self._ahold(*await window.popleft())
                    await self._arelease()
                    continue
                number, raw = line
                execution, expected, unknown = self._read(raw)
                self._number = number  # for the stall watch
                self._said(number, unknown)
                if isinstance(execution, Malformed):
                    done: asyncio.Future[tuple[str, list[WebhookEvent]]] = loop.create_future()
                    done.set_result((self._malformed(number, execution), []))
                    window.append(done)
                    if self.options.fail_fast:
                        break
                else:
                    turn: asyncio.Future[None] = loop.create_future()
                    window.append(asyncio.ensure_future(self._one(number, execution, expected, previous, turn)))
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
        if self._held.due(self._batch):
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
        host, perf, seconds = self.host, time.perf_counter, self._seconds
        try:
            lane = self._lanes.fresh()[execution.task_id]  # its summary and view; the contexts are per call here
            task = lane.view
            started = perf()
            validation = await host.avalidate(execution, task.validation_context(expected))
            middle = perf()
            sampling = await host.ashould_sample(execution)
            seconds["validate"] += middle - started
            seconds["should_sample"] += perf() - middle
            if previous is not None:
                await previous
            observation = self._settle(number, execution, validation, sampling, lane.summary)
        finally:
            if not turn.done():
                turn.set_result(None)
        events = observation.events(host.handled_events())
        return result_line(number, execution, task.id_text, validation, sampling, observation.raised), events

    # -- per record, in input order --------------------------------------------------

    def _settle(
        self,
        number: int,
        execution: ExecutionRecord,
        validation: ValidationReport,
        sampling: SamplingReport,
        summary: TaskSummary,
    ) -> Observation:
        """Observe the record for its task's thresholds (in input order) and count it."""
        observation = self.host.observe(execution, validation, sampling, payload={"line": number})
        summary.count(execution.latency_ms, validation.is_valid, sampling.decision is not None, observation)
        return observation

    def _count_emits(self, reports: list[EmitReport], seconds: float) -> None:
        self.summary.hook_calls["emit"] += len(reports)
        self.summary.hook_seconds["emit"] += seconds

    def _before_emit(self) -> None:
        if self._progress is not None:
            self._progress.clear()  # a console handler may print: let it start on a clean line
