"""The plumbing under a host's calls: the current plugin set, its plan, and what every call shares.

Each call runs on one plugin set from start to end (a reload meanwhile does not mix sets): it
registers itself on the current set first (:meth:`Dispatch._enter`), and the set a reload
retires waits for it. The calls themselves are in :mod:`._calls` (validate, sample, one record)
and :mod:`._event_calls` (emit and delivery).
"""

from __future__ import annotations

from loopai._log import logger
from loopai._models import WebhookEventType
from loopai.config import LoopaiConfig
from loopai.discovery import DiscoveredPlugin
from loopai.host._build import configured_failures
from loopai.host._closing import closed_error
from loopai.host._delivering import HostDelivery
from loopai.host._emit import Emitter
from loopai.host._invoke import Invoker, Tracer
from loopai.host._meter import Meter, PluginUsage
from loopai.host._monitor import TaskMonitor
from loopai.host._outcome import Outcomes
from loopai.host._plan import Plan, build_plan, task_scopes
from loopai.host._sample import Sampling
from loopai.host._set import PluginSet
from loopai.registry import Ordering, PluginRegistry
from loopai.state import StateStore

__all__ = ["Dispatch"]

log = logger("loopai")


class Dispatch:
    """The current plugin set and its plan, as every call of :class:`loopai.Host` finds them."""

    problems: list[str]
    dry_run: bool
    stop_on_failure: bool
    max_retries: int
    default_timeout: float | None
    state: StateStore
    tasks: TaskMonitor
    _invoker: Invoker
    _tracer: Tracer | None
    _meter: Meter | None
    _outcomes: Outcomes
    _sampling: Sampling
    _emitter: Emitter
    _delivery: HostDelivery
    _set: PluginSet

    @property
    def registry(self) -> PluginRegistry:
        """The registry of the plugins the host calls now (a reload replaces it)."""
        return self._set.registry

    @property
    def config(self) -> LoopaiConfig:
        """The configuration the current plugin set was built with (a reload replaces it)."""
        return self._set.config

    @property
    def discovered(self) -> list[DiscoveredPlugin]:
        """Every plugin the current set found through entry points (with ``discover=True``), its
        status, and (once loaded) its place in the call order."""
        return self._set.discovered

    def configured_failures(self) -> list[str]:
        """Why each plugin the configuration names (and does not turn off) is not loaded: one
        message each, naming the file, the plugin and, for settings, the field.

        Left out on purpose (a deny rule, ``--plugins``) is no failure; loaded but off because a
        plugin it requires is not there (``requires_plugins``) is one. ``loopai run`` refuses to start
        on these, since running without a plugin the configuration asks for would hide the mistake;
        ``loopai serve``, a long-running process, starts without them and says each (as it does
        for plugins that were only discovered).
        """
        return configured_failures(self.config, self.registry, self.discovered, self.problems)

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)

    # -- the plugin set as dispatch sees it --------------------------------------------------

    def _enter(self, *, closed_too: bool = False) -> PluginSet:
        """The current plugin set, with this call registered on it (``active.pop()`` when done).

        Raises :class:`loopai.HostStateError` once the host closes (its set is
        ``closing``), unless ``closed_too`` (a question about the plugins, which calls none)."""
        while True:
            current = self._set
            current.active.append(None)
            if not current.retired:
                return current
            if current.closing:
                if closed_too:
                    return current
                current.active.pop()
                raise closed_error()
            current.active.pop()  # a reload replaced it meanwhile: take the new one

    def _current(self) -> Plan:
        """The current set's plan (built now if stale): what dispatch calls, for tools and tests."""
        return self._plan_of(self._set)

    def _plan_of(self, current: PluginSet) -> Plan:
        plan = current.plan
        return plan if not plan.stale else self._rebuild(current)

    async def _aplan_of(self, current: PluginSet) -> Plan:
        """:meth:`_plan_of` from async code: plugins enabled or registered since the start get their
        ``startup`` first, async ones awaited on the caller's loop (not the host's private one)."""
        plan = current.plan
        if not plan.stale:
            return plan
        await current.lifecycle.astart_late(self)
        return self._rebuild(current)  # its start_late finds them started

    def _rebuild(self, current: PluginSet) -> Plan:
        current.lifecycle.start_late(self)
        plan = build_plan(
            current.registry,
            self._invoker,
            self._tracer,
            self._meter,
            self.default_timeout,
            self.max_retries,
            task_scopes(current.config),
            current.pools,
            self._outcomes.returned,
        )
        for problem in plan.problems:
            if problem not in self.problems:  # said once, not at every rebuild
                self._problem(problem)
        current.plan = plan
        return plan

    def handled_events(self) -> frozenset[WebhookEventType]:
        """The event types at least one enabled handler takes (emitting others reaches nobody)."""
        current = self._enter(closed_too=True)
        try:
            return self._plan_of(current).handled
        finally:
            current.active.pop()

    def call_order(self) -> dict[str, Ordering]:
        """Each kind's effective call order and how it came about, by kind label (``validator``...):
        ``run_before`` / ``run_after`` first, priority then name for what they leave free; the
        constraints that were ignored, and the cycles (see :class:`loopai.registry.Ordering`)."""
        current = self._enter(closed_too=True)
        try:
            return dict(self._plan_of(current).orderings)
        finally:
            current.active.pop()

    def plugin_usage(self) -> list[PluginUsage]:
        """Calls, failures and time per plugin, when the host was built with ``meter=True`` or
        ``meter=Meter(...)`` (metering wraps every call, so it is off by default); else an empty list."""
        return self._meter.usage() if self._meter is not None else []
