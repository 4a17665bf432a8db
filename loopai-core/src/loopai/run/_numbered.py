"""The input's lines as the run takes them: numbered, counted, cut short by a stop, and read ahead.

The engine (:mod:`._engine`) and the parent of ``--workers`` (:mod:`._workers`) number and count the
lines the same way, so that a line's number in a result or a message is the same with any number of
workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from loopai.run._summary import Summary
from loopai.run._terminal import Progress, Stop, StopReading

__all__ = ["READ_AHEAD", "Lines", "ahead", "numbered"]

Lines = Iterable[tuple[int, bytes] | None]
"""Numbered lines to process; None: the input is about to wait (held results are written first)."""

READ_AHEAD: Final = 64
"""Lines the engine parses one after the other before their records go through the plugins, where
they are there to be read without waiting (see :func:`ahead`). Parsing and plugin calls in turn, a
record at a time, each evicts the other's working set from the CPU's caches: measured on the
per-core benchmark's run, a line at a time costs about 14 % more CPU time than 64, 16 about 1 % more,
and 256 or more lines at a time cost more again (their records no longer fit the caches)."""


def numbered(
    source: Iterable[bytes | None], summary: Summary, stop: Stop, progress: Progress | None, *, cut: bool = False
) -> Iterator[tuple[int, bytes] | None]:
    """The non-blank lines of ``source`` with their numbers (from 1), until it ends or a stop is
    requested; counts them in ``summary.lines``. A None in ``source`` (the input pauses: see
    :mod:`._paced`) is passed on. ``cut``: while it waits for the next line, ``stop.reading`` is set,
    so that a Ctrl-C ends the read at once (:class:`StopReading`: a pipe that stays open is not waited
    on), and the input with it; a line half-read, or read as the stop came, is left out (never
    processed, nor counted). Only for a ``source`` whose reading may be cut anywhere: one that writes
    or sends nothing (not ``paced``, which hands over lines between threads: there, the Nones it gives
    while the input waits let a stop be seen)."""
    lines = iter(source)
    number = 0
    try:
        while not stop.requested:  # the caller says whether a Ctrl-C asked (stop.interrupted)
            stop.reading = cut
            try:
                if stop.requested:  # asked just before the flag was set
                    return
                raw = next(lines)
            except StopIteration:
                return
            finally:
                stop.reading = False
            if stop.requested:
                return
            if raw is None:
                yield None
                continue
            number += 1
            if progress is not None:
                progress.tick(summary.lines, summary.malformed)
            if raw.isspace():  # stops at the first character that is not white space
                continue
            summary.lines += 1
            yield number, raw
    except StopReading:  # only ever raised while stop.reading is set: inside this loop's read
        return


def ahead(lines: Lines, size: int) -> Iterator[list[tuple[int, bytes]] | None]:
    """``lines`` in lists of up to ``size``. A None (the input is about to wait) ends a list and is
    passed on. Taking ``size`` lines reads that many: above 1 only for ``lines`` that never wait
    while a line is held here (a regular file's; or lines that give a None before they wait, as
    ``numbered`` passes on ``paced``'s and a ``--workers`` worker gets its lines)."""
    chunk: list[tuple[int, bytes]] = []
    for line in lines:
        if line is not None:
            chunk.append(line)
            if len(chunk) < size:
                continue
        if chunk:
            yield chunk
            chunk = []
        if line is None:
            yield None
    if chunk:
        yield chunk
