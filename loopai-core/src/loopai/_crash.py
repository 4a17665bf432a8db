"""What a process of loopai's own shows when native code crashes it: the Python stacks that name the plugin."""

from __future__ import annotations

import contextlib
import faulthandler

__all__ = ["stacks_on_crash"]


def stacks_on_crash() -> None:
    """From now on, a crash in native code (a plugin's C extension, say) prints the Python stack of
    every thread before the process dies, which names the plugin's file and hook (``faulthandler``).
    For a process of loopai's own (the command, its workers): an embedding application decides for
    itself. Does nothing when it is on already, or when stderr has no file descriptor."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if not faulthandler.is_enabled():
            faulthandler.enable()
