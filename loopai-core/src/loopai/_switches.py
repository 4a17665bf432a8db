"""Plugin attributes that hosts read when they lay out their dispatch: the descriptor, and each one's check.

A :class:`Switch` on :class:`loopai.Plugin` (``enabled``, ``priority``, ``timeout``, the order,
dependency and isolation attributes...) checks what it is given as the configuration checks the
key of the same name (``enabled = "false"`` is refused, not taken for True), and tells every
registry holding the plugin when it changes on an instance. Only setting is checked: reading a
switch, as every host call does, costs what reading an attribute costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "ISOLATION_MODES",
    "Switch",
    "as_given",
    "described",
    "flag",
    "integer",
    "isolation_mode",
    "megabytes",
    "names",
    "retries",
    "seconds",
    "switches",
    "workers",
]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(value: Any, allowed: str) -> int:
    # ``int``, as the configuration's (strict) integers: not a bool, a float or a numeric string.
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"must be {allowed}, got {_shown(value)}")


def flag(value: Any) -> bool:
    """``True`` or ``False``, nothing else (``"false"`` and ``0`` are refused, as in the configuration)."""
    if value is True or value is False:
        return value
    raise TypeError(f"must be True or False, got {_shown(value)}")


def integer(value: Any) -> int:
    """A whole number (an ``int``; not a bool, a float or a string)."""
    return _whole(value, "a whole number (an int)")


def retries(value: Any) -> int | None:
    """A number of retries: a whole number >= 0, or None (the host's setting)."""
    if value is None:
        return None
    allowed = "a whole number >= 0, or None for the host's setting"
    number = _whole(value, allowed)
    if number < 0:
        raise ValueError(f"must be {allowed}, got {number}")
    return number


def seconds(value: Any) -> float | None:
    """A number of seconds above 0 (an int or a float), or None: no limit."""
    if value is None:
        return None
    allowed = "a number of seconds above 0, or None for no limit"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"must be {allowed}, got {_shown(value)}")
    if not value > 0:  # NaN included
        raise ValueError(f"must be {allowed}, got {_shown(value)}")
    return float(value)


def megabytes(value: Any) -> int | None:
    """A whole number of megabytes above 0, or None: no limit."""
    if value is None:
        return None
    allowed = "a whole number of megabytes above 0, or None for no limit"
    number = _whole(value, allowed)
    if number <= 0:
        raise ValueError(f"must be {allowed}, got {number}")
    return number


def as_given(value: Any) -> Any:
    return value  # checked where it is used: the registry refuses an unknown event type, naming it


def names(value: Any) -> tuple[str, ...]:
    """Plugin names: one name or a list of them, as a tuple (empty for None)."""
    if value is None:
        return ()
    allowed = "a plugin name or a list of plugin names (non-empty strings)"
    if isinstance(value, str):
        if not value:
            raise ValueError(f"must be {allowed}, got ''")
        return (value,)
    try:
        found = tuple(value)
    except TypeError:
        raise TypeError(f"must be {allowed}, got {_shown(value)}") from None
    for name in found:
        if not isinstance(name, str):
            raise TypeError(f"must be {allowed}, got {_shown(name)} in {_shown(value)}")
        if not name:
            raise ValueError(f"must be {allowed}, got '' in {_shown(value)}")
    return found


ISOLATION_MODES: tuple[str, ...] = ("inline", "process")
"""Where a plugin's hooks run: in the host's process (``inline``), or in worker processes."""


def isolation_mode(value: Any) -> str:
    if value not in ISOLATION_MODES or not isinstance(value, str):
        raise ValueError(f"must be one of {', '.join(map(repr, ISOLATION_MODES))}, got {_shown(value)}")
    return str(value)


def workers(value: Any) -> int:
    allowed = "a whole number between 1 and 64"
    number = _whole(value, allowed)
    if not 1 <= number <= 64:
        raise ValueError(f"must be {allowed}, got {number}")
    return number


def described(owner: Any) -> str:
    """``validator 'v'``: the kind and name of a plugin or plugin class, as error messages name it."""
    cls = owner if isinstance(owner, type) else type(owner)
    name = getattr(owner, "name", "") or cls.__name__
    return f"{getattr(cls, '_loopai_kind', 'plugin')} {name!r}"


class Switch:
    """A plugin attribute that hosts read when they lay out their dispatch.

    Set on an instance, at any time and from any thread, it tells every registry holding the
    plugin, so hosts use the new value from their next call. Set in a subclass body
    (``priority = 100``), it is that class's default (see ``Plugin.__init_subclass__``). Either
    way the value is checked first (:meth:`check`): a wrong one raises ``TypeError`` (the wrong
    type) or ``ValueError`` (out of range) naming the plugin, the attribute, the value and what
    is allowed, and changes nothing.
    """

    def __init__(self, convert: Callable[[Any], Any], doc: str) -> None:
        self.convert = convert
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot, self.default = name, f"_{name}", f"_default_{name}"

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return getattr(owner, self.default)
        return obj.__dict__.get(self.slot, getattr(type(obj), self.default))

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = self.check(obj, value)
        obj._loopai_changed()

    def check(self, owner: Any, value: Any) -> Any:
        """``value`` as the switch keeps it; ``owner`` (the plugin, or its class) names it in the error:
        ``validator 'v': enabled must be True or False, got 'false'``."""
        try:
            return self.convert(value)
        except (TypeError, ValueError) as exc:
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(f"{described(owner)}: {self.name} {exc}") from None


def switches(cls: type) -> list[tuple[str, Switch]]:
    """The switches ``cls`` has, by attribute name (a subclass's own value may hide one)."""
    found: dict[str, Switch] = {}
    for base in reversed(cls.__mro__):
        found.update((attr, value) for attr, value in vars(base).items() if isinstance(value, Switch))
    return list(found.items())
