"""Plugins' ``startup`` and ``shutdown`` hooks: once each, in order, isolated, from sync or async code.

Startup runs each plugin after those it requires (``requires_plugins``), else by priority;
shutdown in reverse. A plugin whose ``startup`` fails is disabled (every kind it is registered
under) and named in the host's problems; a failing ``shutdown`` is named and the others still
run. What was started is what is shut down: plugins enabled when the host started, and those
enabled or registered later (started on the host's next call), not those whose startup failed.
An isolated plugin's hooks are its worker pool's start and stop (the hooks run in each worker).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from loopai._errors import LoopaiError
from loopai._isolation import Raised, aguarded, attempt, describe, own_file, raised_at
from loopai._kinds import kind_of
from loopai.host._failures import RaisedInWorker
from loopai.host._invoke import Invoker, Tracer
from loopai.registry import PluginRegistry, RegisteredPlugin, sort_by_requirements

__all__ = ["Lifecycle"]


def _same(entry: RegisteredPlugin) -> RegisteredPlugin:
    return entry


def _owner(entry: RegisteredPlugin) -> int:
    """Who a hook belongs to: entries of one plugin (a module of several kinds) share it."""
    return id(getattr(entry.plugin, "wraps", entry.plugin))


def _hook_key(function: Callable[..., Any]) -> int:
    # A bound method's object (a plugin, a worker pool), else the function: one call per key.
    return id(getattr(function, "__self__", function))


class Lifecycle:
    """Starts and stops the plugins of ``registry`` for one plugin set; ``report`` takes each problem.

    ``hooks(entry)`` is the entry as the lifecycle calls it (an isolated plugin's worker pool
    stands in for its hooks, and enforces the timeout itself).
    """

    def __init__(
        self,
        registry: PluginRegistry,
        invoker: Invoker,
        tracer: Tracer | None,
        default_timeout: float | None,
        report: Callable[[str], None],
        hooks: Callable[[RegisteredPlugin], RegisteredPlugin] = _same,
    ) -> None:
        self.registry = registry
        self._invoker = invoker
        self._tracer = tracer
        self._default_timeout = default_timeout
        self._report = report
        self._hooks = hooks
        self._lock = threading.Lock()
        self.started = False
        self.closed = False
        self._running: list[RegisteredPlugin] = []

    def report_to(self, report: Callable[[str], None]) -> None:
        """Send problems to ``report`` from now on (a reload collects them before the swap)."""
        self._report = report

    # -- starting ------------------------------------------------------------------------

    def begin(self) -> bool:
        """Claim the start (False when it was claimed already)."""
        with self._lock:
            if self.started:
                return False
            self.started = True
            self._running = [e for e in self.registry if e.plugin.enabled]
        return True

    def start(self, host: Any, running: Collection[int] = ()) -> None:
        """Run every enabled plugin's ``startup`` (after :meth:`begin`), except for plugins in
        ``running`` (owners already started by the set this one replaces: see :meth:`owners`)."""
        entries = [e for e in self._hooked("startup") if _owner(e) not in running or self._isolated(e)]
        self._disable([entry for entry in entries if self._failed("startup", entry, host)])

    async def astart(self, host: Any, running: Collection[int] = ()) -> None:
        """:meth:`start` from async code: async hooks are awaited on the caller's loop."""
        entries = [e for e in self._hooked("startup") if _owner(e) not in running or self._isolated(e)]
        self._disable([entry for entry in entries if await self._afailed("startup", entry, host)])

    def owners(self) -> set[int]:
        """The running plugins whose hooks run in the host's process (not isolated ones), as
        :meth:`start` and :meth:`begin_close` take them: another set holding one of them must
        neither start it again nor shut it down."""
        with self._lock:
            return {_owner(e) for e in self._running if not self._isolated(e)}

    def _isolated(self, entry: RegisteredPlugin) -> bool:
        return self._hooks(entry) is not entry

    def start_late(self, host: Any) -> None:
        """Start plugins enabled or registered since the start (they are shut down too)."""
        self._disable([entry for entry, hooked in self._late() if self._failed("startup", hooked, host)])

    async def astart_late(self, host: Any) -> None:
        """:meth:`start_late` from async code: async hooks are awaited on the caller's loop (as
        :meth:`astart` does), sync ones are called as there."""
        self._disable([entry for entry, hooked in self._late() if await self._afailed("startup", hooked, host)])

    def _late(self) -> list[tuple[RegisteredPlugin, RegisteredPlugin]]:
        """Claim the plugins enabled or registered since the start (each once): the entries to
        start, each with its hooks (see :attr:`_hooks`); none before the start or after the close."""
        with self._lock:
            if not self.started or self.closed:
                return []
            known = {id(e) for e in self._running}
            owners = {_owner(e) for e in self._running}
            late = [e for e in self.registry if e.plugin.enabled and id(e) not in known]
            self._running.extend(late)
        started: set[int] = set()
        chosen = []
        for entry in late:
            hooked = self._hooks(entry)
            if hooked.startup is None or _hook_key(hooked.startup) in started:
                continue
            if _owner(entry) in owners and hooked is entry:
                continue  # another kind of a plugin already running: started with it
            started.add(_hook_key(hooked.startup))
            chosen.append((entry, hooked))
        return chosen

    def _disable(self, failed: list[RegisteredPlugin]) -> None:
        if not failed:
            return
        # A module implementing several kinds has one entry per kind: disable them all.
        owners = {_owner(entry) for entry in failed}
        for entry in self.registry:
            if _owner(entry) in owners:
                entry.plugin.enabled = False
        with self._lock:
            self._running = [e for e in self._running if _owner(e) not in owners]

    # -- stopping ------------------------------------------------------------------------

    def begin_close(self, keep: Collection[int] = ()) -> list[RegisteredPlugin] | None:
        """Claim the close: the entries to shut down, in order; None when closed already. Plugins
        in ``keep`` (owners the next set took over, see :meth:`owners`) are left running."""
        with self._lock:
            if self.closed:
                return None
            self.closed = True
            running = self._running if self.started else []
        running = [e for e in running if _owner(e) not in keep or self._isolated(e)]
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
        """Entries with ``hook`` (as :attr:`_hooks` gives them), required plugins first, else by
        priority, once per plugin (a module may be of several kinds); the enabled ones in the
        registry, or all of ``among``."""
        seen: set[int] = set()
        chosen = []
        candidates = self.registry if among is None else among
        everything = sort_by_requirements(sorted(candidates, key=lambda e: (-e.plugin.priority, e.name)))
        for entry in everything:
            if among is None and not entry.plugin.enabled:
                continue
            entry = self._hooks(entry)
            function = getattr(entry, hook)
            if function is None or _hook_key(function) in seen:
                continue
            seen.add(_hook_key(function))
            chosen.append(entry)
        return chosen

    def _timeout(self, entry: RegisteredPlugin) -> float | None:
        if entry.plugin.isolation == "process":
            return None  # its worker pool enforces it, and kills the worker past it
        return entry.plugin.timeout or self._default_timeout

    def _failed(self, hook: str, entry: RegisteredPlugin, host: Any) -> bool:
        """Call ``entry``'s ``hook``; True (and reported) when it failed."""
        function = getattr(entry, hook)
        timeout = self._timeout(entry)
        started = time.perf_counter()
        outcome = attempt(self._invoker.call_sync, function, (host,), timeout)
        self._trace(hook, entry, started, outcome)
        return self._said(hook, entry, outcome)

    async def _afailed(self, hook: str, entry: RegisteredPlugin, host: Any) -> bool:
        function = getattr(entry, hook)
        timeout = self._timeout(entry)
        started = time.perf_counter()
        call = aguarded(self._invoker.call_async)
        offload = self._isolated(entry)  # a worker pool's start and stop block: not on the caller's loop
        outcome = await call(function, (host,), timeout, inspect.iscoroutinefunction(function), offload)
        self._trace(hook, entry, started, outcome)
        return self._said(hook, entry, outcome)

    def _trace(self, hook: str, entry: RegisteredPlugin, started: float, outcome: Any) -> None:
        if self._tracer is None:
            return
        if isinstance(outcome, Raised):
            error = outcome.error
            self._tracer.raised(hook, entry.name, started, error)
        else:
            self._tracer.returned(hook, entry.name, started, outcome)

    def _said(self, hook: str, entry: RegisteredPlugin, outcome: Any) -> bool:
        if not isinstance(outcome, Raised):
            return False
        if hook == "startup":
            error = outcome.error
            # Where it was raised, in the plugin's code; not for a failure of a worker pool's making.
            ours = isinstance(error, (RaisedInWorker, LoopaiError))
            where = "" if ours else raised_at(error, own_file(entry.plugin))
            table = f"[plugins.{kind_of(entry.kind).key}.{entry.name}]"
            self._report(
                f"plugin {entry.name!r} failed to start and was disabled: {describe(error)}{where}; "
                f"make what its startup needs available (the error says what), or leave it out: "
                f"enabled = false under {table}"
            )
        else:
            self._report(f"plugin {entry.name!r} failed to shut down: {describe(outcome.error)}")
        return True
