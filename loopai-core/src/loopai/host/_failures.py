"""The failures a plugin call can end in besides an exception of the plugin's own: each names what happened.

:mod:`loopai.host._outcome` turns them into the ``problem`` of a :class:`loopai.PluginFailure`;
the worker pools of isolated plugins (:mod:`loopai.host._process`) raise them. Also how a value a
hook should not have returned is named (:func:`what_returned`), in the host or by a worker.
"""

from __future__ import annotations

import functools
from typing import Any

from loopai._errors import LoopaiError
from loopai._report import FailureKind

__all__ = [
    "RaisedInWorker",
    "ReturnedInWorker",
    "WorkerLost",
    "WrongType",
    "raised_in_worker",
    "what_returned",
    "wrong_result",
]


class WrongType(LoopaiError):
    """A plugin returned something other than its hook's result type."""


class WorkerLost(LoopaiError):
    """An isolated plugin's worker process ended during a call, or was ended by the host.

    ``problem`` says how: ``crashed`` (it died: a signal such as SIGSEGV, or ``os._exit``),
    ``memory-limit``, ``cpu-limit`` or ``timeout`` (the host killed it). The worker is
    replaced; the message says what happened and what to do.
    """

    def __init__(self, problem: FailureKind, message: str) -> None:
        super().__init__(message)
        self.problem: FailureKind = problem


class RaisedInWorker(Exception):
    """An exception an isolated plugin raised in its worker process, brought back by name and message.

    Its class is named after the original (``ValueError``...), so that messages read as they
    would for a plugin that runs in the host; ``remote_type`` is the original's qualified
    name and ``remote_traceback`` its formatted traceback.
    """

    remote_type: str = ""
    remote_traceback: str = ""


@functools.cache
def _named(name: str) -> type[RaisedInWorker]:
    # One class per exception name met: a handful per process, kept for the process's life.
    return type(name, (RaisedInWorker,), {"__module__": __name__})


def raised_in_worker(qualified: str, message: str, traceback: str = "") -> RaisedInWorker:
    """The stand-in for exception ``qualified`` (``package.module.Error``) raised in a worker."""
    name = qualified.rsplit(".", 1)[-1] or "Exception"
    if not name.isidentifier():
        name = "Exception"
    error = _named(name)(message)
    error.remote_type = qualified
    error.remote_traceback = traceback
    return error


class ReturnedInWorker:
    """What an isolated webhook handler returned instead of None, as its worker named it
    (:func:`what_returned`): the value itself stays in the worker."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"ReturnedInWorker({self.what!r})"


def wrong_result(value: Any) -> str:
    """How a result of the wrong type is named: ``None (a missing return?)``, else its type's name."""
    return "None (a missing return?)" if value is None else type(value).__name__


def what_returned(value: Any) -> str:
    """How a value a hook returned is named in a message: ``False``, ``200``, ``a dict``. A truth
    value or a number as it is; anything else by its type, since its contents may be secret."""
    if isinstance(value, ReturnedInWorker):
        return value.what
    if type(value) in (bool, int, float):
        return repr(value)
    name = type(value).__qualname__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
