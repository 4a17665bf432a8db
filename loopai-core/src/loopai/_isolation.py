"""The one place that decides what a plugin may raise: isolation of every call into plugin code.

A plugin's exception, ``SystemExit`` included, is that plugin's failure and never stops the
host. Only these pass through: the user's Ctrl-C (``KeyboardInterrupt``), a generator being
closed (``GeneratorExit``) and, in async code, the cancellation of the caller's own task. A
``CancelledError`` that a plugin raises by itself (a sync plugin, or an async one whose
caller was not cancelled) is the plugin's failure like any other exception.

Every call into plugin code goes through :func:`guarded` or :func:`aguarded` (dispatch wraps each
plugin function once, when it lays out the plugin set) or :func:`attempt` (one-off calls:
imports, constructors, lifecycle hooks): the ``try`` lives here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

__all__ = ["PASS_THROUGH", "Raised", "aguarded", "attempt", "describe", "guarded"]

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
