"""One policy for what a plugin call returned: its result, or a :class:`loopai.PluginFailure` naming it.

A guarded call returns the plugin's result or a :class:`~loopai._isolation.Raised`. The
strategies accept a result of the hook's type as it is (one ``type() is`` check on the
common path) and hand anything else here: an exception, a timeout, a result of the wrong
type, or a coroutine a plain function returned (awaited, within the plugin's timeout); for an
isolated plugin also a lost worker process (crashed, over its memory or CPU limit, killed at
its timeout). A webhook handler returns nothing: when one returns a value, it is said once
(:meth:`Outcomes.returned`), and the delivery counts as made all the same.
"""

from __future__ import annotations

import inspect
import os
import threading
import traceback
from typing import Any

from loopai._errors import LoopaiError
from loopai._isolation import Raised, attempt, describe, own_file, raised_at, where_written
from loopai._log import logger
from loopai._report import FailureKind, PluginFailure
from loopai.host._failures import RaisedInWorker, WorkerLost, WrongType, what_returned, wrong_result
from loopai.host._invoke import HookTimeout, Invoker
from loopai.host._meter import Meter
from loopai.host._plan import Call

__all__ = ["Outcomes", "WrongType"]

log = logger("loopai.delivery")


class Outcomes:
    """Settles plugin call outcomes for one host (counting failures when it meters)."""

    def __init__(self, invoker: Invoker, meter: Meter | None) -> None:
        self._invoker = invoker
        self._meter = meter
        self._returned: set[str] = set()  # the handlers said to have returned a value
        self._lock = threading.Lock()

    def settle(self, call: Call, outcome: Any, expected: type, hook: str) -> Any:
        """``outcome`` when it is an ``expected`` result, else the :class:`PluginFailure` it amounts to."""
        if isinstance(outcome, expected):
            return outcome
        if isinstance(outcome, Raised):
            return self.failure(call, hook, outcome.error)
        if inspect.isawaitable(outcome):  # a plain function that returned a coroutine
            return self.settle(call, attempt(self._invoker.wait, outcome, call.timeout), expected, hook)
        wrong = WrongType(f"returned {wrong_result(outcome)}, but {hook} must return {expected.__name__}")
        if self._meter is not None:  # not raised: the meter's wrapper took the call for a success
            self._meter.failed(call.kind.label, call.name)
        return self.failure(call, hook, wrong)

    def failure(self, call: Call, hook: str, error: BaseException, attempts: int = 1) -> PluginFailure:
        """The failure of ``call``'s ``hook`` with ``error``, after ``attempts`` tries."""
        problem, _ = _what(error)
        message = self.message(call, error, attempts)
        if self._meter is not None:
            self._meter.described(call.kind.label, call.name, message)
        return PluginFailure(call.name, hook, problem, message, error, attempts)

    def dead_letter(self, target: Any, error: BaseException, attempts: int) -> str:
        """How a delivery given up after ``attempts`` tries is written, counted as the handler's failure
        (``target`` is a :class:`Call`: delivery knows it as a ``Target``). Holds no host: delivery
        workers keep it."""
        assert isinstance(target, Call)
        return self.failure(target, "handle_event", error, attempts).message

    def returned(self, call: Call, value: Any) -> None:
        """Handler ``call`` returned ``value`` (not None) from ``handle_event``: warn, once per handler
        for this host, on the ``loopai.delivery`` logger. The value is ignored and the delivery
        counts as made: a handler that returns ``False`` for a failed delivery must raise instead.
        Dispatch tells this of every handler call, inline or by delivery workers, sync or async."""
        with self._lock:
            if call.name in self._returned:
                return
            self._returned.add(call.name)
        log.warning(
            "%s %r returned %s from %s: the delivery counts as made; raise an exception to have it retried",
            call.kind.title,
            call.name,
            what_returned(value),
            call.kind.hook,
        )

    def message(self, call: Call, error: BaseException, attempts: int = 1) -> str:
        """How a failure is described: ``validator 'x' raised ValueError: ... (at /p/plugin.py:28)
        (after 2 attempts)``; where it was raised is said for an exception, in this process or in
        the plugin's worker process (``(at /p/plugin.py:28, in its worker process)``)."""
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return f"{call.kind.label} {call.name!r} {_what(error)[1]}{_raised_at(call, error)}{tries}"


def _raised_at(call: Call, error: BaseException) -> str:
    """`` (at /path/plugin.py:28)``: the last line of the plugin's own module that the exception
    passed through (else where it was raised), read from the traceback its worker sent back for
    an isolated plugin; nothing for a failure of the host's own making."""
    if isinstance(error, RaisedInWorker):
        where = where_written(error.remote_traceback, own_file(call.entry.plugin))
        return f" (at {where[0]}:{where[1]}, in its worker process)" if where else " (in its worker process)"
    if isinstance(error, WrongType):
        return _hook_at(call)
    if isinstance(error, (HookTimeout, WorkerLost)) or _said_by_loopai(error):
        return ""
    return raised_at(error, own_file(call.entry.plugin))


def _said_by_loopai(error: BaseException) -> bool:
    """Whether ``error`` is a :class:`LoopaiError` raised on purpose in loopai's own code, its
    built-in plugins' included (``WebhookDeliveryError`` for a receiver's answer): its message says
    all, and where in loopai it was raised tells a user nothing. A plugin author's exception, and
    anything else loopai raises (a bug), keep their place."""
    if not isinstance(error, LoopaiError):
        return False
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    module = str(frames[-1].f_globals.get("__name__", "")) if frames else ""
    return module.split(".", 1)[0] in ("loopai", "loopai_builtin")


def _hook_at(call: Call) -> str:
    """`` (its validate: /path/plugin.py:40)``: where the plugin's hook that returned the wrong thing
    is written, when that is in the plugin's own module; else nothing."""
    hook = inspect.unwrap(getattr(call.entry.call, "__func__", call.entry.call))
    code = getattr(hook, "__code__", None)
    own = own_file(call.entry.plugin)
    if code is None or own is None or os.path.realpath(code.co_filename) != os.path.realpath(own):
        return ""
    return f" (its {call.kind.hook}: {code.co_filename}:{code.co_firstlineno})"


def _what(error: BaseException) -> tuple[FailureKind, str]:
    if isinstance(error, HookTimeout):
        return "timeout", str(error)
    if isinstance(error, WrongType):
        return "wrong-type", str(error)
    if isinstance(error, WorkerLost):
        return error.problem, str(error)
    return "exception", f"raised {describe(error)}"
