"""Yes/no values in environment variables: ``1``, ``true``, ``yes`` and ``on`` mean yes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["flag", "is_true"]

_TRUE: Final = frozenset({"1", "true", "yes", "on"})


def is_true(text: str) -> bool:
    """Whether ``text`` says yes (case and surrounding spaces do not matter)."""
    return text.strip().lower() in _TRUE


def flag(environ: Mapping[str, str], name: str) -> bool | None:
    """The yes/no value of variable ``name``; None when it is unset or empty."""
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    return is_true(value)
