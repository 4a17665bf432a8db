"""``loopai run`` at a terminal: a clean stop on Ctrl-C, and a progress line on stderr."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

__all__ = ["Progress", "Stop", "interrupts"]

_STOPPING = b"\nloopai run: stopping once the records in flight are done (Ctrl-C again stops now)\n"


class Stop:
    """Set by the first Ctrl-C: finish the records in flight, read no more."""

    requested = False


@contextlib.contextmanager
def interrupts() -> Iterator[Stop]:
    """While inside, the first SIGINT sets ``requested`` and says on stderr what happens now (a
    plugin that hangs would otherwise leave the run silent); a second one raises
    ``KeyboardInterrupt`` as usual. Outside the main thread signals cannot be caught: then nothing
    changes."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first(signum: int, frame: object) -> None:
        stop.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(OSError):  # unbuffered: the main thread may be inside a write to stderr
            os.write(2, _STOPPING)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


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
