"""Closing a host: later calls refused, the calls in flight waited for, then the shutdown hooks.

:func:`close_host` (and :func:`aclose_host`) mark the current plugin set ``closing`` (and ``retired``, which
every call already looks at: the hot path pays nothing more), so that a call made from then on is
refused with :class:`loopai.HostStateError`. They wait up to :data:`CALLS_WAIT` seconds for the calls
already running on the set, as a reload waits for the set it replaced, and name on the ``loopai``
logger the plugin calls still running past it; then the delivery workers drain, the plugins'
``shutdown`` hooks run and what the host opened is closed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from types import FrameType
from typing import Any, Final

from loopai._crash import plugin_title, running_plugin
from loopai._errors import HostStateError
from loopai._log import logger
from loopai.host._set import PluginSet

__all__ = [
    "CALLS_WAIT",
    "aclose_host",
    "close_host",
    "closed_error",
    "refuse_if_closed",
    "release",
    "stop_waiting",
]

log = logger("loopai")

CALLS_WAIT: Final = 30.0
"""Seconds :meth:`loopai.Host.close` waits for the calls in flight before the shutdown hooks run."""


def closed_error() -> HostStateError:
    """The error of a call made on a closed host (or while it closes)."""
    return HostStateError(
        "the host is closed: build a new one (loopai.Host(...), then start it or use it in `with`); "
        "a closed host takes no more calls, and close() is best left until its calls are done"
    )


def refuse_if_closed(host: Any) -> None:
    """Raise :class:`HostStateError` when ``host`` is closed (or closing)."""
    if host._set.closing:
        raise closed_error()


def close_host(host: Any, drain_timeout: float | None, calls_wait: float = CALLS_WAIT) -> None:
    """Close ``host`` (see :meth:`loopai.Host.close`): the caller stopped its triggers."""
    with host._reload_lock:  # not in the middle of a reload
        current: PluginSet = host._set
        if current.closing:
            return
        _refuse_calls(current)
        waits = calls_wait > 0 and not _inside_a_call(host) and not _on_a_running_loop(current)
        if waits and not current.drain(calls_wait):  # 0: stop now
            _say_still_running(host, current, calls_wait)
        entries = current.lifecycle.begin_close()
        if entries is None:
            return
        try:
            host._delivery.stop(drain_timeout)  # before shutdown: deliveries still need the handlers' clients
            current.lifecycle.stop(host, entries)
        finally:
            release(host, current)


async def aclose_host(host: Any, drain_timeout: float | None, calls_wait: float = CALLS_WAIT) -> None:
    """:func:`close_host` from async code: the waits do not block the loop, async hooks run on it."""
    await asyncio.to_thread(host._reload_lock.acquire)
    try:
        current: PluginSet = host._set
        if current.closing:
            return
        _refuse_calls(current)
        if calls_wait > 0 and not await current.adrain(calls_wait):  # calls on this loop: not blocked
            _say_still_running(host, current, calls_wait)
        entries = current.lifecycle.begin_close()
        if entries is None:
            return
        try:
            # Async handlers deliver on this loop meanwhile.
            await asyncio.to_thread(host._delivery.stop, drain_timeout)
            await current.lifecycle.astop(host, entries)
        finally:
            await asyncio.to_thread(release, host, current)
    finally:
        host._reload_lock.release()


def stop_waiting(host: Any) -> None:
    """Stop waiting for the databases the host opened (see ``wait_for_database``)."""
    for opened in (host.state if host._owns_state else None, host._delivery.owned_outbox()):
        stopper = getattr(opened, "stop_waiting", None)  # a database's: the embedded ones never wait
        if callable(stopper):
            stopper()


def release(host: Any, current: PluginSet) -> None:
    """Close what the host opened: the outbox's delivery, worker pools, the private loop, the state."""
    host._delivery.close()
    current.pools.close()
    host._invoker.close()
    if host._owns_state:
        host.state.close()  # writes what it buffered; may raise when its database stayed away


def _refuse_calls(current: PluginSet) -> None:
    # ``closing`` first: a call that finds ``retired`` set looks at it to know it is refused.
    current.closing = True
    current.retired = True


def _stack(frame: FrameType | None) -> list[FrameType]:
    """``frame`` and its callers, outermost first."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return frames


def _host_call(host: Any, frames: list[FrameType]) -> bool:
    return any(frame.f_locals.get("self") is host for frame in frames)


def _on_a_running_loop(current: PluginSet) -> bool:
    """Whether this thread runs an event loop while calls are in flight (``host.close()`` from a
    coroutine, a sync ``with host:`` in one): the calls awaiting on that loop cannot go on while
    close waits, so they are not waited for, and the caller is told to ``await host.aclose()``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    if not current.active:
        return False
    log.warning(
        "host.close() was called from a coroutine with %d call(s) in flight: they run on its event loop, "
        "which close() would block, so they are not waited for; from async code, await host.aclose() "
        "(or use `async with host:`)",
        len(current.active),
    )
    return True


def _inside_a_call(host: Any) -> bool:
    """Whether this thread is inside one of ``host``'s plugin calls (close from a plugin's hook):
    then waiting for the calls in flight would wait for itself."""
    in_host = False
    for frame in _stack(sys._getframe(1)):
        if frame.f_locals.get("self") is host:
            in_host = True
        elif in_host and running_plugin((frame,)) is not None:
            break  # a plugin's frame under one of this host's calls
    else:
        return False
    log.warning(
        "host.close() was called from inside a plugin's call: the calls in flight are not waited for; "
        "close the host from the application, once its calls are done"
    )
    return True


def _say_still_running(host: Any, current: PluginSet, waited: float) -> None:
    """Name, on the ``loopai`` logger, the plugin calls still running on ``current`` after ``waited`` s."""
    named = []
    mine = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        frames = _stack(frame)
        if ident == mine or not _host_call(host, frames):
            continue
        plugin = running_plugin(frames)
        if plugin is not None:
            named.append(f"{plugin_title(plugin)} {plugin.name!r}")
    left = len(current.active)
    calls = f"{left} call(s)" if left else "a call"
    which = f" ({', '.join(sorted(set(named)))})" if named else " (async: on an event loop)"
    log.warning(
        "closing the host: %s still running after %g s%s; the plugins' shutdown hooks run now, under it: "
        "let the host's calls end before closing it",
        calls,
        waited,
        which,
    )
