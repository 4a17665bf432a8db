"""loopai's loggers: a library logs, the application decides where that goes.

One exception: warnings loopai reports in its own words (what a plugin logged while refusing its
settings, inside the problem that names the plugin) are *captured* while they are logged, and
marked so that the command line's and the service's handlers skip them instead of saying them twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["NotReported", "captured_warnings", "logger"]

_REPORTED = "loopai_reported"


def logger(name: str = "loopai") -> logging.Logger:
    """The logger ``name`` (``loopai`` or below it), with a null handler on ``loopai``: without one,
    Python's last-resort handler would print what loopai logs, which the command line says itself.

    Asked for by the modules that log, when they are imported: ``import loopai`` imports no
    ``logging`` (it costs the command line's start-up a few milliseconds).
    """
    root = logging.getLogger("loopai")
    if not any(isinstance(handler, logging.NullHandler) for handler in root.handlers):
        root.addHandler(logging.NullHandler())
    return logging.getLogger(name)


class _Capture(logging.Handler):
    """Collects the warnings logged on one thread, marking each as reported."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or getattr(record, _REPORTED, False):
            return  # another thread's, or seen already on its way up
        setattr(record, _REPORTED, True)
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a plugin's malformed log call: keep its raw message
            self.messages.append(str(record.msg))


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """The messages of the warnings logged on this thread while the block runs (by loopai or a
    plugin, on any logger that reaches ``loopai`` or the root), for the caller to report in its
    own words. Each is marked: handlers filtered with :class:`NotReported` skip it. Other
    handlers still see it (an application's own logging is its own)."""
    capture = _Capture()
    # First on both loggers, so that the mark is made before the handlers that look for it run
    # (``loopai`` may not propagate to the root, as under ``loopai serve``). Each list is replaced,
    # not changed in place: other threads may be walking it to handle their own records.
    loggers = [logging.getLogger("loopai"), logging.getLogger()]
    for each in loggers:
        each.handlers = [capture, *each.handlers]
    try:
        yield capture.messages
    finally:
        for each in loggers:
            each.handlers = [handler for handler in each.handlers if handler is not capture]


class NotReported(logging.Filter):
    """A handler's filter: skips the warnings :func:`captured_warnings` took to report itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, _REPORTED, False)
