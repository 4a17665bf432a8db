"""A small pool of worker processes per isolated plugin: calls go to an idle worker, lost workers are replaced.

Each worker runs the plugin's ``startup`` when it starts and its ``shutdown`` when the pool
stops. A call that finds every worker busy waits for one. A worker lost in a call (crashed,
out of memory or CPU time, killed at the timeout) fails that call with a named failure and is
replaced at once; after :data:`TRIP_AFTER` losses in a row the pool gives up, and the host
disables the plugin (until the next reload).

A call from async code runs in a thread, off the caller's loop. When the awaiting task is
cancelled (``asyncio.wait_for``, ``task.cancel()``, Ctrl-C of ``asyncio.run``), the worker doing
the call is killed at once and replaced, as after an interrupted sync call: the thread returns
at once (its result is dropped), and the next call does not wait for the abandoned one. The
plugin is not at fault: this is not a lost worker, and is not counted towards :data:`TRIP_AFTER`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import pickle
import queue
import sys
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any, Final

from pydantic import BaseModel

from loopai._errors import PluginError
from loopai._isolation import describe, own_file
from loopai._kinds import Kind, kind_of
from loopai._plugin import Plugin
from loopai.host._failures import RaisedInWorker, ReturnedInWorker, WorkerLost, WrongType, raised_in_worker
from loopai.host._process._codec import CODES, EXCEPTION, RESULT, RESULTS, WRONG, Encoder
from loopai.host._process._handle import Handle, Rebuild, Recipe
from loopai.registry import RegisteredPlugin

__all__ = ["TRIP_AFTER", "Abandoned", "Ticket", "WorkerPool", "recipe_for"]

TRIP_AFTER: Final = 5
"""Workers lost in a row after which the plugin is disabled."""


class _Closed:
    """What a waiting caller finds in a pool that is closed or gave up: the reason, passed on to the next."""

    def __init__(self, reason: WorkerLost) -> None:
        self.reason = reason


class Abandoned(Exception):
    """What the thread of a call its caller abandoned ends in (nobody sees it: the result is dropped)."""


class Ticket:
    """One call, which its caller may abandon from another thread: the worker doing it is then killed.

    The pool notes the worker when the call starts on it and forgets it when the call is over,
    under a lock, so that :meth:`abandon` kills that worker only while it does this call (never
    one that went back to the pool and does another).
    """

    __slots__ = ("_abandoned", "_handle", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handle: Handle | None = None
        self._abandoned = False

    def abandon(self) -> None:
        """Kill the worker doing the call, if it started; a call that did not will not start."""
        with self._lock:
            self._abandoned = True
            if self._handle is not None:
                self._handle.abort()

    def begin(self, handle: Handle) -> bool:
        """``handle`` takes the call; False when the call was abandoned meanwhile (it must not start)."""
        with self._lock:
            self._handle = None if self._abandoned else handle
            return not self._abandoned

    def end(self) -> bool:
        """The call is over; whether it was abandoned (its worker was, or is being, killed)."""
        with self._lock:
            self._handle = None
            return self._abandoned


def recipe_for(entry: RegisteredPlugin) -> Recipe:
    """How ``entry``'s plugin is rebuilt in a worker; raises :class:`loopai.PluginError` when it cannot be.

    A module of hook functions is imported by name. Anything else is pickled; a plugin that
    cannot be (it holds a lock or a client) is built again from its class and settings, as
    discovery builds installed plugins (``type(plugin)(settings)``).
    """
    plugin = entry.plugin
    target: Any = getattr(plugin, "wraps", plugin)  # a module or object of @hookimpl functions: itself
    kind = kind_of(entry.kind)
    home = own_file(plugin)
    if isinstance(target, types.ModuleType):
        return Recipe(
            entry.name, kind.label, target.__name__, b"", plugin.memory_limit_mb, plugin.cpu_time_limit_s, home
        )
    if type(target).__module__ == "__main__" or "<locals>" in type(target).__qualname__:
        raise PluginError(
            entry.name,
            f"{kind.title} {entry.name!r} cannot run isolated: its class {type(target).__qualname__} is defined "
            f"{'in __main__' if type(target).__module__ == '__main__' else 'inside a function'}, which its worker "
            "process cannot import; move the class to the top level of a module",
        )
    try:
        blob = pickle.dumps(target, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - any pickling problem: build it again from its class instead
        unbuildable = _unbuildable(target)
        if unbuildable is not None:
            raise PluginError(
                entry.name,
                f"{kind.title} {entry.name!r} cannot run isolated: pickling it for its worker process failed "
                f"({describe(exc)}), and {unbuildable}; open clients, locks and files in startup(), not in "
                '__init__, or set isolation = "inline"',
            ) from None
        blob = pickle.dumps(Rebuild(type(target), _settings_of(target)), protocol=pickle.HIGHEST_PROTOCOL)
    return Recipe(entry.name, kind.label, None, blob, plugin.memory_limit_mb, plugin.cpu_time_limit_s, home)


def _unbuildable(target: Any) -> str | None:
    """Why ``target`` cannot be built again from its class and settings, or None when it can."""
    if not isinstance(target, Plugin):
        return "it is not a loopai.Plugin that could be built again from its class"
    try:
        inspect.signature(type(target)).bind(None)
    except (TypeError, ValueError):
        return f"{type(target).__qualname__}(settings) does not build it (its constructor takes other arguments)"
    return None


def _settings_of(plugin: Plugin) -> Any:
    settings = plugin.config
    return settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})


class WorkerPool:
    """The worker processes of one isolated plugin (one registry entry).

    :meth:`start` and :meth:`stop` stand in for the plugin's ``startup`` and ``shutdown``
    hooks (which run in each worker); :meth:`caller` gives the function dispatch calls.
    ``on_trip(pool, reason)`` is told once when the pool gives up on the plugin.
    """

    def __init__(
        self,
        entry: RegisteredPlugin,
        timeout: float | None,
        on_trip: Callable[[WorkerPool, str], None],
    ) -> None:
        if sys.platform == "win32":
            raise PluginError(entry.name, f'plugin {entry.name!r}: isolation = "process" needs a POSIX system')
        self.entry = entry
        self.name = entry.name
        self.kind = kind_of(entry.kind)
        self.timeout = timeout
        self.recipe = recipe_for(entry)
        self.size = entry.plugin.workers
        self.tripped: str | None = None
        self._on_trip = on_trip
        self._idle: queue.SimpleQueue[Handle | _Closed] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._losses = 0

    # -- lifecycle: the plugin's startup and shutdown hooks, run in each worker ---------------

    def start(self, host: Any = None) -> None:
        """Start every worker and wait until each ran the plugin's ``startup``; raises the first failure
        (the workers that did start are stopped)."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            handles = [Handle(self.recipe, index) for index in range(self.size)]
        failure: BaseException | None = None
        for handle in handles:
            try:
                handle.wait_ready(self.timeout)
            except (WorkerLost, RaisedInWorker) as exc:
                failure = failure or exc
        if failure is not None:
            for handle in handles:
                if handle.ready:
                    self._quietly_stop(handle)
                else:
                    handle.kill()
            self._take_all(WorkerLost("crashed", f"did not start: {describe(failure)}"))
            raise failure
        for handle in handles:
            self._idle.put(handle)

    def stop(self, host: Any = None) -> None:
        """Run the plugin's ``shutdown`` in every worker and let them end; raises the first failure."""
        handles = self._take_all()
        failure: BaseException | None = None
        for handle in handles:
            try:
                handle.stop(self.timeout)
            except (WorkerLost, RaisedInWorker) as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Stop the workers if that was not done (``shutdown`` runs; failures are ignored)."""
        for handle in self._take_all():
            self._quietly_stop(handle)

    def _take_all(self, reason: WorkerLost | None = None) -> list[Handle]:
        """Close the pool: the idle workers, for the caller to end; later callers get ``reason``."""
        with self._lock:
            self._closed = True
        handles = []
        while True:
            try:
                item = self._idle.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Handle):
                handles.append(item)
        self._idle.put(_Closed(reason or WorkerLost("crashed", "its worker processes were stopped")))
        return handles

    def _quietly_stop(self, handle: Handle) -> None:
        with contextlib.suppress(WorkerLost, RaisedInWorker):  # stopping anyway: the worker is gone
            handle.stop(self.timeout)

    # -- calls -------------------------------------------------------------------------------

    def caller(self, kind: Kind, timeout: float | None) -> Callable[[Any, Any], Any]:
        """The function dispatch calls for ``kind``'s hook: it takes the hook's two arguments and
        returns the plugin's result (for a handler, None or a :class:`ReturnedInWorker` naming what it
        returned), or raises what the call ended in."""
        call = self._caller(kind, timeout)
        return lambda first, second: call(first, second, None)

    def acaller(self, kind: Kind, timeout: float | None) -> Callable[[Any, Any], Awaitable[Any]]:
        """:meth:`caller` for async code: the call runs in a thread, and when the awaiting task is
        cancelled its worker is killed (and replaced) at once; the cancellation goes on as usual."""
        call = self._caller(kind, timeout)

        async def acall(first: Any, second: Any) -> Any:
            ticket = Ticket()
            try:
                return await asyncio.to_thread(call, first, second, ticket)
            except asyncio.CancelledError:
                ticket.abandon()  # the thread's roundtrip returns: the worker it waits on is dead
                raise

        return acall

    def _caller(self, kind: Kind, timeout: float | None) -> Callable[[Any, Any, Ticket | None], Any]:
        code = CODES[kind.label]
        expected = RESULTS[code[0]]
        roundtrip = self.roundtrip
        hook = kind.hook
        encode = Encoder(code)

        def call(first: Any, second: Any, ticket: Ticket | None) -> Any:
            reply = roundtrip(encode(first, second), timeout, ticket)
            tag = reply[0]
            if tag == RESULT:
                return None if expected is None else expected.model_validate_json(reply[1:])
            if tag == EXCEPTION:
                body = json.loads(reply[1:])
                raise raised_in_worker(body["type"], body["message"], body["traceback"])
            if tag == WRONG:
                if expected is None:  # a handler that returned something: delivered all the same
                    return ReturnedInWorker(reply[1:].decode())
                raise WrongType(f"returned {reply[1:].decode()}, but {hook} must return {expected.__name__}")
            raise WorkerLost("crashed", f"its worker process answered {reply[:1]!r}, which is not a reply")

        return call

    def roundtrip(self, payload: bytes, timeout: float | None, ticket: Ticket | None = None) -> bytes:
        """Send ``payload`` to an idle worker (waiting for one) and return its reply; a call whose
        ``ticket`` is abandoned raises :class:`Abandoned` (its worker killed and replaced)."""
        if not self._started:
            self._start_on_first_call()
        item = self._idle.get()
        if isinstance(item, _Closed):
            self._idle.put(item)  # for the next caller waiting
            raise item.reason
        handle = item
        if ticket is None:
            ticket = Ticket()  # a sync call: never abandoned
        if not ticket.begin(handle):  # abandoned while it waited for a worker
            self._give_back(handle)
            raise Abandoned
        try:
            if not handle.ready:
                handle.wait_ready(self.timeout)  # a replacement, started after a lost worker
            reply = handle.roundtrip(payload, timeout)
        except BaseException as exc:
            abandoned = ticket.end()
            self._replace(handle)  # lost, or interrupted mid-call: the worker's state is unknown
            if abandoned:  # killed for a caller that left: not the plugin's failure, not counted
                raise Abandoned from None
            if isinstance(exc, RaisedInWorker):  # a replacement whose startup raised
                exc = WorkerLost("crashed", f"its new worker process failed to start: {describe(exc)}")
            if isinstance(exc, WorkerLost):
                raise self._count(exc) from None
            raise
        if ticket.end():  # abandoned as the reply came: its worker was killed all the same
            self._replace(handle)
            raise Abandoned
        self._losses = 0
        self._give_back(handle)
        return reply

    def _give_back(self, handle: Handle) -> None:
        """``handle`` is idle again: back in the pool, or stopped when the pool closed meanwhile
        (behind its closed mark it would be left running)."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._idle.put(handle)
        if closed:
            self._quietly_stop(handle)

    def _start_on_first_call(self) -> None:
        # A host that was not started: the workers start with the first call, and a startup
        # that fails disables the plugin, as it would have at the host's start.
        try:
            self.start()
        except (WorkerLost, RaisedInWorker) as exc:
            with self._lock:
                first = self.tripped is None
                self.tripped = f"{self.kind.title} {self.name!r} failed to start and was disabled: {describe(exc)}"
            if first:
                self._on_trip(self, self.tripped)
            raise

    def _replace(self, handle: Handle) -> None:
        handle.kill()
        with self._lock:  # not after _take_all drained the pool: the new worker would be left running
            if not self._closed and self.tripped is None:
                self._idle.put(Handle(self.recipe, handle.index))

    def _count(self, lost: WorkerLost) -> WorkerLost:
        with self._lock:
            self._losses += 1
            trip = self._losses >= TRIP_AFTER and self.tripped is None
            why = (
                f"after {TRIP_AFTER} calls in a row lost its worker process (the last one: {lost}); "
                "fix the plugin, then reload or restart"
            )
            if trip:
                self.tripped = f"{self.kind.title} {self.name!r} was disabled {why}"
        if trip:
            assert self.tripped is not None
            for handle in self._take_all(WorkerLost("disabled", f"is disabled {why}")):  # what later calls fail with
                handle.kill()
            self._on_trip(self, self.tripped)
        return lost
