"""What the ``loopai`` command says on stderr besides its results: warnings and log messages, by level.

``-v`` shows loopai's informational messages (``-vv`` its debug messages), ``-q`` keeps only
errors (``-qq`` only critical ones), ``--log-level`` names the level outright; ``--trace`` turns
on hook tracing as ``LOOPAI_TRACE=1`` does. A command's own warnings go through :func:`warn`,
so that ``-q`` silences them too.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from loopai._log import NotReported

__all__ = ["is_quiet", "output_settings", "say", "warn"]

_CLI = "loopai.cli"
_SAID_OTHERWISE = frozenset({"loopai", "loopai.discovery", "loopai.delivery", "psycopg.pool"})


def warn(message: str) -> None:
    """Say ``warning: message`` on stderr, unless ``-q`` (or a higher ``--log-level``) asked for less."""
    logging.getLogger(_CLI).warning("%s", message)


def say(message: str) -> None:
    """Say ``info: message`` on stderr when ``-v`` asked for more (what was found, where things go)."""
    logging.getLogger(_CLI).info("%s", message)


def is_quiet(args: argparse.Namespace) -> bool:
    """Whether ``-q`` (or ``--log-level error`` or higher) asked for errors only."""
    return _level(args) > logging.WARNING


def _level(args: argparse.Namespace) -> int:
    named = getattr(args, "log_level", None)
    if named:
        return int(logging.getLevelName(named.upper()))
    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", 0)
    steps = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    return steps[max(0, min(len(steps) - 1, 2 - verbose + quiet))]


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a message comes (tests and redirections replace it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == _CLI:
            return f"{record.levelname.lower()}: {message}"
        return f"{record.levelname.lower()}: {record.name}: {message}"


def _not_reported_elsewhere(record: logging.LogRecord) -> bool:
    """The warnings a command says in its own words are not shown twice: the host's and
    discovery's (a plugin left out, a refused setting: the commands print them as problems), the
    delivery workers' (their notices have a handler of their own), and the connection pool's
    attempts to reconnect while a database is away (loopai says the outage, and its end, once).
    Lower levels (``-v``) and everything else, the built-in plugins' (``loopai.builtin``) and the
    database's included, are shown."""
    return not (record.name in _SAID_OTHERWISE and record.levelno >= logging.WARNING)


@contextlib.contextmanager
def output_settings(args: argparse.Namespace) -> Iterator[None]:
    """Log to stderr at the level the command line asks for while the command runs; then restore."""
    traced = os.environ.get("LOOPAI_TRACE")
    if getattr(args, "trace", False):
        os.environ["LOOPAI_TRACE"] = "1"  # what --trace means, for every host the command builds
    level = _level(args)
    handler = _Stderr()
    handler.setLevel(level)
    handler.setFormatter(_Format())
    handler.addFilter(_not_reported_elsewhere)
    handler.addFilter(NotReported())  # what a plugin logged while refusing settings: in the problem already
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(min(level, before) if before else level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        if traced is None:
            os.environ.pop("LOOPAI_TRACE", None)
        else:
            os.environ["LOOPAI_TRACE"] = traced
