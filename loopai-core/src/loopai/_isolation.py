"""The one place that decides what a plugin may raise: isolation of every call into plugin code.

A plugin's exception, ``SystemExit`` included, is that plugin's failure and never stops the
host. Only these pass through: the user's Ctrl-C (``KeyboardInterrupt``), a generator being
closed (``GeneratorExit``) and, in async code, the cancellation of the caller's own task. A
``CancelledError`` that a plugin raises by itself (a sync plugin, or an async one whose
caller was not cancelled) is the plugin's failure like any other exception.

Every call into plugin code goes through :func:`guarded` or :func:`aguarded` (dispatch wraps each
plugin function once, when it lays out the plugin set) or :func:`attempt` (one-off calls:
imports, constructors, lifecycle hooks): the ``try`` lives here and nowhere else. What was raised
is said by :func:`describe`, and where by :func:`where_raised` (:func:`where_written` for a stack
another process wrote out: an isolated plugin's worker).

A process that a plugin forks during a call into plugin code (a hook, an import, a
constructor) never runs the host's work: when control would come back from the plugin into
loopai in that child, the child ends at once with ``os._exit`` (the status of a
``SystemExit`` it raised, 1 for another exception, else 0), without flushing the buffers it
shares with its parent (see :func:`watch_forks`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType, ModuleType
from typing import Any, Final, TypeVar

__all__ = [
    "PASS_THROUGH",
    "OwnFiles",
    "Raised",
    "aguarded",
    "attempt",
    "defined_at",
    "describe",
    "described_at",
    "guarded",
    "own_file",
    "raised_at",
    "watch_forks",
    "where_raised",
    "where_written",
]

PASS_THROUGH: Final = (KeyboardInterrupt, GeneratorExit)
"""What a plugin call may raise that the host lets through instead of isolating."""

T = TypeVar("T")


class Raised:
    """What an isolated call returns instead of raising: the plugin's exception."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Raised({self.error!r})"


def describe(exc: BaseException) -> str:
    """``ValueError: bad input`` (the type alone when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def raised_at(exc: BaseException, own: str | None = None) -> str:
    """`` (at /path/module.py:3)``: where ``exc`` was raised (see :func:`where_raised`); nothing when
    that is not known. Reads no source."""
    where = where_raised(exc, own)
    return f" (at {where[0]}:{where[1]})" if where is not None else ""


def described_at(exc: BaseException, own: str | None = None) -> str:
    """:func:`describe` and :func:`raised_at` together, the place said once: a syntax error's own
    text ends with ``(plugin.py, line 6)``, which this leaves out for `` (at /path/plugin.py:6)``."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno and exc.msg:
        return f"{type(exc).__name__}: {exc.msg}{raised_at(exc, own)}"
    return f"{describe(exc)}{raised_at(exc, own)}"


def defined_at(thing: object) -> tuple[str, int] | None:
    """The file and first line where a function, method or class is written; None when that is not
    known (built in C, made at run time). Reads a class's source only to find its line."""
    target = getattr(thing, "__func__", thing)
    if isinstance(target, type):
        try:
            filename = inspect.getsourcefile(target) or inspect.getfile(target)
            line = getattr(target, "__firstlineno__", None) or inspect.findsource(target)[1] + 1
        except (OSError, TypeError):
            return None
        return filename, line
    try:
        code = inspect.unwrap(target).__code__  # type: ignore[arg-type]
    except (AttributeError, ValueError):
        return None
    return code.co_filename, code.co_firstlineno


def where_raised(exc: BaseException, own: str | None = None) -> tuple[str, int] | None:
    """The file and line where ``exc`` was raised (for a syntax error, where the source is wrong);
    with ``own`` (a module's file), the last line of that file it passed through, when it did."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return exc.filename, exc.lineno
    frames = ((frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(exc.__traceback__))
    return _innermost(frames, own)


def where_written(text: str, own: str | None = None, *, newest_first: bool = False) -> tuple[str, int] | None:
    """:func:`where_raised` for a stack written out as text, by another process: a formatted
    traceback (oldest frame first; of a chain, the last exception's) or, with ``newest_first``, a
    ``faulthandler`` dump. None when the text names no frame."""
    if not newest_first:
        text = text[max(text.rfind("Traceback (most recent call last):"), 0) :]
    frames = [(found[1], int(found[2])) for found in re.finditer(r'^  File "(.+)", line (\d+)', text, re.MULTILINE)]
    if newest_first:
        frames.reverse()
    return _innermost(frames, own)


def _innermost(frames: Iterable[tuple[str, int]], own: str | None) -> tuple[str, int] | None:
    """Of ``frames`` (oldest first), the last in ``own`` (or, for an :class:`OwnFiles`, in any of
    its files), else the last."""
    last = mine = None
    files = own.files if isinstance(own, OwnFiles) else (own,)
    for where in frames:
        last = where
        if where[0] in files:
            mine = where
    return mine or last


class OwnFiles(str):
    """The file of a plugin's own module (the string itself), carrying ``files``: that file and
    those of every module its class hierarchy is written in, outside loopai and the standard
    library (a hook inherited from a base class in another module is the plugin's code too)."""

    files: frozenset[str]

    def __new__(cls, main: str, files: Iterable[str] = ()) -> OwnFiles:
        made = super().__new__(cls, main)
        made.files = frozenset((main, *files))
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return OwnFiles, (str(self), tuple(self.files))


def own_file(plugin: object) -> OwnFiles | None:
    """The file of the module a plugin's code is in: a module of hook functions (what an adapter
    ``wraps``) itself, else its class's module (with the files of its other classes: see
    :class:`OwnFiles`); for a class, its own module. None when it has none (built in code, say)."""
    target = getattr(plugin, "wraps", plugin)
    if isinstance(target, ModuleType):
        found = getattr(target, "__file__", None)
        return OwnFiles(found) if isinstance(found, str) else None
    classes = target.__mro__ if isinstance(target, type) else type(target).__mro__
    files = [file for cls in classes if (file := _class_file(cls)) is not None]
    return OwnFiles(files[0], files) if files else None


def _class_file(cls: type) -> str | None:
    """The file of ``cls``'s module, unless that is loopai's, the standard library's or none."""
    name = cls.__module__ or ""
    top = name.split(".", 1)[0]
    if top == "loopai" or top in sys.stdlib_module_names or top == "builtins":
        return None
    found = getattr(sys.modules.get(name), "__file__", None)
    return found if isinstance(found, str) else None


def guarded(function: Callable[..., T]) -> Callable[..., T | Raised]:
    """``function`` isolated: what it raises comes back as a :class:`Raised` (see the module)."""

    def isolated(*args: Any) -> T | Raised:
        try:
            return function(*args)
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # noqa: BLE001 - the plugin's failure, returned to the caller
            return Raised(exc)

    return isolated


def aguarded(function: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T | Raised]]:
    """The async twin of :func:`guarded`; a ``CancelledError`` passes through only when the
    caller's task is being cancelled (on Python 3.10, which cannot tell, it always does)."""

    async def isolated(*args: Any) -> T | Raised:
        try:
            return await function(*args)
        except PASS_THROUGH:
            raise
        except asyncio.CancelledError as exc:
            if _caller_cancelled():
                raise
            return Raised(exc)
        except BaseException as exc:  # noqa: BLE001 - the plugin's failure, returned to the caller
            return Raised(exc)

    return isolated


def attempt(function: Callable[..., T], *args: Any, **kwargs: Any) -> T | Raised:
    """Call ``function(*args, **kwargs)`` once, isolated."""
    return guarded(functools.partial(function, *args, **kwargs))()


def _caller_cancelled() -> bool:
    if sys.version_info < (3, 11):
        return True
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@functools.cache
def watch_forks() -> None:
    """From now on, a child forked inside plugin code ends when it would return into loopai.

    Registered once per process (hosts call it when they are built). At a fork, the child
    looks at its stack: if a loopai frame is below the frame that forked, a plugin forked
    during a call, and that loopai frame is traced until control comes back to it, which
    ends the child (see the module). Forks by the application itself, outside plugin code,
    are left alone. The tracing costs the child a little on every Python call until then:
    plugins that need worker processes should use ``subprocess`` or multiprocessing's
    ``spawn`` or ``forkserver`` start methods.
    """
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forked)


def _forked() -> None:
    frame = sys._getframe(1)
    while frame is not None and not _ours(frame):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None or frame is sys._getframe(1):
        return  # not forked from plugin code (loopai itself, or the application outside a call)
    frame.f_trace = _leave_child
    frame.f_trace_lines = True
    sys.settrace(_no_new_frames)


def _ours(frame: FrameType) -> bool:
    return str(frame.f_globals.get("__name__", "")).startswith("loopai.")


def _no_new_frames(frame: FrameType, event: str, arg: Any) -> None:
    return None  # only the loopai frame found at the fork is traced


def _leave_child(frame: FrameType, event: str, arg: Any) -> None:
    """Control is back in loopai, in a child a plugin forked: end the child, as it asked or at once."""
    status = 0
    if event == "exception":
        error = arg[1]
        if isinstance(error, SystemExit):
            code = error.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if code is not None and not isinstance(code, int):
                sys.stderr.write(f"{code}\n")
        else:
            status = 1
            sys.stderr.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        sys.stderr.flush()
    os._exit(status)
