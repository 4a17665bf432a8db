"""Plugins' ``startup`` and ``shutdown`` hooks: once each, by priority, isolated, from sync or async code.

A plugin whose ``startup`` fails is disabled (every kind it is registered under) and named in
the host's problems; a failing ``shutdown`` is named and the others still run. What was started
is what is shut down, in reverse order: plugins enabled when the host started, and those enabled
or registered later (started on the host's next call), not those whose startup failed.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from loopai._isolation import Raised, aguarded, attempt, describe
from loopai.host._invoke import Invoker, Tracer
from loopai.registry import PluginRegistry, RegisteredPlugin

__all__ = ["Lifecycle"]


class Lifecycle:
    """Starts and stops the plugins of ``registry`` for one host; ``report`` takes each problem."""

    def __init__(
        self,
        registry: PluginRegistry,
        invoker: Invoker,
        tracer: Tracer | None,
        default_timeout: float | None,
        report: Callable[[str], None],
    ) -> None:
        self.registry = registry
        self._invoker = invoker
        self._tracer = tracer
        self._default_timeout = default_timeout
        self._report = report
        self._lock = threading.Lock()
        self.started = False
        self.closed = False
        self._running: list[RegisteredPlugin] = []

    # -- starting ------------------------------------------------------------------------

    def begin(self) -> bool:
        """Claim the start (False when it was claimed already)."""
        with self._lock:
            if self.started:
                return False
            self.started = True
            self._running = [e for e in self.registry if e.plugin.enabled]
        return True

    def start(self, host: Any) -> None:
        """Run every enabled plugin's ``startup`` (after :meth:`begin`)."""
        failed = [entry for entry in self._hooked("startup") if self._failed("startup", entry, host)]
        self._disable(failed)

    async def astart(self, host: Any) -> None:
        """:meth:`start` from async code: async hooks are awaited on the caller's loop."""
        failed = [entry for entry in self._hooked("startup") if await self._afailed("startup", entry, host)]
        self._disable(failed)

    def start_late(self, host: Any) -> None:
        """Start plugins enabled or registered since the start (they are shut down too)."""
        with self._lock:
            if not self.started or self.closed:
                return
            running = {id(e) for e in self._running} | {id(e.startup) for e in self._running}
            late = [e for e in self.registry if e.plugin.enabled and id(e) not in running]
            self._running.extend(late)
        started: set[int] = set()
        failed = []
        for entry in late:
            if entry.startup is None or id(entry.startup) in started or id(entry.startup) in running:
                continue
            started.add(id(entry.startup))
            if self._failed("startup", entry, host):
                failed.append(entry)
        self._disable(failed)

    def _disable(self, failed: list[RegisteredPlugin]) -> None:
        if not failed:
            return
        # A module implementing several kinds has one entry per kind: disable them all.
        hooks = {id(entry.startup) for entry in failed}
        for entry in self.registry:
            if id(entry.startup) in hooks:
                entry.plugin.enabled = False
        with self._lock:
            self._running = [e for e in self._running if id(e.startup) not in hooks]

    # -- stopping ------------------------------------------------------------------------

    def begin_close(self) -> list[RegisteredPlugin] | None:
        """Claim the close: the entries to shut down, in order; None when closed already."""
        with self._lock:
            if self.closed:
                return None
            self.closed = True
            running = self._running if self.started else []
        return list(reversed(self._hooked("shutdown", running))) if running else []

    def stop(self, host: Any, entries: Iterable[RegisteredPlugin]) -> None:
        """Run the ``shutdown`` hooks of ``entries`` (from :meth:`begin_close`)."""
        for entry in entries:
            self._failed("shutdown", entry, host)

    async def astop(self, host: Any, entries: Iterable[RegisteredPlugin]) -> None:
        """:meth:`stop` from async code."""
        for entry in entries:
            await self._afailed("shutdown", entry, host)

    # -- one hook call ---------------------------------------------------------------------

    def _hooked(self, hook: str, among: Iterable[RegisteredPlugin] | None = None) -> list[RegisteredPlugin]:
        """Entries with ``hook``, by priority, once per hook function (a module may be of several
        kinds); the enabled ones in the registry, or all of ``among``."""
        seen: set[int] = set()
        chosen = []
        everything = sorted(self.registry if among is None else among, key=lambda e: (-e.plugin.priority, e.name))
        for entry in everything:
            function = getattr(entry, hook)
            if function is None or id(function) in seen or (among is None and not entry.plugin.enabled):
                continue
            seen.add(id(function))
            chosen.append(entry)
        return chosen

    def _failed(self, hook: str, entry: RegisteredPlugin, host: Any) -> bool:
        """Call ``entry``'s ``hook``; True (and reported) when it failed."""
        function = getattr(entry, hook)
        timeout = entry.plugin.timeout or self._default_timeout
        started = time.perf_counter()
        outcome = attempt(self._invoker.call_sync, function, (host,), timeout)
        self._trace(hook, entry, started, outcome)
        return self._said(hook, entry, outcome)

    async def _afailed(self, hook: str, entry: RegisteredPlugin, host: Any) -> bool:
        function = getattr(entry, hook)
        timeout = entry.plugin.timeout or self._default_timeout
        started = time.perf_counter()
        call = aguarded(self._invoker.call_async)
        outcome = await call(function, (host,), timeout, inspect.iscoroutinefunction(function))
        self._trace(hook, entry, started, outcome)
        return self._said(hook, entry, outcome)

    def _trace(self, hook: str, entry: RegisteredPlugin, started: float, outcome: Any) -> None:
        if self._tracer is None:
            return
        if isinstance(outcome, Raised):
            error = outcome.error
            self._tracer.line(hook, entry.name, started, f"raised {type(error).__name__}: {error}")
        else:
            self._tracer.line(hook, entry.name, started, f"-> {type(outcome).__name__}")

    def _said(self, hook: str, entry: RegisteredPlugin, outcome: Any) -> bool:
        if not isinstance(outcome, Raised):
            return False
        if hook == "startup":
            self._report(f"plugin {entry.name!r} failed to start and was disabled: {describe(outcome.error)}")
        else:
            self._report(f"plugin {entry.name!r} failed to shut down: {describe(outcome.error)}")
        return True
