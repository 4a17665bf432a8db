"""The expected output compared with the actual one as JSON values, difference by difference."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["differences", "parsed"]


def parsed(value: Any) -> Any:
    """A JSON string stands for the value it encodes; anything else is itself."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def differences(expected: Any, actual: Any, path: str) -> Iterator[tuple[str, str]]:
    """Where ``actual`` differs from ``expected`` as JSON values (``true`` is not ``1``; ``1`` is ``1.0``)."""
    kind = _kind(expected)
    if kind != _kind(actual):
        yield path, f"expected {_shown(expected)}, got {_shown(actual)}"
    elif kind == "object":
        for key in expected:
            if key not in actual:
                yield f"{path}.{key}", f"missing; expected {_shown(expected[key])}"
            else:
                yield from differences(expected[key], actual[key], f"{path}.{key}")
        for key in actual:
            if key not in expected:
                yield f"{path}.{key}", f"unexpected; got {_shown(actual[key])}"
    elif kind == "array":
        if len(expected) != len(actual):
            yield path, f"expected {len(expected)} item(s), got {len(actual)}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
            yield from differences(want, got, f"{path}[{index}]")
    elif expected != actual:
        yield path, f"expected {_shown(expected)}, got {_shown(actual)}"
