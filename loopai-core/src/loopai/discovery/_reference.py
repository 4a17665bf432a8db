"""The object an entry point or a ``factory`` names (``package.module:Attribute``), and what is wrong
when its module has no such attribute: the name, the module, and the closest names it does have;
and, for an entry point to fix, the project folder of an editable install."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from loopai._suggest import closest

__all__ = ["NoSuchAttribute", "editable_project", "import_object"]


class NoSuchAttribute(AttributeError):
    """``value`` (``module:Attribute``) names an attribute that ``owner`` (a module's name, or
    ``module:Outer`` for an object on the path) does not have: ``missing``, with the ``near``
    names it has (the closest, if any).

    An ``AttributeError``, as ``getattr`` would raise it; its message says which name is missing
    where, with ``did you mean``; the callers say which declaration to fix.
    """

    def __init__(self, value: str, owner: str, missing: str, near: Sequence[str]) -> None:
        self.value, self.owner, self.missing, self.near = value, owner, missing, list(near)
        self.where = f"module {owner!r}" if ":" not in owner else repr(owner)
        """``module 'pkg'``, or ``'pkg:Outer'``: the owner, as messages name it."""
        super().__init__(f"{self.where} has no attribute {missing!r}{self.hint()}")

    def hint(self) -> str:
        """`` (did you mean 'BusinessRulesValidator'?)``, or ``""`` when no name of ``owner`` is close."""
        return f" (did you mean {self.near[0]!r}?)" if self.near else ""


def import_object(value: str) -> Any:
    """The object an entry point or factory names: ``package.module:attribute.path``.

    Raises what importing the module raises, and :class:`NoSuchAttribute` when the module (or an
    object on the path) has no attribute of a name the path gives.
    """
    value = value.split("[", 1)[0].strip()  # ``module:attr [extra]``: extras are a packaging matter
    module_name, _, attribute = value.partition(":")
    module_name = module_name.strip()
    target: Any = importlib.import_module(module_name)
    walked: list[str] = []
    for part in attribute.strip().split(".") if attribute.strip() else ():
        try:
            target = getattr(target, part)
        except AttributeError:
            owner = f"{module_name}:{'.'.join(walked)}" if walked else module_name
            near = closest(part, [name for name in dir(target) if not name.startswith("__")], limit=1)
            raise NoSuchAttribute(value, owner, part, near) from None
        walked.append(part)
    return target


def editable_project(dist_info: str) -> Path | None:
    """The folder holding ``pyproject.toml`` of a distribution installed editable (``pip install -e``),
    from its ``dist_info`` folder's ``direct_url.json`` (PEP 610); None for any other install, or when
    that file cannot be read. Reads only that file: called when a message needs it."""
    try:
        direct = json.loads((Path(dist_info) / "direct_url.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(direct, dict) or not (direct.get("dir_info") or {}).get("editable"):
        return None
    url = urlparse(str(direct.get("url", "")))
    folder = Path(unquote(url.path)) if url.scheme == "file" else None
    return folder if folder is not None and (folder / "pyproject.toml").is_file() else None
