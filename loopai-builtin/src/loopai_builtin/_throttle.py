"""At most so many of a kind per minute: what the console handler shows, and how many it held back."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Throttle"]

K = TypeVar("K", bound=Hashable)


class Throttle(Generic[K]):
    """Lets at most ``limit`` items of one key through in any ``window`` seconds (0: no limit) and
    counts, exactly, the items it holds back per key.

    Thread-safe. ``clock`` is ``time.monotonic`` unless a test gives its own.
    """

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._shown: dict[K, deque[float]] = {}  # per key, when the last `limit` items went through
        self._held: dict[K, int] = {}  # per key, held back since the last item that went through

    def admit(self, key: K) -> tuple[bool, int]:
        """Whether an item of ``key`` goes through now and, when it does, how many of that key were held
        back before it (told once: the count starts again at 0)."""
        if self.limit <= 0:
            return True, 0
        now = self._clock()
        with self._lock:
            shown = self._shown.setdefault(key, deque(maxlen=self.limit))
            if len(shown) == self.limit and now - shown[0] < self.window:
                self._held[key] = self._held.get(key, 0) + 1
                return False, 0
            shown.append(now)
            return True, self._held.pop(key, 0)

    def held(self) -> dict[K, int]:
        """Every key with items held back since its last one went through, with how many, in the order
        the keys were first held back; the counts start again at 0."""
        with self._lock:
            held, self._held = self._held, {}
        return held
