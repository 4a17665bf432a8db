"""The worker pools of one plugin set: one per isolated plugin entry, made when first needed, closed together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loopai._errors import PluginError
from loopai.host._process._pool import WorkerPool
from loopai.registry import RegisteredPlugin

__all__ = ["Pools", "is_isolated"]


def is_isolated(entry: RegisteredPlugin) -> bool:
    """Whether ``entry``'s plugin runs in worker processes (``isolation = "process"``)."""
    return entry.plugin.isolation == "process"


class Pools:
    """The pools of a plugin set's isolated plugins.

    ``default_timeout`` applies to plugins without a ``timeout`` of their own (for calls,
    ``startup`` and ``shutdown``); ``on_trip(pool, reason)`` is told when a pool gives up on
    its plugin (the host disables it). A pool reads the plugin's isolation settings when it is
    made: changing them takes a reload.
    """

    def __init__(self, default_timeout: float | None, on_trip: Callable[[WorkerPool, str], None]) -> None:
        self.default_timeout = default_timeout
        self._on_trip = on_trip
        self._pools: dict[tuple[type, str, int], WorkerPool] = {}
        self._lock = threading.Lock()

    def pool(self, entry: RegisteredPlugin) -> WorkerPool:
        """The pool of ``entry`` (made now, unstarted, if it has none); raises :class:`loopai.PluginError`
        when the plugin cannot run isolated."""
        key = (entry.kind, entry.name, id(entry.plugin))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                timeout = entry.plugin.timeout or self.default_timeout
                pool = self._pools[key] = WorkerPool(entry, timeout, self._on_trip)
            return pool

    def hooks(self, entry: RegisteredPlugin) -> RegisteredPlugin:
        """``entry`` as the lifecycle sees it: an isolated plugin's ``startup`` and ``shutdown``
        become its pool's start and stop (the hooks themselves run in each worker)."""
        if not is_isolated(entry):
            return entry
        try:
            pool = self.pool(entry)
        except PluginError as exc:
            refusal = exc

            def refuse(host: Any = None) -> None:
                raise refusal  # its startup fails: the plugin is disabled, and the message says why

            return entry._replace(startup=refuse, shutdown=None, is_async=False)
        return entry._replace(startup=pool.start, shutdown=pool.stop, is_async=False)

    def tripped(self) -> list[WorkerPool]:
        """The pools that gave up on their plugin."""
        with self._lock:
            return [pool for pool in self._pools.values() if pool.tripped is not None]

    def close(self) -> None:
        """Stop every pool's workers that are still running (their ``shutdown`` runs)."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()
