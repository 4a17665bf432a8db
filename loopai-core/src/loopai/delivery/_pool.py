"""A few daemon threads that run delivery attempts: started as needed, never joined at exit."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["DaemonPool", "started"]


def started(thread: threading.Thread) -> bool:
    """Start ``thread``; False when the interpreter is shutting down and refuses new threads
    (Python 3.12+, e.g. a host drained at exit): the caller then does without it."""
    try:
        thread.start()
    except RuntimeError:
        return False
    return True


class DaemonPool:
    """Runs submitted calls on up to ``size`` daemon threads, each started when work would wait.

    Not a ``ThreadPoolExecutor``: its threads are joined when the interpreter exits, so one
    handler hung in a call without a timeout would keep the process alive. These are daemon
    threads; what they have not finished at exit stays pending in the outbox.
    """

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for work
        self._queued = 0  # work not taken yet

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work()`` on a pool thread (it must not raise)."""
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle and self._threads < self._size
            if start:
                self._threads += 1
        self._queue.put(work)
        if start:
            thread = threading.Thread(target=self._serve, name=f"{self._name}-{self._threads}", daemon=True)
            if not started(thread):
                self._inline()

    def _inline(self) -> None:
        """A thread could not be started: with no thread to take it, the caller runs queued work."""
        with self._lock:
            self._threads -= 1
            if self._threads > 0 or self._queued == 0:
                return
            self._queued -= 1
        work = self._queue.get()
        if work is not None:
            work()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            work = self._queue.get()
            with self._lock:
                self._idle -= 1
                if work is not None:
                    self._queued -= 1
            if work is None:
                return
            work()

    def close(self) -> None:
        """End the threads once they are done with their current work (idempotent)."""
        with self._lock:
            threads, self._threads, self._size = self._threads, 0, 0
        for _ in range(threads):
            self._queue.put(None)
