"""A ``loopai run --workers`` worker: what runs in its process, and the handle the parent holds on it.

The worker builds its host from a picklable recipe, starts it when the parent says so, runs the
ordinary engine on the lines it is sent and sends back result lines (with the time spent making
them), then its summary; its standard output is its stderr (only the parent writes the run's
output). The parent's handle (:class:`WorkerHandle`) gathers the worker's lines,
sends them a batch at a time while the worker has less than :data:`AHEAD` seconds of work, and
keeps the results it answers with. A batch goes as the lines' numbers and the lines joined in one
bytes object, and its results come back as one text (pickled, a list of lines costs per line).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Final, NoReturn, Protocol

from loopai._crash import stacks_on_crash
from loopai._errors import LoopaiError
from loopai._log import captured_warnings
from loopai._stdout import stdout_to_stderr
from loopai.host import Host
from loopai.run._engine import Runner, RunOptions
from loopai.run._numbered import READ_AHEAD
from loopai.run._setup import refuse_unrunnable
from loopai.run._stall import StallWatch
from loopai.run._summary import Summary
from loopai.run._terminal import close_after_delivering

__all__ = ["AHEAD", "BATCH", "HostRecipe", "WorkerFailed", "WorkerHandle", "available_cpus"]


class HostRecipe(Protocol):
    """Builds a worker's host and ends the worker's process. Picklable."""

    def __call__(self, delivers: bool) -> tuple[Host, list[str]]:
        """The host (not started; given whether it delivers) and what went wrong loading its plugins."""
        ...

    def leave(self) -> None:
        """End this process now when its plugins left threads running (each warned about on stderr,
        naming the plugin), instead of waiting for them at exit; else return."""
        ...


BATCH = 256
"""Most lines sent to a worker at once: enough that a message costs little next to the work in it."""
AHEAD = 0.25
"""Seconds of work a worker is sent ahead: enough to keep it busy between two messages."""


class WorkerFailed(Exception):
    """A worker could not build or start its host; ``problems`` say why (exit 2, as with one process)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def available_cpus() -> int:
    """The CPUs this process may run on (``--workers auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Collected:
    """A worker's output: the result lines the engine writes, sent to the parent as one text each
    time it flushes (after each batch it writes: at most ``RunOptions.batch`` records, held at most
    :data:`~loopai.run._held.HOLD` seconds), with the time spent making them (the parent reads as
    far ahead as that time allows)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sending = threading.Lock()  # the stall watch's thread sends too
        self.texts: list[str] = []  # whole result lines, as the engine wrote them
        self.summary: Summary | None = None  # the engine's
        self.errors = 0  # error lines written so far (the parent counts a dead worker's lines by them)
        self.since = time.monotonic()
        self.idle = 0.0  # of the time since, spent waiting for lines
        self.notices: list[tuple[str, Any]] = []  # the delivery workers' log lines (and circuits), not sent yet

    def write(self, text: str) -> None:
        """Whole result lines, one or many (the engine writes a batch at once, and flushes)."""
        self.texts.append(text)
        # An error line is a malformed line's: none is looked for while all of those were counted.
        if self.summary is not None and self.summary.malformed > self.errors:
            self.errors += text.count(_ERROR)

    def flush(self) -> None:
        while self.notices:
            self.send(("notice", *self.notices.pop(0)))
        now = time.monotonic()
        if self.texts:
            self.send(("results", "".join(self.texts), now - self.since - self.idle, self.errors))
            self.texts = []
        self.since, self.idle = now, 0.0

    def send(self, message: tuple[Any, ...]) -> None:
        """Send ``message`` to the parent (from any thread)."""
        with self.sending:
            self.conn.send(message)

    def wait(self, conn: Any) -> Any:
        """The parent's next message; the time waiting for it is not work."""
        started = time.monotonic()
        message = conn.recv()
        self.idle += time.monotonic() - started
        return message


def _work(recipe: HostRecipe, conn: Any, options: RunOptions) -> None:
    """A worker's life: build its host, start it when told, run the lines it is sent, report."""
    _printed_to_stderr()  # before any plugin is imported
    # Ctrl-C, and a SIGTERM sent to the process group (timeout, systemd), are the parent's to handle:
    # it tells the workers when to stop, and kills one that does not.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stacks_on_crash()  # a crash in a plugin's native code prints the stack that names it
    # The connection pool's attempts to reconnect while a database is away: loopai says the outage
    # once (as the command does in one process: see loopai.cli._output).
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    with contextlib.suppress(EOFError, BrokenPipeError):  # the parent is gone (a second Ctrl-C)
        _serve(recipe, conn, options)
    recipe.leave()  # a thread a plugin left running would keep the worker from exiting


def _printed_to_stderr() -> None:
    """This process's standard output becomes its stderr (else, when it has none, the null device),
    line-buffered as stderr is. A worker sends its results to the parent on its pipe, and only the
    parent writes them to the run's output (its stdout, often): what plugins print here (``print``,
    native code, the processes they start, the workers of isolated plugins) is never mixed in.
    (The process-wide form of :func:`loopai.cli._common.results_apart`: a worker writes nothing of
    its own to stdout, and a stdout it cannot flush is none of its business.)"""
    stdout_to_stderr(quiet_flush=True, or_null=True)  # no stderr: what plugins print goes nowhere
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # said when printed, not when the worker ends


def _serve(recipe: HostRecipe, conn: Any, options: RunOptions) -> None:
    told = conn.recv()
    if told[0] != "build":  # the first worker builds alone: it creates the outbox file
        return
    try:
        host, problems = recipe(told[1])  # whether it delivers: one worker delivers for the run
    except LoopaiError as exc:
        conn.send(("failed", list(getattr(exc, "problems", None) or [str(exc)])))
        return
    outbox = host.outbox.path if host.outbox is not None else None
    conn.send(("built", problems, outbox, host.config.delivery.drain_timeout))
    if conn.recv()[0] != "start":  # hosts start one after the other; or the run was called off
        host.close()
        return
    known = len(host.problems)
    try:
        starting = StallWatch.starting_host(host, lambda text: conn.send(("say", text)))  # before "started"
        with captured_warnings() as said, starting:  # what plugins log as they start: the parent says it, once
            host.start()
        # A plugin the configuration names whose startup failed is off: as one that cannot load.
        refuse_unrunnable(host, host.config, "loopai run: nothing was processed")
    except LoopaiError as exc:
        conn.send(("failed", list(getattr(exc, "problems", None) or [str(exc)])))
        return
    conn.send(("started", [*host.problems[known:], *said]))
    known = len(host.problems)
    output = _Collected(conn)
    options.warn = lambda text: output.send(("warn", text))
    options.say = lambda text: output.send(("say", text))  # a plugin call that holds the run up
    runner = Runner(host, {}, output, options)  # type: ignore[arg-type]
    output.summary = runner.summary
    with _notices(output):
        try:
            runner.process(_received(conn, output), READ_AHEAD)  # it gives a None before it waits
            runner.finish()
            # The parent says what is waited for; a Ctrl-C (the terminal's, or the parent's
            # passed on) ends the wait.
            runner.summary.stopped_waiting = not close_after_delivering(host)
        except LoopaiError as exc:  # the outbox or the state database failed: this worker can go no further
            _fatal(output, exc)
        finally:
            with contextlib.suppress(LoopaiError):  # closing again fails as it did: said above
                host.close()
    summary = runner.summary
    summary.problems = host.problems[known:]
    summary.plugins = host.plugin_usage()  # handlers were called in the background, until the host drained
    # When this worker, closed, began counting what the outbox holds: the count begun last was
    # begun after every worker had closed, so its pending deliveries are the run's.
    summary.finished = time.perf_counter()
    try:
        summary.deliveries = host.delivery_report()
    except LoopaiError as exc:
        _fatal(output, exc)
    if host.delivery_failure is not None:
        summary.stopped_by = summary.stopped_by or f"the delivery workers stopped: {host.delivery_failure}"
    output.flush()
    conn.send(("done", summary))


def _fatal(output: _Collected, error: LoopaiError) -> NoReturn:
    """Tell the parent why this worker stops (what the outbox or the state database holds stays), and stop."""
    output.send(("fatal", str(error)))
    raise SystemExit(1) from None


@contextlib.contextmanager
def _notices(output: _Collected) -> Iterator[None]:
    """A handler's circuit opening or closing, said by the parent as by one process: the delivery
    workers' log lines go back with the next results (the parent logs them again)."""
    handler = _Notices(output)
    logger = logging.getLogger("loopai.delivery")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _Notices(logging.Handler):
    def __init__(self, output: _Collected) -> None:
        super().__init__(logging.INFO)
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:  # a failing outbox is said by the run itself
            # A delivery worker's thread: sent by the main one, with the circuit it is about, if any.
            self.output.notices.append((record.getMessage(), getattr(record, "circuit", None)))


def _received(conn: Any, output: _Collected) -> Iterator[tuple[int, bytes] | None]:
    """The lines the parent sends, numbered, until it says the input ended. Before waiting for more,
    a None (the engine writes the results it holds), and the result lines written so far go back."""
    while True:
        if not conn.poll():
            yield None
        output.flush()
        message = output.wait(conn)
        if message[0] == "end":
            return
        _, numbers, lines = message
        # The lines as read, joined: split at their line ends, which they lose (a line reads the same
        # without it), and an empty piece after the last, which zip leaves out (one number per line).
        yield from zip(numbers, lines.split(b"\n"), strict=False)


class WorkerHandle:
    """The parent's side of one worker: its process and pipe, the lines being gathered for it (sent a
    batch at a time: their numbers, and the lines joined in one bytes object), the result lines it
    sent back, and how it ended.

    Messages to the worker are written by a thread of their own: a pipe holds less than a batch,
    and the parent must never wait for one worker to read while the others have nothing to do.
    """

    def __init__(self, index: int, context: Any, recipe: HostRecipe, options: RunOptions) -> None:
        self.index = index
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_work, args=(recipe, child, options), name=f"loopai-run-{index}")
        self._child = child
        self._outgoing: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_all, name=f"loopai-run-send-{index}", daemon=True)
        self.numbers: list[int] = []  # the lines gathered for its next batch, and their numbers
        self.lines: list[bytes] = []
        self.batches: deque[tuple[list[int], bytes]] = deque()  # batches made and not sent yet
        self.assigned = 0  # lines given to it so far: new tasks go to the least busy worker
        self.sent = 0  # lines sent to it so far
        self.answered = 0  # results it sent back so far
        self.errors = 0  # of those, error lines (its malformed lines), as it counts them
        self.rate = 0.0  # lines per second of work, as it reports them (0: not known yet)
        self.results: deque[str] = deque()  # result lines (without their line ends) not written yet
        self.messages: deque[tuple[Any, ...]] = deque()  # what is not a result line, in order
        self.summary: Summary | None = None
        self.death: str | None = None
        self.fatal: str | None = None  # why it stopped, when it could say

    def start(self) -> None:
        self.process.start()
        self._child.close()
        self._sender.start()

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue ``message`` for the worker (in order; never waits)."""
        self._outgoing.put(message)

    def close(self) -> None:
        """Send what is queued, then stop sending."""
        self._outgoing.put(None)
        if self._sender.is_alive():
            self._sender.join(timeout=10)

    def _send_all(self) -> None:
        while (message := self._outgoing.get()) is not None:
            with contextlib.suppress(OSError):  # it died: its receiver says so
                self.conn.send(message)

    def take(self, number: int, raw: bytes) -> None:
        """One more line for it: every :data:`BATCH` of them make a batch, sent if it has room."""
        self.assigned += 1
        self.numbers.append(number)
        self.lines.append(raw)
        if len(self.lines) == BATCH:
            self._make_batch()
            self.feed()

    def _make_batch(self) -> None:
        self.batches.append((self.numbers, b"".join(self.lines)))
        self.numbers, self.lines = [], []

    def feed(self, force: bool = False) -> None:
        """Send its waiting lines, a batch at a time, while it has less than :data:`AHEAD` seconds of
        work unanswered (``force``: all of them, now)."""
        ahead = max(16, min(4 * BATCH, int(self.rate * AHEAD)))
        while force or self.sent - self.answered < ahead:
            if not self.batches:
                if not self.lines:
                    return
                self._make_batch()
            numbers, lines = self.batches.popleft()
            self.sent += len(numbers)
            self.send(("lines", numbers, lines))

    def answer(self, text: str, busy: float, errors: int) -> None:
        """Result lines it sent back (in one text), the time it worked on them, and the error lines
        it sent so far."""
        lines = text.split("\n")
        lines.pop()  # after the last line's end: nothing
        self.results.extend(lines)
        self.answered += len(lines)
        self.errors = errors
        if busy > 0:
            rate = len(lines) / busy
            self.rate = rate if self.rate == 0 else 0.8 * self.rate + 0.2 * rate

    def interrupt(self) -> None:
        """Pass a Ctrl-C on to it (unless it is gone)."""
        if self.process.pid is not None and self.death is None:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(self.process.pid, signal.SIGINT)

    def __str__(self) -> str:
        return f"worker {self.index + 1} (pid {self.process.pid})"


_ERROR: Final = ',"execution_id":null,'
"""In an error line, never in a result line (a plugin's text in one has its quotes escaped)."""
