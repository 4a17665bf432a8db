"""Calling one plugin: sync or async, with a timeout, from sync or async code, traced or not."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any

from loopai._models import ExecutionRecord, SamplingDecision, ValidationResult, WebhookEvent

__all__ = ["HookTimeout", "Invoker", "Tracer"]


MOST_STUCK = 5
"""A plugin's calls that may run on past their timeout (threads that cannot be stopped) before
its next calls are refused, until one of them ends."""


JOIN_TIMEOUT = 5.0
"""Seconds :meth:`Invoker.close` waits for the background loop's thread (a task that will not be
cancelled may hold it: it is a daemon thread, left behind then)."""


class HookTimeout(TimeoutError):
    """A hook call ran past the plugin's timeout (the call itself may still be running)."""


async def _within(work: Awaitable[Any], timeout: float) -> Any:
    """``await work``, for at most ``timeout`` seconds: then it is cancelled and
    :class:`asyncio.TimeoutError` raised. A cancellation of the caller goes through, whenever it comes:
    not :func:`asyncio.wait_for`, which before Python 3.12 drops one that comes as the work ends
    (the caller then went on as if never cancelled)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)  # a coroutine is stopped at its next await; a thread's future only given up on
        raise asyncio.TimeoutError
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel ``task``, whose outcome nobody waits for now: what it ends in is read when it ends
    (not logged as never retrieved)."""
    task.cancel()
    task.add_done_callback(lambda ended: ended.cancelled() or ended.exception())


def _in_daemon_thread(function: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
    # A hung plugin must not keep the process alive at exit, so no ThreadPoolExecutor
    # (whose workers are joined at shutdown): one daemon thread per timed call.
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name="loopai-plugin-call", daemon=True).start()
    return future


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    # Run until Invoker.close() stops the loop, then close it: a stopped but unclosed
    # loop leaks its selector and warns (ResourceWarning) when collected.
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class Invoker:
    """Runs plugin calls that need more than a direct call: timeouts and coroutines.

    Coroutines met on the synchronous path run on a private event loop in a daemon
    thread, started on first use, so sync callers work inside or outside a running loop.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # the loop's, joined by close()
        self._lock = threading.Lock()
        self._stuck: dict[Callable[..., Any], int] = {}  # per function, its calls still running past their timeout

    def _started(self, function: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """``function(*args)`` started in a thread of its own; refused (a :class:`HookTimeout`) while
        :data:`MOST_STUCK` of its calls run past their timeout: a hung plugin would otherwise take a
        thread, and its timeout's wait, on every call."""
        with self._lock:
            stuck = self._stuck.get(function, 0)
        if stuck >= MOST_STUCK:
            raise HookTimeout(
                f"was not called: {stuck} of its calls are still running past its timeout of {timeout:g}s (it "
                'hangs: fix it, or set isolation = "process", whose worker is killed at the timeout)'
            )
        return _in_daemon_thread(function, *args)

    def _stuck_on(self, function: Callable[..., Any], future: concurrent.futures.Future[Any]) -> None:
        """A call of ``function`` ran past its timeout: counted until its thread ends."""
        with self._lock:
            self._stuck[function] = self._stuck.get(function, 0) + 1

        def ended(_: object) -> None:
            with self._lock:
                left = self._stuck.pop(function, 1) - 1
                if left:
                    self._stuck[function] = left

        future.add_done_callback(ended)

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_serve, args=(loop,), name="loopai-async-plugins", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def wait(self, awaitable: Awaitable[Any], timeout: float | None) -> Any:
        """Block until ``awaitable`` (run on the background loop) is done, or time out."""

        async def run() -> Any:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(run(), self._background_loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise HookTimeout(f"took longer than its timeout of {timeout:g}s") from None

    def call_sync(self, function: Callable[..., Any], args: tuple[Any, ...], timeout: float | None) -> Any:
        """Call ``function(*args)`` from sync code; awaitables are awaited; bounded by ``timeout``."""
        if timeout is None:
            result = function(*args)
        else:
            future = self._started(function, args, timeout)
            try:
                result = future.result(timeout)
            except concurrent.futures.TimeoutError:
                self._stuck_on(function, future)
                raise HookTimeout(f"took longer than its timeout of {timeout:g}s") from None
        if inspect.isawaitable(result):
            return self.wait(result, timeout)
        return result

    async def call_async(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
        is_async: bool,
        offload: bool = False,
    ) -> Any:
        """Call ``function(*args)`` from async code without blocking the loop on timed calls.

        ``offload`` runs a sync function in a worker thread even without a timeout (for
        handlers, which do I/O: they must not block the loop or each other). A coroutine that
        blocks the loop cannot be stopped at its timeout; when it ends past it, the call is a
        timeout all the same (as it would be from sync code, whatever the concurrency).
        """
        try:
            if is_async:
                if timeout is None:
                    return await function(*args)
                started = time.perf_counter()
                result = await _within(function(*args), timeout)
                elapsed = time.perf_counter() - started
                if elapsed > timeout:
                    raise HookTimeout(
                        f"took longer than its timeout of {timeout:g}s ({elapsed:.2f}s: it blocked its event loop, "
                        "so it could not be stopped in time; await instead of blocking)"
                    )
                return result
            if timeout is not None:
                running = self._started(function, args, timeout)
                try:
                    result = await _within(asyncio.wrap_future(running), timeout)
                except asyncio.TimeoutError:
                    self._stuck_on(function, running)
                    raise
            elif offload:
                result = await asyncio.to_thread(function, *args)
            else:
                result = function(*args)
            if inspect.isawaitable(result):
                result = await (_within(result, timeout) if timeout is not None else result)
            return result
        except HookTimeout:
            raise  # said already (a TimeoutError too: kept as it is)
        except asyncio.TimeoutError:
            raise HookTimeout(f"took longer than its timeout of {timeout:g}s") from None

    def close(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Stop the background loop, if it was started, and wait up to ``timeout`` seconds for its
        thread to end (its tasks cancelled, the loop closed): not from that thread itself."""
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: its thread is ending
                loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


class Tracer:
    """Writes one line per hook call to ``stream``: hook, plugin, duration, outcome (a verdict, a
    decision, what was raised), and what the call was about (``[execution <id>]``, ``[event <type>
    <id>]``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def line(self, hook: str, plugin: str, started: float, outcome: str) -> None:
        """Record one finished call that started at ``started`` (a ``perf_counter`` value)."""
        elapsed = (time.perf_counter() - started) * 1000
        stream = self._stream or sys.stderr
        stream.write(f"loopai trace: {hook} {plugin} {elapsed:.3f} ms {outcome}\n")
        stream.flush()

    def returned(self, hook: str, plugin: str, started: float, result: Any, args: tuple[Any, ...] = ()) -> None:
        """The line of a call that returned ``result`` (``args``: what it was called with)."""
        self.line(hook, plugin, started, f"-> {_outcome(result)}{_about(args)}")

    def raised(self, hook: str, plugin: str, started: float, error: BaseException, args: tuple[Any, ...] = ()) -> None:
        """The line of a call that raised ``error``."""
        self.line(hook, plugin, started, f"raised {type(error).__name__}: {error}{_about(args)}")

    def wrap(self, hook: str, plugin: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` with a trace line after every call (raised or returned)."""

        def traced(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                result = function(*args)
            except BaseException as exc:
                self.raised(hook, plugin, started, exc, args)
                raise
            self.returned(hook, plugin, started, result, args)
            return result

        return traced

    def awrap(self, hook: str, plugin: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """The async twin of :meth:`wrap`."""

        async def traced(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await function(*args)
            except BaseException as exc:
                self.raised(hook, plugin, started, exc, args)
                raise
            self.returned(hook, plugin, started, result, args)
            return result

        return traced


def _outcome(result: Any) -> str:
    """``valid``, ``invalid (<message>)``, ``sampled (<reason>)``, ``not sampled (<reason>)``, ``None``;
    else the type's name."""
    if isinstance(result, ValidationResult):
        return "valid" if result.is_valid else f"invalid ({_short(result.message)})"
    if isinstance(result, SamplingDecision):
        return f"{'sampled' if result.should_sample else 'not sampled'} ({_short(result.reason)})"
    return "None" if result is None else type(result).__name__


def _about(args: tuple[Any, ...]) -> str:
    """`` [execution <id>]`` or `` [event <type> <id>]`` for a call about one; else nothing."""
    subject = args[0] if args else None
    if isinstance(subject, ExecutionRecord):
        return f" [execution {subject.id}]"
    if isinstance(subject, WebhookEvent):
        return f" [event {subject.event_type.value} {subject.event_id}]"
    return ""


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
