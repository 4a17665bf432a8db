"""Configuration from ``LOOPAI_*`` environment variables: ``__`` nests, the value wins over the file.

``LOOPAI_DISPATCH__MAX_RETRIES=5`` sets ``[dispatch] max_retries``;
``LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__CONFIGURATION__SAMPLING_RATE=0.2`` sets a
plugin's setting. Names are case-insensitive. A plugin name, a task id or a key is matched
against what the file already has with ``-`` and ``_`` read alike; a plugin or task the file
does not name is added, with each ``_`` of the variable read as ``-`` (plugin names are
hyphenated; a task id may be written with ``_`` for its ``-``). A value starting with ``[`` or
``{`` is JSON (``LOOPAI_DENY='["old-*"]'``); any other value is text, read as the field's
type (``"5"``, ``"true"``, ``"0.2"``). Single-word variables are read here only for the
top-level values (:data:`TOP_LEVEL`: ``LOOPAI_STRICT=true``, ``LOOPAI_DENY='["old-*"]'`` or
``LOOPAI_DENY=old-*,beta-*``; an empty one is not set); the others (``LOOPAI_CONFIG``,
``LOOPAI_OUTBOX``, ``LOOPAI_PLUGINS``...) keep their own meaning. ``LOOPAI_TASKS__<ID>__<KEY>``
variables are over a tasks file given in place of the configuration's ``[tasks]`` (``loopai run
--tasks FILE``) as well: :func:`load_tasks_overridden`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from loopai._kinds import kind_of
from loopai._redact import EnvValue

if TYPE_CHECKING:
    from pathlib import Path
    from uuid import UUID

    from loopai.config._tasks import TaskSettings

__all__ = ["Override", "apply_overrides", "load_tasks_overridden", "read_overrides"]

PREFIX = "LOOPAI_"
NESTING = "__"
TOP_LEVEL = ("strict", "autoload", "trace", "allow", "deny")
"""The top-level keys of the configuration that hold a value, not a table."""


class Override(NamedTuple):
    """One variable: its name, the path it sets (as the reader names paths) and its value."""

    variable: str
    path: tuple[str, ...]
    value: Any


def _fold(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def read_overrides(environ: Mapping[str, str], problems: list[str]) -> list[Override]:
    """Every ``LOOPAI_A__B...`` variable of ``environ`` (and ``LOOPAI_<TOP_LEVEL>``), in name order; bad
    ones are ``problems``."""
    found = []
    for variable in sorted(environ):
        if not variable.upper().startswith(PREFIX):
            continue
        parts = variable[len(PREFIX) :].lower().split(NESTING)
        if len(parts) == 1 and (parts[0] not in TOP_LEVEL or not environ[variable]):
            continue
        if any(not part for part in parts):
            problems.append(
                f"{variable}: an empty name between '__' (write LOOPAI_TABLE__KEY, e.g. LOOPAI_DISPATCH__MAX_RETRIES)"
            )
            continue
        text = environ[variable]
        if parts in (["allow"], ["deny"]) and not text.lstrip().startswith("["):
            found.append(Override(variable, tuple(parts), [glob.strip() for glob in text.split(",") if glob.strip()]))
            continue  # globs, as LOOPAI_PLUGINS takes them: a,b*
        value = _value(variable, text, problems)
        if value is not None:
            found.append(Override(variable, tuple(parts), value))
    return found


def _value(variable: str, text: str, problems: list[str]) -> Any:
    if not text.lstrip().startswith(("[", "{")):
        return EnvValue(text, (variable,), whole=True)  # read as the field's type, like a ``${VAR}``
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{variable}: a value starting with '[' or '{{' must be JSON: {exc.msg} (column {exc.colno})")
        return None


def apply_overrides(
    document: dict[str, Any], names: dict[str, list[str]], overrides: list[Override], problems: list[str]
) -> dict[tuple[str, ...], str]:
    """Write ``overrides`` into ``document`` (normalised: plugins as lists per kind, named in ``names``).

    Returns the path each variable set, as the reader names paths: ``("dispatch", "max_retries")``,
    or ``("samplers", "percentage-sampler", "configuration", "sampling_rate")`` for a plugin.
    """
    applied: dict[tuple[str, ...], str] = {}
    for override in overrides:
        head, *rest = override.path
        if head == "plugins":
            path, added = _plugin_path(document, names, override, problems)
            if path is not None:
                applied[path] = override.variable
                if added:  # the entry is the variable's: a message about it names the variable
                    applied.setdefault(path[:2], override.variable)
            continue
        if head == "tasks" and rest:
            tasks = document.setdefault("tasks", {})
            if isinstance(tasks, dict):
                rest[0] = _key(tasks, rest[0], hyphens=True)
        parts = [head, *rest]
        _set(document, parts, override.value)
        applied[tuple(parts)] = override.variable
    return applied


def _plugin_path(
    document: dict[str, Any], names: dict[str, list[str]], override: Override, problems: list[str]
) -> tuple[tuple[str, ...] | None, bool]:
    """Set a ``LOOPAI_PLUGINS__KIND__NAME__...`` value in its entry (added when the file has none):
    the path it set, and whether it added the entry."""
    parts = override.path[1:]
    if len(parts) < 3:
        problems.append(
            f"{override.variable}: name a kind, a plugin and a field "
            "(e.g. LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__PRIORITY)"
        )
        return None, False
    try:
        kind = kind_of(parts[0]).key
    except ValueError:
        problems.append(
            f"{override.variable}: {parts[0]!r} is no plugin kind; use VALIDATORS, SAMPLERS or WEBHOOK_HANDLERS"
        )
        return None, False
    plugins = document.setdefault("plugins", {})
    if not isinstance(plugins, dict):
        return None, False  # the file's plugins table is wrong, and that was said
    entries = plugins.setdefault(kind, [])
    kind_names = names.setdefault(kind, [])
    wanted = _fold(parts[1])
    index = next((i for i, name in enumerate(kind_names) if _fold(name) == wanted), None)
    added = index is None
    if index is None:
        kind_names.append(parts[1].replace("_", "-"))
        entries.append({"name": kind_names[-1]})
        index = len(entries) - 1
    fields = list(parts[2:])
    _set(entries[index], fields, override.value)
    return (kind, kind_names[index], *fields), added


def _key(table: Mapping[str, Any], part: str, *, hyphens: bool = False) -> str:
    """The key of ``table`` that ``part`` names (``-``, ``_`` and case aside), else ``part`` itself."""
    wanted = _fold(part)
    existing = next((key for key in table if _fold(str(key)) == wanted), None)
    if existing is not None:
        return str(existing)
    return part.replace("_", "-") if hyphens else part


def _set(table: dict[str, Any], parts: list[str], value: Any) -> None:
    for index, part in enumerate(parts):
        key = _key(table, part)
        parts[index] = key  # the caller names the path as the document now has it
        if index == len(parts) - 1:
            table[key] = value
            return
        inner = table.get(key)
        if not isinstance(inner, dict):
            inner = table[key] = {}
        table = inner


def load_tasks_overridden(path: str | Path, environ: Mapping[str, str]) -> dict[UUID, TaskSettings]:
    """The tasks file at ``path`` (see :func:`loopai.config.load_tasks`) with the
    ``LOOPAI_TASKS__<ID>__<KEY>`` variables of ``environ`` over it, as they are over the
    configuration's ``[tasks]``: a key the file has is replaced, a task it does not name is added.
    Raises :class:`loopai.ConfigError`: the file's problems name its lines; a value a variable
    sets that a task cannot take names the variable (the configuration, read first, names it too)."""
    from loopai._errors import ConfigError
    from loopai.config._tasks import load_tasks, parse_tasks

    tasks = load_tasks(path)
    overrides = [o for o in read_overrides(environ, []) if o.path[0] == "tasks" and len(o.path) > 1]
    if not overrides:
        return tasks
    document: dict[str, Any] = {
        "tasks": {str(task): settings.model_dump(exclude_unset=True) for task, settings in tasks.items()}
    }
    applied = apply_overrides(document, {}, overrides, [])
    try:
        return parse_tasks(document["tasks"], str(path))
    except ConfigError as exc:
        variables = ", ".join(dict.fromkeys(applied.values()))
        raise ConfigError([f"{problem} (set by {variables})" for problem in exc.problems]) from None
