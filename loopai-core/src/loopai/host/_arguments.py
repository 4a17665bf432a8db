"""What ``Host(...)`` is given, checked before anything is opened.

A wrong type raises ``TypeError`` and a wrong value :class:`loopai.ConfigError`, each line naming
the argument, what it got and what to pass (``Host(config='loopai.toml'): a path; pass a
LoopaiConfig; to read a file use Host.from_config(path) or loopai.load_config(path)``), instead of
an ``AttributeError`` from deep inside the host at its first call. The ``[dispatch]`` overrides
are checked as the configuration checks them (:func:`loopai.host._settings.check_overrides`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any
from uuid import UUID

from loopai._errors import ConfigError
from loopai._plugin import Plugin
from loopai.config import LoopaiConfig, TaskSettings
from loopai.delivery import Outbox
from loopai.discovery import Selection
from loopai.host._meter import Meter
from loopai.host._settings import check_overrides
from loopai.registry import PluginRegistry
from loopai.state import StateStore

__all__ = ["check_arguments"]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _missing(value: object, protocol: type) -> list[str]:
    """The methods of ``protocol`` that ``value`` lacks."""
    wanted = [name for name, member in vars(protocol).items() if callable(member) and not name.startswith("_")]
    return [name for name in wanted if not callable(getattr(value, name, None))]


def _config(config: object) -> str | None:
    if config is None or isinstance(config, LoopaiConfig):
        return None
    if isinstance(config, (str, bytes, os.PathLike)):
        return (
            f"Host(config={_shown(config)}): a path; pass a LoopaiConfig; to read a file use "
            "Host.from_config(path) or loopai.load_config(path)"
        )
    if isinstance(config, Mapping):
        return (
            f"Host(config={_shown(config)}): a {type(config).__name__}; pass a LoopaiConfig: "
            "loopai.parse_config(dict) makes one from a dict (loopai.load_config(path) from a file)"
        )
    return (
        f"Host(config=...): got {type(config).__name__}; pass a LoopaiConfig (loopai.load_config(path), "
        "loopai.parse_config(dict)) or None for the defaults"
    )


def _plugins(plugins: object) -> str | None:
    if isinstance(plugins, (str, bytes, Plugin, ModuleType)) or not isinstance(plugins, Iterable):
        return (
            f"Host(plugins={_shown(plugins)}): pass a list of plugins (loopai.Plugin instances, or modules or "
            "objects of @loopai.hookimpl functions): plugins=[...]"
        )
    return None


def _trace(trace: object) -> str | None:
    if trace is None or isinstance(trace, bool) or callable(getattr(trace, "write", None)):
        return None
    return (
        f"Host(trace={_shown(trace)}): pass True or False (a line per hook call on standard error, or none), "
        "a text stream to write the lines to, or None (LOOPAI_TRACE, else the configuration's trace)"
    )


def _outbox(outbox: object) -> str | None:
    if outbox is None or isinstance(outbox, (bool, str, os.PathLike, Outbox)):
        return None
    missing = _missing(outbox, Outbox)
    partly = len(missing) < len(_missing(0, Outbox))  # an int lacks everything: no list then
    lacks = f" (this {type(outbox).__name__} lacks {', '.join(missing)})" if partly else ""
    return (
        f"Host(outbox={_shown(outbox)}): pass a path or a postgresql:// URL, True (the default outbox), "
        f"False (none), None (as configured), or an object that implements loopai.Outbox{lacks}"
    )


def _state(state: object) -> str | None:
    if state is None or isinstance(state, StateStore):
        return None
    missing = _missing(state, StateStore)
    return (
        f"Host(state={_shown(state)}): pass an object that implements the loopai.StateStore protocol "
        f"(this {type(state).__name__} lacks {', '.join(missing)}), or None for the in-process store "
        "(or the PostgreSQL one that LOOPAI_STATE_URL or [state] url names)"
    )


def _tasks(tasks: object) -> str | None:
    if tasks is None:
        return None
    wanted = (
        "pass a mapping of task id (a UUID) to loopai.config.TaskSettings, as "
        "loopai.config.by_uuid(loopai.config.load_tasks(path)) makes, or None for the configuration's tasks"
    )
    if not isinstance(tasks, Mapping):
        return f"Host(tasks={_shown(tasks)}): {wanted}"
    for key, value in tasks.items():
        if not isinstance(key, UUID) or not isinstance(value, TaskSettings):
            return f"Host(tasks=...): {wanted}; got {_shown(key)}: {type(value).__name__}"
    return None


def _of_type(name: str, value: object, kinds: tuple[type, ...], wanted: str) -> str | None:
    if isinstance(value, kinds):
        return None
    return f"Host({name}={_shown(value)}): pass {wanted}"


def check_arguments(
    self: object,
    config: object,
    *,
    plugins: object,
    registry: object,
    strict: object,
    trace: object,
    dry_run: object,
    stop_on_failure: object,
    max_retries: object,
    retry_backoff: object,
    environ: object,
    discover: object,
    selection: object,
    paths: object,
    outbox: object,
    meter: object,
    state: object,
    tasks: object,
    **others: object,
) -> None:
    """Refuse what ``Host(...)`` cannot use (``Host.__init__`` passes its arguments: ``**locals()``).

    Raises ``TypeError`` listing every argument of a wrong type, else :class:`loopai.ConfigError`
    listing every wrong value (a ``[dispatch]`` override the configuration would refuse too).
    """
    none = type(None)
    types = [
        problem
        for problem in (
            _config(config),
            _plugins(plugins),
            _of_type("registry", registry, (PluginRegistry, none), "a loopai.PluginRegistry, or None for a new one"),
            _of_type("strict", strict, (bool, none), "True or False, or None (LOOPAI_STRICT_PLUGINS, else the config)"),
            _trace(trace),
            _of_type("environ", environ, (Mapping, none), "a mapping of variable names to values, or None"),
            _of_type("discover", discover, (bool,), "True or False (find installed plugins)"),
            _of_type("selection", selection, (Selection, none), "a loopai.discovery.Selection, or None"),
            _paths(paths),
            _outbox(outbox),
            _of_type("meter", meter, (bool, Meter), "True or False, or a loopai.host.Meter"),
            _state(state),
            _tasks(tasks),
        )
        if problem is not None
    ]
    wrong_types, wrong_values = check_overrides(
        {
            "dry_run": dry_run,
            "stop_on_failure": stop_on_failure,
            "max_retries": max_retries,
            "retry_backoff": retry_backoff,
        }
    )
    types += wrong_types
    if types:
        raise TypeError("\n".join(types))
    if wrong_values:
        raise ConfigError(wrong_values)


def _paths(paths: object) -> str | None:
    wanted = "pass a list of folders to find plugin distributions in, or None (sys.path)"
    if paths is None:
        return None
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Iterable):
        return f"Host(paths={_shown(paths)}): {wanted}: paths=[...]"
    return None
