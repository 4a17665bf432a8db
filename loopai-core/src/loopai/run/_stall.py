"""``loopai run`` is never silently stuck: when no record has finished for ``[dispatch]
stall_notice`` seconds while a plugin's call is running, the run says which plugin and which line,
and what to do; then again each time the wait doubles. A plugin that is slow on every call is said
once, not once per record.

A thread of its own watches the engine's thread: every so often it reads how far the engine has
got (a counter the engine keeps anyway) and, only once that has stood still long enough, looks at
the engine thread's stack for the innermost plugin call (:func:`loopai._crash.running_plugin`).
Nothing is added to the work per record. What it cannot see it does not guess: an async plugin
that waits forever leaves no frame on a thread (with ``--concurrency`` above 1), and a plugin with
a timeout is waited for inside the host, which ends the call at its timeout.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from loopai._crash import GIVE_TIMEOUT, plugin_title, running_plugin

if TYPE_CHECKING:
    from loopai._plugin import Plugin
    from loopai.host import Host

__all__ = ["StallWatch"]


class StallWatch:
    """Says (through ``say``) which plugin call holds the calling thread's run up, once
    ``progress()`` has not changed for ``after`` seconds and a plugin's call is on that thread's
    stack; again when the wait has doubled. ``line()`` is the line being processed, or None when
    it is not known (records in flight at once). Use as a context manager around the run, or
    (:meth:`starting`) around the start of the host, whose plugins' ``startup`` hooks may hang too."""

    def __init__(
        self,
        host: Host,
        say: Callable[[str], None],
        progress: Callable[[], object],
        line: Callable[[], int | None],
        after: float,
        *,
        starting: bool = False,
    ) -> None:
        self.host = host
        self.say = say
        self.progress = progress
        self.line = line
        self.after = after
        self.starting = starting
        self._engine = threading.get_ident()  # the thread whose stack is looked at
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loopai-run-stall-watch", daemon=True)

    @classmethod
    def starting_host(cls, host: Host, say: Callable[[str], None] | None) -> contextlib.AbstractContextManager[object]:
        """A watch around ``host.start()`` (none when ``say`` is None or ``[dispatch] stall_notice`` is 0)."""
        after = host.config.dispatch.stall_notice
        if say is None or after <= 0:
            return contextlib.nullcontext()
        return cls(host, say, lambda: 0, lambda: None, after, starting=True)

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _watch(self) -> None:
        every = min(1.0, self.after / 4)
        said: dict[str, float] = {}  # per plugin, the longest wait said: a plugin slow on every call is said once
        seen, since, told = self.progress(), time.monotonic(), False
        while not self._stopped.wait(every):
            now, progress = time.monotonic(), self.progress()
            if progress != seen:  # records are finishing: nothing holds the run up
                seen, since, told = progress, now, False
                continue
            held = now - since
            if held < self.after:
                continue
            plugin = self._running()  # None: waiting for input, or for something that is not a plugin's call
            if plugin is None or held < 2 * said.get(plugin.name, 0.0):
                continue
            self.say(self._notice(plugin, held, again=told))
            said[plugin.name], told = held, True

    def _running(self) -> Plugin | None:
        frame = sys._current_frames().get(self._engine)
        return running_plugin(reversed(list(_outward(frame)))) if frame is not None else None

    def _notice(self, plugin: Plugin, held: float, *, again: bool) -> str:
        line = self.line()
        where = f"line {line}" if line is not None else "a record"
        what = f"{plugin_title(plugin)} {plugin.name!r}"
        waited = f"{held:.1f} s" if held < 10 else f"{held:.0f} s"
        if again:
            still = f"{what} is still starting" if self.starting else f"{where} still waits for {what}"
            return f"loopai run: {still} ({waited})"
        timeout = plugin.timeout or self.host.config.dispatch.default_timeout
        ends = f"its timeout ends the call after {timeout:g} s" if timeout else f"if it hangs, {GIVE_TIMEOUT}"
        held_up = (
            f"{what} has taken {waited} to start (its startup hook)"
            if self.starting
            else (f"{where} has waited {waited} for {what}")
        )
        return f"loopai run: {held_up}; {ends}; Ctrl-C stops the run"


def _outward(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back
