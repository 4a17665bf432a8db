"""Threads a plugin left running when a ``loopai`` command ends: named, warned about, not waited for.

Python waits for every non-daemon thread before a process exits, so one forgotten thread in a
plugin would keep ``loopai run`` from ever ending. The command finishes its work, says which
threads were left and which plugin started them, and ends without waiting.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

__all__ = ["leave_without_waiting", "leaked_threads"]


def leaked_threads() -> list[threading.Thread]:
    """Non-daemon threads still running, besides the main thread and the caller's."""
    here = threading.current_thread()
    return [
        t
        for t in threading.enumerate()
        if t.is_alive() and not t.daemon and t is not here and t is not threading.main_thread()
    ]


def _started_by(thread: threading.Thread) -> str:
    """The code the thread runs, as ``module.function``: its target (a ``Timer``'s function) unless
    that is the standard library's; then where its stack, outermost first, leaves the standard
    library now (a plugin's task in a thread pool's worker); else its target, else ``run``."""
    target: Any = getattr(thread, "_target", None) or getattr(thread, "function", None)  # where threading keeps them
    found: list[tuple[Any, Any]] = [(getattr(target, "__module__", None), getattr(target, "__qualname__", None))]
    stack = []
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        code = frame.f_code
        stack.append((frame.f_globals.get("__name__"), getattr(code, "co_qualname", code.co_name)))  # 3.10: co_name
        frame = frame.f_back
    found += reversed(stack)
    places: list[tuple[str, str]] = [(m, n) for m, n in found if isinstance(m, str) and isinstance(n, str)]
    own = [place for place in places if _top(place[0]) not in sys.stdlib_module_names]
    module, name = (own or places or [(type(thread).__module__, "run")])[0]
    return f"{module}.{name}"


def _top(value: str) -> str:
    """The top-level package of a module name, or of an entry point's ``module:attribute``."""
    return value.split(":", 1)[0].split(".", 1)[0].strip()


def _plugins_of(module: str, config_path: Any) -> list[str]:
    """The plugins (installed, or configured with a ``factory``) whose code is in ``module``'s
    top-level package."""
    from loopai._kinds import KINDS
    from loopai.cli._common import NOT_SERVING
    from loopai.config import load_config
    from loopai.discovery import discover

    try:  # naming the plugin is a courtesy: the warning goes out anyway
        config = load_config(config_path, unused=NOT_SERVING)
        found = {(r.kind, r.name) for r in discover(config) if _top(r.value) == _top(module)}
    except Exception:  # noqa: BLE001
        return []
    for kind in KINDS:
        found |= {
            (kind.label, e.name) for e in config.plugins.for_kind(kind) if e.factory and _top(e.factory) == _top(module)
        }
    return [f"{kind} {name!r}" for kind, name in sorted(found)]


def leave_without_waiting(status: int, config_path: Any = None) -> int:
    """End the process now with ``status`` if plugins left non-daemon threads (after a warning that
    names them), instead of hanging at exit; else return ``status``. ``config_path``: the
    configuration the command used (``--config``), to name plugins configured by factory."""
    leaked = leaked_threads()
    if not leaked:
        return status
    for thread in leaked:
        started = _started_by(thread)
        plugins = _plugins_of(started, config_path)
        owner = f"plugin {', '.join(plugins)}" if plugins else f"code in {started.rsplit('.', 1)[0]}"
        print(
            f"warning: {owner} left thread {thread.name!r} running (started by {started}); loopai exits "
            "without waiting for it: stop it in the plugin's shutdown(), or make it a daemon thread",
            file=sys.stderr,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
