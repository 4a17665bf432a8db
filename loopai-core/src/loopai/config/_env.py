"""``${VAR}`` and ``${VAR:-default}`` references in configuration values, resolved from an environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from loopai._redact import EnvValue

__all__ = ["UNSET", "References"]

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
UNSET: Final = object()
"""What a string becomes when a variable it references is not set: the value is left out."""


class References:
    """Resolves ``${VAR}`` references; remembers unset variables and what was left out for them."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.missing: list[tuple[tuple[str, ...], str]] = []
        self.left_out: list[tuple[str, ...]] = []
        self.originals: dict[tuple[str, ...], Any] = {}
        """What the file wrote for each value left out (``"${LOOPAI_WEBHOOK_SECRET}"``), by path."""

    def resolve(self, value: Any, path: tuple[str, ...]) -> Any:
        """``value`` with its references resolved; a key or list holding an unset one is left out."""
        if isinstance(value, str):
            return self._substitute(value, path) if "$" in value else value
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item, (*path, str(key)))
                if resolved is UNSET:
                    where = (*path, str(key))
                    self.left_out.append(where)
                    self.originals[where] = item
                else:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            items = [self.resolve(item, (*path, f"[{index}]")) for index, item in enumerate(value)]
            return UNSET if any(item is UNSET for item in items) else items
        return value

    def _substitute(self, value: str, path: tuple[str, ...]) -> Any:
        used: list[str] = []
        unset: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            used.append(name)
            if name in self.environ:
                return self.environ[name]
            if default is None:
                unset.append(name)
            return default or ""

        text = _ENV_REF.sub(substitute, value)
        self.missing.extend((path, name) for name in unset)
        if unset:
            return UNSET
        if not used:
            return text
        return EnvValue(text, tuple(used), whole=len(used) == 1 and _ENV_REF.fullmatch(value) is not None)
