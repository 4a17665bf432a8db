"""One generation of a host's plugins: what was loaded, how it is called, and the calls still running on it.

A host calls its current set; a reload builds the next set aside and swaps it in. A call
registers itself in the ``active`` deque of the set it runs on, so that the set a reload
replaced can wait for its last call (:meth:`PluginSet.drain`) before its plugins' ``shutdown``
hooks run. Closing the host does the same to its current set (:attr:`PluginSet.closing`): calls
that come after are refused, and the shutdown hooks wait for those in flight.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Final

from loopai.config import LoopaiConfig
from loopai.discovery import DiscoveredPlugin
from loopai.host._lifecycle import Lifecycle
from loopai.host._plan import Plan
from loopai.host._process import Pools
from loopai.registry import PluginRegistry, RegisteredPlugin

__all__ = ["PluginSet", "owner_of"]

_POLL: Final = 0.0005
"""Seconds between two looks at a retired set's calls in flight (a reload is rare; calls are not)."""


def owner_of(entry: RegisteredPlugin) -> Any:
    """The object a registry entry stands for: the plugin, or the module or object an adapter wraps."""
    return getattr(entry.plugin, "wraps", entry.plugin)


class PluginSet:
    """A registry and everything built from it: the configuration it was built with, what
    discovery found, the lifecycle of its plugins, their worker pools and the dispatch plan.

    ``active`` holds one item per call running on this set (appends and pops of a deque are
    atomic, so a call pays two of them and no lock); ``retired`` is set when a reload replaced
    this set: a call that finds it set after registering itself moves to the new set. ``closing``
    is set (with ``retired``) when the host closes: a call that finds it set is refused.
    """

    __slots__ = (
        "active",
        "closing",
        "config",
        "discovered",
        "generation",
        "lifecycle",
        "plan",
        "pools",
        "registry",
        "retired",
    )

    def __init__(
        self,
        generation: int,
        registry: PluginRegistry,
        config: LoopaiConfig,
        discovered: list[DiscoveredPlugin],
        lifecycle: Lifecycle,
        pools: Pools,
    ) -> None:
        self.generation = generation
        self.registry = registry
        self.config = config
        self.discovered = discovered
        self.lifecycle = lifecycle
        self.pools = pools
        self.plan = Plan()  # a stale placeholder: the first call builds the real one
        self.active: collections.deque[None] = collections.deque()
        self.retired = False
        self.closing = False

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no call runs on this set any more (after it was retired), for up to ``timeout``
        seconds (None: as long as it takes); True then, False when the time ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.active:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    async def adrain(self, timeout: float | None = None) -> bool:
        """:meth:`drain` from async code, without blocking the loop (calls on it may be what runs)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.active:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)
        return True

    def __repr__(self) -> str:
        state = "closing" if self.closing else "retired" if self.retired else "current"
        return f"<PluginSet {self.generation} {state}, {len(self.active)} call(s) in flight>"
