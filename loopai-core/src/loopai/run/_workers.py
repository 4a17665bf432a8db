"""``loopai run --workers N``: the same run on N processes, with the same output as one.

The parent reads the input and sends each line to the worker that owns its task, which keeps
it. So every record of a task is processed by one worker, in input order, and per-task
statistics, time-based sampling and rolling thresholds are exactly those of a one-process run.
Each worker builds its own host and runs the ordinary engine (:class:`~loopai.run.Runner`) on its
lines (see :mod:`._process`); the parent writes their result lines back in input order and adds
up their summaries.

- Tasks are shared out by their records (a task's first record says nothing of its size): the
  parent looks at the first lines (:func:`~loopai.run._route.looked`) and gives their tasks
  workers, the task with the most lines there first, each to the worker with the fewest of those
  lines so far; a task first met later goes to the worker given the fewest lines so far.
- The parent's work per line is small: its task id read from its bytes (:mod:`._route`), the line
  added to its worker's next batch, its result line written back in order. A worker is sent a
  batch of lines as their numbers and one bytes object (the lines joined), and sends its result
  lines back as one text per batch (:mod:`._process`).
- Memory stays flat: at most a window of lines is between reading and writing (about
  :data:`WINDOW` seconds of work, at most :data:`MOST_WINDOW` lines). A worker is sent about
  a quarter second of work at a time; the rest of its lines wait in the parent, so that one
  worker's pause (importing a library its validator needs) does not stop the others.
- Ctrl-C: workers ignore it; the parent stops reading, the lines already read are finished
  and written, and the summary says it was interrupted. A second Ctrl-C stops everything at
  once (the output still ends with a whole line). Once every line is written, the workers end,
  the one that delivers last: every worker records its events in the outbox, the first alone
  delivers them (as one process: a handler's ``max_in_flight``, its order and the console's alert
  limits hold for the run), and waits for the deliveries (said when that lasts): a Ctrl-C then
  ends its wait (the parent passes it on), and the summary is printed all the same.
- A worker that dies (killed, out of memory): the parent stops reading; each line that worker
  had and did not answer gets an error line saying so (an event it raised before dying was
  recorded in the outbox first: it stays pending when the one that dies is the worker that
  delivers for the run, and the summary gives the command that delivers it), the other workers
  finish theirs, and the run ends early (exit 1). The output holds one whole line per line read, in order; the summary
  counts what it holds and names the tasks whose counts died with the worker (:mod:`._merge`).
- An input that is not a regular file (a pipe, stdin) is read by a thread of its own (:mod:`._paced`):
  when it pauses, the lines read are sent to the workers and the results back are written, at once.
- Warnings about the input (:mod:`._notes`): each unknown key the workers meet is said once.
- The first worker builds its host alone (it creates the outbox file, if there is none yet), the
  others together; hosts start one after the other, so that deliveries left pending in the outbox
  by a killed process are made once, by the first.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

from loopai.run._engine import RunOptions
from loopai.run._input import Input, InputError, Malformed, parse_line
from loopai.run._merge import Part, add_up, died, labels
from loopai.run._notes import Heard, Keys, closing_warnings
from loopai.run._numbered import numbered
from loopai.run._paced import paced
from loopai.run._process import BATCH, HostRecipe, WorkerFailed, WorkerHandle, available_cpus
from loopai.run._record import error_line
from loopai.run._route import Router, looked
from loopai.run._summary import Summary
from loopai.run._terminal import MOMENT, Progress, Stop, interrupts, waiting_line

__all__ = ["HostRecipe", "WorkerFailed", "available_cpus", "run_in_workers"]

WINDOW = 2.0
"""Seconds of work read ahead of what is written: a worker's pause shorter than this does not stop the
others, and a Ctrl-C (which lets the lines already read finish) ends within about this much."""
MOST_WINDOW = 32_768
"""The most lines read ahead of what is written, however fast the workers (a few MB)."""
LEAST_WINDOW = 32
"""The fewest lines read ahead per worker, however slow its plugins."""


def run_in_workers(
    recipe: HostRecipe, workers: int, source: Input, open_output: Callable[[], IO[str]], options: RunOptions
) -> tuple[Summary, list[str]]:
    """Run ``source`` on ``workers`` processes, each with the host ``recipe`` builds; the summary,
    and the problems the hosts found (each once). ``open_output`` is called once every host has
    started (a run refused before then leaves an earlier output alone). Raises
    :class:`WorkerFailed` when a worker cannot build or start its host."""
    parent = _Parent(recipe, workers, options)
    try:
        problems = parent.start()
        summary = parent.run(source, open_output())
    finally:
        parent.stop()
    return summary, problems


class _Parent:
    """Reads and routes the lines, and writes the results back in order (see the module)."""

    def __init__(self, recipe: HostRecipe, count: int, options: RunOptions) -> None:
        self.output: IO[str]  # given to run: opened once the hosts have started
        self.options = options
        self.summary = Summary()
        context = multiprocessing.get_context("spawn")  # a host's threads and plugins are never forked
        own = RunOptions(options.concurrency, options.fail_fast, batch=options.batch)
        self.workers = [WorkerHandle(index, context, recipe, own) for index in range(count)]
        self.owners: dict[str | None, WorkerHandle] = {}  # each task's worker
        self.router = Router()
        # The worker of each line read and not yet written, and its number (apart: a deque of
        # tuples, hundreds of thousands a second, would keep the garbage collector busy).
        self.order: deque[WorkerHandle] = deque()
        self.numbers: deque[int] = deque()
        self.window = count * LEAST_WINDOW  # until the workers' speed is known
        self.read = 0  # lines read so far (the last one's number)
        self.changed = threading.Condition()
        self.dead: WorkerHandle | None = None
        self.lost = 0  # lines of a dead worker that were never answered
        self.receivers: list[threading.Thread] = []
        self.drain_timeout = 0.0  # the workers' [delivery] drain_timeout, once they are built
        self.keys = Keys(self.summary.unknown_keys, options.warn)  # unknown keys: each said once, as by one process
        self.heard = Heard(self.keys, options.warn)
        self.names = getattr(recipe, "tasks", None) or {}  # the tasks table, when the recipe has one: names

    # -- start and stop ----------------------------------------------------------------------

    def start(self) -> list[str]:
        """Start the workers, then their hosts one after the other; the problems they found."""
        blocked = hasattr(signal, "pthread_sigmask")
        if blocked:  # a worker inherits the mask: a Ctrl-C before it ignores them cannot kill it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for worker in self.workers:
                worker.start()
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for worker in self.workers:
            receiver = threading.Thread(target=self._receive, args=(worker,), daemon=True)
            receiver.start()
            self.receivers.append(receiver)
        problems: list[str] = []
        first, others = self.workers[0], self.workers[1:]
        for group in ([first], others):  # the first creates the outbox; two at once would collide
            for worker in group:
                worker.send(("build", worker is first))  # one delivers (it ends last): as one process
            for worker in group:
                built = self._expect(worker, "built")
                problems += built[1]
                self.summary.outbox = self.summary.outbox or built[2]
                self.drain_timeout = built[3]
        for worker in self.workers:
            worker.send(("start",))
            problems += self._expect(worker, "started")[1]
        return list(dict.fromkeys(problems))

    def _expect(self, worker: WorkerHandle, what: str) -> tuple[Any, ...]:
        with self.changed:
            while not worker.messages and worker.death is None:
                self.changed.wait()
            message = worker.messages.popleft() if worker.messages else ("failed", [f"{worker} {worker.death}"])
        if message[0] != what:
            raise WorkerFailed(message[1])
        return message

    def stop(self) -> None:
        """Tell every worker the run is over (one waiting for lines or for its start ends), wait a
        little, then make sure; then close the pipes."""
        started = [worker for worker in self.workers if worker.process.pid is not None]
        for worker in started:
            worker.send(("end",))
        for worker in started:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
        for worker in self.workers:
            worker.close()
        for receiver in self.receivers:
            receiver.join(timeout=5)  # each ends at its worker's end of the pipe
        for worker in self.workers:
            worker.conn.close()

    # -- the run -----------------------------------------------------------------------------

    def run(self, source: Input, output: IO[str]) -> Summary:
        self.output = output
        progress = Progress(self.options.progress, source.fraction) if self.options.progress else None
        unreadable: InputError | None = None
        try:
            with interrupts() as stop:
                try:
                    shares, lines = looked(
                        iter(source) if source.regular else paced(source), self.router, len(self.workers)
                    )
                    self.owners.update({task: self.workers[index] for task, index in shares.items()})
                    self._dispatch(lines, stop, progress)
                except InputError as exc:  # the lines read before it are still processed
                    unreadable = exc
                cut_short = self.dead  # a worker died while the input was read: it was not read further
                for worker in self.workers:
                    worker.feed(force=True)
                for worker in self.workers[1:]:
                    worker.send(("end",))
                self._drain(0)
                self._ended(self.workers[1:])  # what they record is recorded: the one that delivers ends
                self.workers[0].send(("end",))
            self.summary.finished = time.perf_counter()  # processed: what follows is the wait for deliveries
            self.summary.interrupted = self.summary.interrupted or stop.interrupted  # after the last line read, too
            with interrupts(self._pass_interrupt_on, saying=b""):  # a Ctrl-C now ends the workers' wait
                self._add_up()
            if cut_short is not None and self.summary.stopped_by is None:  # none of its lines were lost
                self.summary.stopped_by = (
                    f"{cut_short} {cut_short.death}: the input was not read after line {self.read:,}"
                )
        finally:
            if progress is not None:
                progress.clear()
            self.output.flush()
        if unreadable is not None:
            unreadable.summary = self.summary  # type: ignore[attr-defined]
            raise unreadable
        return self.summary

    def _dispatch(self, lines: Iterable[bytes | None], stop: Stop, progress: Progress | None) -> None:
        """Give each line read to its task's worker, numbered and counted as one process does
        (:func:`~loopai.run._numbered.numbered`), until the input ends, a stop, or a worker's death;
        write the results back as they come."""
        order, numbers, owners, task = self.order, self.numbers, self.owners, self.router.task
        fail_fast = self.options.fail_fast
        for line in numbered(lines, self.summary, stop, progress):
            if line is None:  # the input pauses
                self._paused()
                if self.dead is not None:
                    return
                continue
            self.read, raw = line
            if fail_fast and _malformed(raw):
                stop.requested = True  # its worker writes why, and stops; read no more
            key = task(raw)  # None: not a record; any worker writes its error line
            worker = owners.get(key) or self._owner(key)
            worker.take(self.read, raw)
            order.append(worker)
            numbers.append(self.read)
            if len(order) >= self.window:  # the most read ahead: wait until half of it is written
                self.window = max(
                    len(self.workers) * BATCH, min(MOST_WINDOW, int(sum(w.rate for w in self.workers) * WINDOW))
                )
                self._drain(self.window // 2)
            elif order[0].results:  # the oldest line's result is back: write what is ready
                self._write_ready()
            if self.dead is not None:  # read no further
                return

    def _owner(self, key: str | None) -> WorkerHandle:
        """The worker for the first line of a task met after the look: the least busy (a line of no
        task: any)."""
        worker = min(self.workers, key=lambda w: w.assigned)
        if key is not None:
            self.owners[key] = worker
        return worker

    def _paused(self) -> None:
        """The input pauses: every worker is sent the lines it waits for, and what is back is written."""
        for worker in self.workers:
            worker.feed(force=True)
        if self.order:
            self._write_ready()
        self.output.flush()

    def _write_ready(self) -> None:
        """Write the results that come next in input order and have arrived (in one write: they
        come back a batch at a time)."""
        order, numbers, ready = self.order, self.numbers, []
        while order and order[0].results:
            ready.append(order.popleft().results.popleft())
            numbers.popleft()
        if ready:
            ready.append("")  # the last line's end
            self.output.write("\n".join(ready))

    def _drain(self, low: int) -> None:
        """Write results in input order until at most ``low`` lines are left waiting."""
        while len(self.order) > low:
            self._write_ready()
            if len(self.order) <= low:
                return
            worker = self.order[0]
            worker.feed(force=True)  # the oldest line may be waiting in the parent
            self.output.flush()  # what is written is in the file while the workers work
            with self.changed:
                while not worker.results and worker.death is None:
                    for each in self.workers:  # the others keep working meanwhile
                        each.feed()
                    self.changed.wait(0.05)
            if not worker.results:  # it died before answering: this line is lost
                self.order.popleft()
                number = self.numbers.popleft()
                self.output.write(error_line(number, self._lost(worker, number)) + "\n")

    def _lost(self, worker: WorkerHandle, number: int) -> str:
        self.lost += 1
        self.summary.stopped_by = (
            f"{worker} {worker.death}: {self.lost:,} line(s) it had got no result, and the input was not read further"
        )
        return (
            f"line {number}: no result: {worker} {worker.death} before sending it back (it may have "
            "processed this line: any event it emitted was recorded in the outbox first)"
        )

    def _ended(self, workers: list[WorkerHandle]) -> None:
        """Wait for ``workers`` to end (their summaries), or die."""
        with self.changed:
            while any(worker.summary is None and worker.death is None for worker in workers):
                self.changed.wait(MOMENT)

    def _add_up(self) -> None:
        """The workers' summaries into the run's (see :mod:`._merge`), then the closing warnings.
        The workers wait for deliveries before they send theirs: said once, when it lasts."""
        summary = self.summary
        say, since = self.options.say, time.monotonic()
        with self.changed:
            for worker in self.workers:
                while worker.summary is None and worker.death is None:
                    if not self.changed.wait(MOMENT) and say is not None and time.monotonic() - since >= MOMENT:
                        say(waiting_line(self.drain_timeout))
                        say = None
        parts = []
        for worker in self.workers:
            owned = [key for key, owner in self.owners.items() if owner is worker and key is not None]
            parts.append(
                Part(
                    str(worker),
                    worker.summary,
                    worker.death,
                    worker.answered,
                    worker.errors,
                    labels(owned, self.names) if worker.summary is None else (),
                    delivered_for_run=worker is self.workers[0],
                )
            )
            if worker.summary is not None:
                for warning in worker.summary.unknown_keys.values():
                    self.keys.merge(warning)
        add_up(summary, parts, self.lost)
        summary.failed = next((worker.fatal for worker in self.workers if worker.fatal is not None), None)
        for text in closing_warnings(summary, self.keys.said):
            if self.options.warn is not None:
                self.options.warn(text)

    def _pass_interrupt_on(self) -> None:
        """A Ctrl-C while the workers wait for deliveries, as a signal handler: passed on to them,
        which ends their wait (a terminal's Ctrl-C reaches them too: they take the first)."""
        for worker in self.workers:
            worker.interrupt()

    # -- what the workers send ---------------------------------------------------------------

    def _receive(self, worker: WorkerHandle) -> None:
        """One worker's messages as they come: a thread each, so that a worker never waits on the
        parent to send its results (while the parent may be waiting to send it lines)."""
        while True:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                break
            with self.changed:
                kind = message[0]
                if kind == "results":
                    worker.answer(*message[1:])
                elif kind == "done":
                    worker.summary = message[1]
                elif kind == "warn":
                    self.heard.warning(message[1])
                elif kind == "say":
                    if self.options.say is not None:
                        self.options.say(message[1])  # its line numbers are the input's
                elif kind == "notice" and self.heard.news(worker.index, message[2]):  # as one process says it
                    logging.getLogger("loopai.delivery").info("%s", message[1])
                elif kind == "fatal":
                    worker.fatal = message[1]
                else:
                    worker.messages.append(message)
                self.changed.notify_all()
        if worker.summary is None:  # gone before its summary: it died
            death = died(worker)
            with self.changed:
                worker.death = death
                self.dead = self.dead or worker
                self.changed.notify_all()


def _malformed(raw: bytes) -> bool:
    try:
        parse_line(raw)
    except Malformed:
        return True
    return False
