"""loopai's loggers: a library logs, the application decides where that goes."""

from __future__ import annotations

import logging

__all__ = ["logger"]


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
