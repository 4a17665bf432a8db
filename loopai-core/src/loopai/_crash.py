"""What a process of loopai's own shows when native code crashes it (the Python stacks that name the
plugin), or when a Ctrl-C stops it inside a plugin (which plugin it was); and which plugin's call
a stack of frames is in."""

from __future__ import annotations

import contextlib
import faulthandler
import traceback
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopai._plugin import Plugin

__all__ = ["GIVE_TIMEOUT", "interrupted_line", "plugin_title", "running_plugin", "stacks_on_crash"]


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
    running = running_plugin(frame for frame, _ in traceback.walk_tb(tb))
    if running is None:
        return "interrupted"
    return f"interrupted while {plugin_title(running)} {running.name!r} was running; if it hangs, {GIVE_TIMEOUT}"


GIVE_TIMEOUT = (
    "give it a timeout (timeout = 5 in its table of the configuration, or [dispatch] default_timeout for every plugin)"
)
"""The advice for a plugin call that may hang."""


def running_plugin(frames: Iterable[FrameType]) -> Plugin | None:
    """The plugin whose call is innermost among ``frames`` (outermost first): the frame of a
    plugin's own method, or (an isolated plugin, whose code runs in a worker process) of the
    host's call or worker pool for it, which know their registry entry; None when no plugin's
    call is among them."""
    from loopai._plugin import Plugin  # here: only once a plugin is looked for

    running = None
    for frame in frames:
        owner = frame.f_locals.get("self")
        plugin = owner if isinstance(owner, Plugin) else getattr(getattr(owner, "entry", None), "plugin", None)
        if isinstance(plugin, Plugin):
            running = plugin
    return running


def plugin_title(plugin: Plugin) -> str:
    """``validator``, ``sampler``, ``webhook handler``: what ``plugin`` is, as messages say it."""
    from loopai._kinds import KINDS

    kind = next((kind for kind in KINDS if isinstance(plugin, kind.base)), None)
    return kind.title if kind is not None else "plugin"
