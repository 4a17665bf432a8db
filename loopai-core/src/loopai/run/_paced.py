"""An input that is not a regular file (a pipe, stdin) read by a thread of its own, for ``--workers``
and ``--concurrency``.

Results are written in input order as records finish; the reader of a pipe that pauses (``tail -f``, a
producer that writes a few records at a time) must not keep the results of the lines it has while it
waits for the next one. Read here by a thread, the lines are handed over as each read returns them (a
bounded queue: memory stays flat), and when none is ready and :data:`PAUSE` seconds went by since the
last time, a None says so: the consumer sends, finishes and writes what it holds (and gets a None
again after as many seconds). A regular file is read by the consumer itself: it never pauses, and the
hand-over would cost per line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Final

from loopai.run._input import Input

__all__ = ["PAUSE", "paced"]

PAUSE: Final = 0.05
"""Seconds without a line after which the parent sends and writes what it holds (and again after as many)."""
_DEPTH: Final = 16
"""Reads handed over and not yet taken, at most (each at most a megabyte of lines)."""

_Item = list[bytes] | BaseException | None
"""What the reader hands over: the lines of one read, what it raised, or None (the end)."""


def paced(source: Input) -> Iterator[bytes | None]:
    """The lines of ``source``, read by a daemon thread, and a None whenever no line is ready and
    :data:`PAUSE` seconds passed since the last None (or the start). Reading ends when the caller
    stops taking them (closes the iterator). An error of the reader (:class:`~loopai.run.InputError`)
    is raised here, after the lines read before it."""
    handoff: queue.Queue[_Item] = queue.Queue(_DEPTH)
    over = threading.Event()  # the caller stopped taking lines

    def read() -> None:
        try:
            for lines in source.batches():
                _put(handoff, lines, over)
                if over.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            _put(handoff, exc, over)
            return
        _put(handoff, None, over)

    threading.Thread(target=read, name="loopai-run-read", daemon=True).start()
    last = time.monotonic()
    try:
        while True:
            try:
                item = handoff.get_nowait()
            except queue.Empty:
                if time.monotonic() - last >= PAUSE:
                    yield None
                    last = time.monotonic()
                try:
                    item = handoff.get(timeout=PAUSE)
                except queue.Empty:
                    continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        over.set()  # a reader waiting to hand over stops (one waiting for input stops when it comes)


def _put(handoff: queue.Queue[_Item], item: _Item, over: threading.Event) -> None:
    while not over.is_set():
        try:
            handoff.put(item, timeout=PAUSE)
            return
        except queue.Full:
            continue
