"""Plugin attributes that hosts read when they lay out their dispatch: the descriptor, and each one's check.

A :class:`Switch` on :class:`loopai.Plugin` (``enabled``, ``priority``, ``timeout``, the order,
dependency and isolation attributes...) converts and checks what it is given, and tells every
registry holding the plugin when it changes on an instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "ISOLATION_MODES",
    "Switch",
    "as_given",
    "isolation_mode",
    "names",
    "optional_float",
    "optional_int",
    "positive_or_none",
    "switches",
    "workers",
]


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def as_given(value: Any) -> Any:
    return value  # checked where it is used: the registry refuses an unknown event type


def names(value: Any) -> tuple[str, ...]:
    """Plugin names: one name or a list of them, as a tuple (empty for None)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"plugin names must be non-empty strings, got {name!r}")
    return names


ISOLATION_MODES: tuple[str, ...] = ("inline", "process")
"""Where a plugin's hooks run: in the host's process (``inline``), or in worker processes."""


def isolation_mode(value: Any) -> str:
    if value not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {', '.join(map(repr, ISOLATION_MODES))}, got {value!r}")
    return str(value)


def workers(value: Any) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise ValueError(f"workers must be between 1 and 64, got {number}")
    return number


def positive_or_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        if value is None:
            return None
        number = convert(value)
        if not number > 0:
            raise ValueError(f"must be above 0 (or None for no limit), got {value!r}")
        return number

    return checked


class Switch:
    """A plugin attribute that hosts read when they lay out their dispatch.

    Set on an instance, at any time and from any thread, it tells every registry holding the
    plugin, so hosts use the new value from their next call. Set in a subclass body
    (``priority = 100``), it is that class's default (see ``Plugin.__init_subclass__``).
    """

    def __init__(self, convert: Callable[[Any], Any], doc: str) -> None:
        self.convert = convert
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot, self.default = f"_{name}", f"_default_{name}"

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return getattr(owner, self.default)
        return obj.__dict__.get(self.slot, getattr(type(obj), self.default))

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = self.convert(value)
        obj._loopai_changed()


def switches(cls: type) -> list[tuple[str, Switch]]:
    """The switches ``cls`` has, by attribute name (a subclass's own value may hide one)."""
    found: dict[str, Switch] = {}
    for base in reversed(cls.__mro__):
        found.update((attr, value) for attr, value in vars(base).items() if isinstance(value, Switch))
    return list(found.items())
