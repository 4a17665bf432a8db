"""Public names imported from their home modules when first asked for: the one module ``__getattr__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(namespace: dict[str, Any], homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``namespace`` (the module's ``globals()``).

    A name in ``homes`` is imported from its home module (a relative name, ``._factories``, is
    relative to the module) the first time it is asked for, then kept in ``namespace``, so later
    look-ups never come here; any other name raises ``AttributeError``, as for any module.
    """
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(home, module), name)
        return value

    return __getattr__
