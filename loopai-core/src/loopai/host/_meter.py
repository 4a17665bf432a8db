"""Per-plugin usage counts (calls, failures, time), collected only when a host is asked to."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Meter", "Observer", "PluginUsage"]


class PluginUsage:
    """How often one plugin was called, how often it failed, and the time spent in it; the first
    failure's message (``first_failure``, None until a failure is described), so that a count of
    failures comes with a reason."""

    __slots__ = ("calls", "failures", "first_failure", "kind", "name", "seconds")

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self.calls = 0
        self.failures = 0
        self.seconds = 0.0
        self.first_failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "calls": self.calls,
            "failures": self.failures,
            "seconds": self.seconds,
            "first_failure": self.first_failure,
        }

    def __repr__(self) -> str:
        return (
            f"PluginUsage({self.kind} {self.name!r}: {self.calls} calls, {self.failures} failures, {self.seconds:.3f}s)"
        )


Observer = Callable[[str, str, float], None]
"""Told of every metered call: ``observe(kind, name, seconds)``."""


class Meter:
    """Counts plugin calls; a host wraps each plugin's function with :meth:`wrap` when metering.

    ``observe``, when given, is also called after every call with its kind, plugin name and
    duration (a service feeds its latency histogram with it); it must be quick and must not raise.
    Pass the meter to the host: ``Host(meter=Meter(observe=...))``.
    """

    def __init__(self, observe: Observer | None = None) -> None:
        self._lock = threading.Lock()
        self._usage: dict[tuple[str, str], PluginUsage] = {}
        self._observe = observe

    def _entry(self, kind: str, name: str) -> PluginUsage:
        with self._lock:
            usage = self._usage.get((kind, name))
            if usage is None:
                usage = self._usage[(kind, name)] = PluginUsage(kind, name)
            return usage

    def record(self, kind: str, name: str, seconds: float) -> None:
        """One call of ``name`` that took ``seconds``."""
        usage = self._entry(kind, name)
        with self._lock:
            usage.calls += 1
            usage.seconds += seconds

    def failed(self, kind: str, name: str) -> None:
        """One failed call of ``name`` that did not raise (it returned the wrong type)."""
        usage = self._entry(kind, name)
        with self._lock:
            usage.failures += 1

    def described(self, kind: str, name: str, message: str) -> None:
        """How a failure of ``name`` is described; the first one is kept."""
        usage = self._entry(kind, name)
        with self._lock:
            if usage.first_failure is None:
                usage.first_failure = message

    def wrap(self, kind: str, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` counted and timed on every call; a call that raises (a timeout included)
        counts as a failure too."""
        usage = self._entry(kind, name)
        lock, clock, observe = self._lock, time.perf_counter, self._observe

        def metered(*args: Any) -> Any:
            started, raised = clock(), True
            try:
                result = function(*args)
                raised = False
                return result
            finally:
                elapsed = clock() - started
                with lock:
                    usage.calls += 1
                    usage.failures += raised
                    usage.seconds += elapsed
                if observe is not None:
                    observe(kind, name, elapsed)

        return metered

    def awrap(self, kind: str, name: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """The async twin of :meth:`wrap`."""
        usage = self._entry(kind, name)
        lock, clock, observe = self._lock, time.perf_counter, self._observe

        async def metered(*args: Any) -> Any:
            started, raised = clock(), True
            try:
                result = await function(*args)
                raised = False
                return result
            finally:
                elapsed = clock() - started
                with lock:
                    usage.calls += 1
                    usage.failures += raised
                    usage.seconds += elapsed
                if observe is not None:
                    observe(kind, name, elapsed)

        return metered

    def usage(self) -> list[PluginUsage]:
        """A copy of every plugin's counts, by kind then name."""
        with self._lock:
            copies = []
            for usage in self._usage.values():
                twin = PluginUsage(usage.kind, usage.name)
                twin.calls, twin.failures, twin.seconds = usage.calls, usage.failures, usage.seconds
                twin.first_failure = usage.first_failure
                copies.append(twin)
        return sorted(copies, key=lambda u: (u.kind, u.name))
