"""The compiled engine behind the fast path: ``jsonschema-rs``, when installed (``loopai-builtin[fast]``).

For a schema the fast path accepts (:mod:`._schema_fast_path`), ``jsonschema-rs`` answers
"valid?" several times faster than the plain Python checks. It is used only where both mean
the same thing by the same keywords:

- no ``pattern``: it reads regular expressions as ECMA 262 does, ``jsonschema`` as Python's
  ``re`` does (``\\s``, ``\\d`` and ``$`` differ);
- no ``format`` checked: each implements its own formats;
- not draft 4, where ``jsonschema`` does not count ``1.0`` as an integer;
- no number in the schema that JSON cannot hold (``inf``, ``nan``: TOML has them), which the
  engine would read as something else.

Anything it cannot read (a string with a lone surrogate, a type JSON does not have) counts as
"not sure", so ``jsonschema`` decides, as for any instance the engine does not call valid. So
does an instance holding ``inf`` or ``nan`` (pydantic reads ``NaN`` and ``1e999`` in JSON): the
engine would take them for ``null``.
"""

from __future__ import annotations

import importlib
import json
import math
from typing import Any, Final

from loopai_builtin._schema_fast_path import Check, keywords_of

__all__ = ["engine_check"]

_CLASSES: Final = {
    "draft6": "Draft6Validator",
    "draft7": "Draft7Validator",
    "draft2019-09": "Draft201909Validator",
    "draft2020-12": "Draft202012Validator",
}


def engine_check(schema: Any, draft: str, format_checking: bool) -> Check | None:
    """``jsonschema-rs``'s check of ``schema`` (one the fast path accepts, ``$schema`` aside), or
    None when it is not installed or does not read this schema as ``jsonschema`` does."""
    name = _CLASSES.get(draft)
    if name is None:
        return None
    used = keywords_of(schema)
    if "pattern" in used or ("format" in used and format_checking) or not _finite(schema):
        return None
    try:
        engine = importlib.import_module("jsonschema_rs")
    except ImportError:
        return None
    try:  # a plain copy: the engine reads dicts and lists only, and a context's schemas are read-only ones
        schema = json.loads(json.dumps(schema))
    except (TypeError, ValueError):
        return None  # a value JSON does not have (a TOML date): the Python checks do
    if isinstance(schema, dict):
        schema.pop("$schema", None)
    try:
        is_valid = getattr(engine, name)(schema, validate_formats=False).is_valid
    except Exception:  # noqa: BLE001 -- a schema the engine cannot compile (NaN bounds...): the Python checks do
        return None

    def check(instance: Any) -> bool:
        try:
            return is_valid(instance) is True and _finite(instance)
        except Exception:  # noqa: BLE001 -- an instance it cannot read: not sure, jsonschema decides
            return False

    return check


def _finite(value: Any) -> bool:
    """Whether every number in ``value`` (a schema, or an instance) is one JSON can hold."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        for item in value.values():  # a plain loop: all() over a generator costs more
            if not _finite(item):
                return False
    elif kind is list:
        for item in value:
            if not _finite(item):
                return False
    return True
