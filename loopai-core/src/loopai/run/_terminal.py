"""``loopai run`` at a terminal: a clean stop on Ctrl-C (reading, and the wait for deliveries at the
end), and a progress line on stderr."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from loopai._errors import LoopaiError

if TYPE_CHECKING:
    from loopai.host import Host

__all__ = ["MOMENT", "Progress", "Stop", "StopReading", "close_after_delivering", "interrupts", "waiting_line"]

_STOPPING = b"\nloopai run: stopping once the records in flight are done (Ctrl-C again stops now)\n"


class Stop:
    """Read no more, finish the records in flight: ``requested`` by the first Ctrl-C (then
    ``interrupted`` too) or by the run itself (``--fail-fast``). ``reading``: the run is waiting
    for its next line (set by the reader around the read): then the first Ctrl-C ends the read at
    once, raising :class:`StopReading` there, which the reader takes as the end of its input."""

    requested = False
    interrupted = False
    reading = False


class StopReading(BaseException):
    """Raised by the first Ctrl-C (or SIGTERM) in the read of the next line (:attr:`Stop.reading`), so
    that a run reading a pipe that stays open stops at once; the reader ends its input on it. A
    BaseException: what reads the input lets errors through (``OSError``), never this."""


@contextlib.contextmanager
def interrupts(also: Callable[[], None] | None = None, *, saying: bytes = _STOPPING) -> Iterator[Stop]:
    """While inside, the first SIGINT sets ``requested``, writes ``saying`` on stderr (what
    happens now: a plugin that hangs would otherwise leave the run silent) and calls ``also``
    (in the signal handler), then, when the run waits for its next line (``reading``), raises
    :class:`StopReading` to end the wait; a second one raises ``KeyboardInterrupt`` as usual.
    Outside the main thread signals cannot be caught: then nothing changes."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first(signum: int, frame: object) -> None:
        stop.requested = stop.interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(OSError):  # unbuffered: the main thread may be inside a write to stderr
            os.write(2, saying)
        if also is not None:
            also()
        if stop.reading:  # waiting for input that may never come (a pipe kept open): end the read now
            stop.reading = False
            raise StopReading

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


MOMENT = 0.5
"""Seconds of waiting for deliveries at the end that go unsaid."""


def close_after_delivering(host: Host, say: Callable[[str], None] | None = None) -> bool:
    """Close ``host`` as ``with host`` does, once the deliveries due are made, waiting up to its
    ``[delivery] drain_timeout``; but a Ctrl-C (the first one from now) ends the wait, and what
    is not delivered stays pending in the outbox. When the wait lasts more than a moment,
    ``say`` is given a line telling what is waited for and how to end it. False when a Ctrl-C
    ended the wait. A failing outbox ends it too (the host keeps its failure)."""
    timeout = host.config.delivery.drain_timeout
    cut = False
    restore = _interruptible_once()
    try:
        started = time.monotonic()
        # A first look for a moment, but at all that is due before the deadline (a retry in 1 s too).
        if timeout > 0 and not host.drain(min(MOMENT, timeout), due_within=timeout):
            if say is not None:
                say(waiting_line(timeout))
            host.drain(max(0.0, timeout - (time.monotonic() - started)))
    except KeyboardInterrupt:
        cut = True
    except LoopaiError:
        pass  # the delivery workers stopped on it: said, and kept as host.delivery_failure
    finally:
        restore()
        with _stop_waiting_on_ctrl_c(host):  # closing may wait for a database that is away
            host.close(drain_timeout=0, wait_for_database=not cut)  # stopped waiting: for a database as well
    return not cut


@contextlib.contextmanager
def _stop_waiting_on_ctrl_c(host: Host) -> Iterator[None]:
    """While inside, a Ctrl-C makes ``host`` wait no more for a database that is away (it writes its
    last counts if it answers at once, and says what it could not write); outside the main thread,
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: host.stop_waiting())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def waiting_line(timeout: float) -> str:
    """What ``loopai run`` says when the wait for deliveries at its end lasts."""
    return (
        f"loopai run: waiting up to {timeout:g} s for the deliveries still due "
        "(Ctrl-C stops waiting; what is left stays in the outbox)"
    )


def _interruptible_once() -> Callable[[], None]:
    """Make the next SIGINT raise ``KeyboardInterrupt``, once (a second one, as a terminal's Ctrl-C
    that also reaches the run's workers, is ignored); returns what puts the handler back. Outside
    the main thread signals cannot be caught: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def once(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, once)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)

    return restore


class Progress:
    """A ``\\r`` line: lines read, how many were malformed, lines per second, and a bar
    when ``fraction()`` knows how much of the input was read. Drawn at most ten times a second."""

    def __init__(self, stream: IO[str], fraction: Callable[[], float | None]) -> None:
        self.stream = stream
        self.fraction = fraction
        self.started = time.perf_counter()
        self.next_draw = 0.0
        self.shown = False

    def tick(self, lines: int, malformed: int) -> None:
        """Redraw, if the last drawing is old enough."""
        now = time.perf_counter()
        if now < self.next_draw:
            return
        self.next_draw = now + 0.1
        rate = lines / max(now - self.started, 1e-9)
        text = f"{lines:,} lines, {malformed:,} malformed, {rate:,.0f} lines/s"
        fraction = self.fraction()
        if fraction is not None:
            filled = int(fraction * 30)
            text = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}%  {text}"
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the line (before something else prints, and at the end)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
            self.next_draw = 0.0
