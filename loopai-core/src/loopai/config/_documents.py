"""Reading a JSON or TOML file into a document, with errors that name the file, line and column."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from loopai._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["read_document", "tomllib"]

_TOML_AT = re.compile(r"(?P<message>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)", re.S)
"""Where tomllib's message says the error is (its exception has no such attributes before 3.14)."""


def read_document(found: Path, label: str, how: str = "") -> Any:
    """The parsed JSON (``how="json"``, or a ``.json`` file) or TOML document in ``found``.

    ``how="pyproject"`` returns its ``[tool.loopai]`` table. Errors are a
    :class:`loopai.ConfigError` naming ``label`` (with line and column where known).
    """
    how = how or ("json" if found.suffix.lower() == ".json" else "toml")
    try:
        raw = found.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{label}: cannot be read: {exc.strerror or exc}"]) from None
    try:
        if how == "json":
            return json.loads(raw)
        document = tomllib.loads(raw.decode("utf-8-sig"))  # a byte order mark (Windows editors) is not text
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{label}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"]) from None
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_AT.fullmatch(str(exc))  # "Cannot overwrite a value (at line 6, column 14)"
        where, message = (f"{label}:{at['line']}:{at['column']}", at["message"]) if at else (label, str(exc))
        if message == "Cannot overwrite a value":
            message += " (is a key set twice?)"
        raise ConfigError([f"{where}: invalid TOML: {message}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    if how == "pyproject":
        return document.get("tool", {}).get("loopai", {})
    return document
