"""What a process of loopai's own shows when native code crashes it (the Python stacks that name the
plugin), or when a Ctrl-C stops it inside a plugin (which plugin it was)."""

from __future__ import annotations

import contextlib
import faulthandler
import traceback
from types import TracebackType

__all__ = ["interrupted_line", "stacks_on_crash"]


def stacks_on_crash() -> None:
    """From now on, a crash in native code (a plugin's C extension, say) prints the Python stack of
    every thread before the process dies, which names the plugin's file and hook (``faulthandler``).
    For a process of loopai's own (the command, its workers): an embedding application decides for
    itself. Does nothing when it is on already, or when stderr has no file descriptor."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if not faulthandler.is_enabled():
            faulthandler.enable()


def interrupted_line(tb: TracebackType | None) -> str:
    """What to say when a ``KeyboardInterrupt`` whose traceback is ``tb`` stops a command: when it
    struck inside a plugin's call (the innermost frame of a plugin, or of the host's call of one),
    which plugin was running, and that a plugin that may hang can be given a timeout; else just
    ``interrupted``."""
    from loopai._kinds import KINDS  # here: only once interrupted
    from loopai._plugin import Plugin

    running = None
    for frame, _ in traceback.walk_tb(tb):
        owner = frame.f_locals.get("self")
        # The plugin's own code, or (an isolated plugin, whose code runs in a worker process) the
        # host's call or worker pool for it: both know their registry entry.
        plugin = owner if isinstance(owner, Plugin) else getattr(getattr(owner, "entry", None), "plugin", None)
        if isinstance(plugin, Plugin):
            running = plugin
    if running is None:
        return "interrupted"
    kind = next((kind for kind in KINDS if isinstance(running, kind.base)), None)
    title = kind.title if kind is not None else "plugin"
    return (
        f"interrupted while {title} {running.name!r} was running; if it hangs, give it a timeout "
        f"(timeout = 5 in its table of the configuration, or [dispatch] default_timeout for every plugin)"
    )
