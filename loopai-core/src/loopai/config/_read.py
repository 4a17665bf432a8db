"""Reading the configuration: where it is found, parsing TOML or JSON, ``${VAR}`` references, every error at once."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loopai._case import snake
from loopai._errors import ConfigError, describe_validation_error
from loopai._kinds import WEBHOOK_HANDLER, kind_of
from loopai._suggest import did_you_mean
from loopai.config._documents import read_document
from loopai.config._env import References
from loopai.config._lines import in_file_order, with_lines
from loopai.config._locate import locate_config
from loopai.config._model import LoopaiConfig
from loopai.config._overrides import apply_overrides, read_overrides
from loopai.config._reading import KIND_KEYS, Reading, Unset, join_path

__all__ = ["find_config", "load_config", "parse_config", "read_config"]

_PYPROJECT_SECTION = "tool.loopai."


def find_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Path | None, str]:
    """Which file to read and how: ``(path, "toml" | "json" | "pyproject")``, or ``(None, "defaults")``.

    Order: ``path``, else ``$LOOPAI_CONFIG``, else the nearest ``loopai.toml`` or ``pyproject.toml``
    with ``[tool.loopai]`` in ``cwd`` or a parent folder (up to a repository's root), else
    ``loopai.toml`` in the user's configuration folder, else built-in defaults. A named file
    that does not exist is a :class:`loopai.ConfigError`, as is a ``loopai.toml`` that is a folder.
    """
    located = locate_config(path, os.environ if environ is None else environ, Path(cwd) if cwd else Path.cwd())
    return located.path, located.how


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    unused: Collection[str] = (),
) -> LoopaiConfig:
    """Find (see :func:`find_config`), read and validate the configuration.

    TOML shape: ``[plugins.<kind>.<name>]`` tables with ``enabled``, ``priority``,
    ``timeout``, ``metadata`` and a ``configuration`` table. The seed's JSON shape
    (``{"Loopai": {"Plugins": {"Samplers": [{"Name": ...}]}}}``) with PascalCase keys is
    accepted too; other top-level sections of such a file are not loopai's and are
    ignored. ``${VAR}`` and ``${VAR:-default}`` in strings are read from ``environ``; a value
    whose variable is unset is a problem, except in the entry of a plugin the file disables
    (``enabled = false``) and in the top-level tables named in ``unused`` (``("serve",)`` for a
    caller that does not serve): there it is left out.
    ``LOOPAI_<TABLE>__<KEY>`` variables of ``environ`` override what the file says
    (``LOOPAI_DISPATCH__MAX_RETRIES=5``; see :mod:`loopai.config._overrides`).
    Raises :class:`loopai.ConfigError` listing every problem, each naming the file, the line
    and the field (``loopai.toml:7: samplers.s.priority: ...``; ``tool.loopai.``-prefixed for
    ``pyproject.toml``).
    """
    reading = read_config(path, environ=environ, cwd=cwd, unused=unused)
    if reading.config is None or reading.problems:
        raise ConfigError(reading.problems)
    return reading.config


def read_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    unused: Collection[str] = (),
) -> Reading:
    """Like :func:`load_config`, but returns every problem instead of raising."""
    environ = os.environ if environ is None else environ
    try:
        located = locate_config(path, environ, Path(cwd) if cwd else Path.cwd())
        if located.path is None:
            defaults = _parse({}, "<defaults>", environ, overrides=True, unused=unused)
            if defaults.config is not None:
                defaults.config._label = None  # as LoopaiConfig() names itself
                defaults.config._searched = True
            return defaults._replace(found_by=located.found_by)
        found = located.path
        label = _label(found, cwd)
        document = read_document(found, label, located.how)
    except ConfigError as exc:
        return Reading(None, exc.problems)
    section = _PYPROJECT_SECTION if located.how == "pyproject" else ""
    reading = _located(_parse(document, label, environ, section, overrides=True, unused=unused), found, label)
    if reading.config is not None:
        reading.config._source = found.resolve()
        reading.config._section = section
        reading.config._searched = True
    return reading._replace(found_by=located.found_by)


def _located(reading: Reading, path: Path, label: str) -> Reading:
    """``reading`` with the line of ``path`` that each problem names (``loopai.toml:7: ...``),
    in the file's order (problems of no line last)."""
    messages = list(dict.fromkeys([*reading.problems, *(unset.problem for unset in reading.unset)]))
    placed = dict(zip(messages, with_lines(messages, path, label), strict=True))
    located = [placed[problem] for problem in reading.problems]
    problems = [message for message, _ in sorted(located, key=lambda found: in_file_order(found[1]))]
    unset = tuple(unset._replace(problem=placed[unset.problem][0]) for unset in reading.unset)
    return reading._replace(problems=problems, unset=unset)


def parse_config(
    document: Any, *, label: str = "<config>", environ: Mapping[str, str] | None = None, overrides: bool = False
) -> LoopaiConfig:
    """Validate an already parsed document (a dict from TOML or JSON) into a :class:`LoopaiConfig`.

    ``label`` names the source in every message, the configuration's included. ``LOOPAI_*``
    variables of ``environ`` (default: ``os.environ``) override what the document says only with
    ``overrides`` (:func:`load_config` always applies them).
    """
    reading = _parse(document, label, os.environ if environ is None else environ, overrides=overrides)
    if reading.config is None or reading.problems:
        raise ConfigError(reading.problems)
    return reading.config


def _parse(
    document: Any,
    label: str,
    environ: Mapping[str, str],
    section: str = "",
    *,
    overrides: bool = False,
    unused: Collection[str] = (),
) -> Reading:
    if not isinstance(document, Mapping):
        return Reading(None, [f"{label}: the configuration must be a table/object, got {type(document).__name__}"])
    head = f"{label}: {section}"
    problems: list[str] = []
    normalised, names = _normalise(document, head, problems)
    env = References(environ)
    plugins = normalised.pop("plugins", None)
    resolved = env.resolve(normalised, ())
    if isinstance(plugins, dict):
        # Name plugins, not list indexes, in paths: samplers.slack.configuration.token
        resolved["plugins"] = {
            kind: [env.resolve(e, (kind, n)) for e, n in zip(entries, names.get(kind, ()), strict=True)]
            for kind, entries in plugins.items()
        }
    from_env = apply_overrides(resolved, names, read_overrides(environ, problems), problems) if overrides else {}
    disabled = {
        (kind, name)
        for kind, entries in resolved.get("plugins", {}).items()
        for entry, name in zip(entries, names.get(kind, ()), strict=True)
        if isinstance(entry, dict) and entry.get("enabled") is False
    }
    replaced = {("state", "url")} if environ.get("LOOPAI_STATE_URL") else set()  # the variable wins over the file
    unset = tuple(
        Unset(where, env.originals.get(where), f"{head}{join_path(where)}: {_unset(name)}", where[:2] not in disabled)
        for where, name in env.missing
        if where not in from_env and where not in replaced
    )
    skipped = {(table,) for table in unused}  # the caller's unused tables: [serve] for loopai run
    problems.extend(dict.fromkeys(u.problem for u in unset if u.needed and u.where[:1] not in skipped))
    # Every problem of the file at once: structure, environment, fields and kinds.
    for kind, entries in resolved.get("plugins", {}).items():
        for entry, name in zip(entries, names.get(kind, ()), strict=True):
            given = entry.get("type")
            if isinstance(given, str) and not _same_kind(given, kind):
                problems.append(
                    f"{head}{join_path((kind, name, 'type'))}: {given!r} does not match the section {kind!r} "
                    "(use validator, sampler or webhook-handler, or leave it out)"
                )
            if kind == WEBHOOK_HANDLER.key and isinstance(entry, dict) and entry.pop("tasks", None) is not None:
                problems.append(
                    f"{head}{join_path((kind, name, 'tasks'))}: only validators and samplers can be scoped to tasks; "
                    "a webhook handler gets every event it supports (remove tasks, or set the handler's events)"
                )
    left_out = [join_path(where) for where in env.left_out if where not in from_env]
    config = _validated(resolved, head, names, left_out, from_env, problems)
    if config is not None:
        config._label = label
        config._variables = {join_path(path): variable for path, variable in from_env.items()}
    settings = tuple(
        f"{head}{join_path((*where[:2], *where[3:]))}"
        for where in env.left_out
        if where[0] in KIND_KEYS and where[2:3] == ("configuration",) and where not in from_env
    )
    return Reading(config, problems, settings, unset)


def _unset(name: str) -> str:
    return f"environment variable {name} is not set (export it, or write ${{{name}:-default}})"


_SALVAGE_ROUNDS = 5


def _validated(
    resolved: dict[str, Any],
    head: str,
    names: dict[str, list[str]],
    left_out: list[str],
    from_env: Mapping[tuple[str, ...], str],
    problems: list[str],
) -> LoopaiConfig | None:
    """The configuration ``resolved`` describes; the values the model refuses are left out, and their
    problems added to ``problems``, so that what is right can still be checked (plugin settings)."""
    try:
        return LoopaiConfig.model_validate(resolved)
    except ValidationError as exc:
        problems.extend(_config_problems(exc, head, names, left_out, from_env))
        error = exc
    for _ in range(_SALVAGE_ROUNDS):
        for item in error.errors(include_url=False):
            _drop(resolved, item["loc"])
        try:
            return LoopaiConfig.model_validate(resolved)
        except ValidationError as again:
            error = again
    return None


def _drop(document: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    """Remove the deepest table key on the way to ``loc`` (list items stay: indexes name plugins)."""
    holder: Any = document
    deepest: tuple[dict[str, Any], str] | None = None
    for part in loc:
        if isinstance(holder, dict) and part in holder:
            deepest = (holder, str(part))
            holder = holder[part]
        elif isinstance(holder, list) and isinstance(part, int) and 0 <= part < len(holder):
            holder = holder[part]
        else:
            break
    if deepest is not None:
        del deepest[0][deepest[1]]


def _related(where: str, path: str) -> bool:
    """Whether ``where`` and ``path`` are one place, or one holds the other (``allow`` and ``allow.x``)."""
    return where == path or where.startswith((f"{path}.", f"{path}[")) or path.startswith((f"{where}.", f"{where}["))


def _same_kind(given: str, kind: str) -> bool:
    try:
        return kind_of(given) is kind_of(kind)
    except ValueError:
        return False


def _label(found: Path, cwd: str | os.PathLike[str] | None) -> str:
    """How messages name the file: relative to ``cwd`` when it is there or above (``../loopai.toml``)."""
    here = Path(cwd or Path.cwd()).resolve()
    where = found.resolve()
    if where.is_relative_to(here) or where.parent in here.parents:
        return os.path.relpath(where, here)
    return str(found)


def _snake_keys(table: Mapping[str, Any]) -> dict[str, Any]:
    return {snake(str(key)): value for key, value in table.items()}


def _normalise(
    document: Mapping[str, Any], head: str, problems: list[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Snake-case the structural keys and turn ``[plugins.<kind>.<name>]`` tables into lists.

    Returns the document and, per kind, the plugin names in list order (to name plugins,
    not list indexes, in error messages). ``head`` starts every problem.
    """
    top = _snake_keys(document)
    if isinstance(top.get("loopai"), Mapping):  # the seed's appsettings.json: its other sections are not ours
        top = _snake_keys(top["loopai"])
    names: dict[str, list[str]] = {}
    plugins = top.get("plugins")
    if plugins is None:
        return top, names
    if not isinstance(plugins, Mapping):
        problems.append(f"{head}plugins: must be a table, got {type(plugins).__name__}")
        del top["plugins"]  # reported once, here, rather than again by the model
        return top, names
    out: dict[str, Any] = {}
    for key, value in plugins.items():
        kind = snake(str(key)).replace("-", "_")
        if kind not in KIND_KEYS:
            hint = did_you_mean(str(key), KIND_KEYS)
            kinds = "validators, samplers or webhook_handlers"
            problems.append(
                f"{head}plugins.{key}: unknown plugin kind{hint} (use {kinds})"
                if hint
                else f"{head}plugins.{key}: unknown plugin kind; use {kinds}"
            )
            continue
        out[kind], names[kind] = _kind_entries(value, head, kind, problems)
    top["plugins"] = out
    return top, names


def _kind_entries(value: Any, head: str, kind: str, problems: list[str]) -> tuple[list[Any], list[str]]:
    entries: list[Any] = []
    names: list[str] = []
    if isinstance(value, Mapping):  # TOML: [plugins.samplers.percentage-sampler]
        for name, entry in value.items():
            if not isinstance(entry, Mapping):
                problems.append(f"{head}{kind}.{name}: must be a table, got {type(entry).__name__}")
                continue
            entry = _snake_keys(entry)
            if "name" in entry and entry["name"] != name:
                problems.append(f"{head}{kind}.{name}.name: {entry['name']!r} differs from the table name {name!r}")
            entries.append({**entry, "name": name})
            names.append(str(name))
    elif isinstance(value, list):  # JSON / [[plugins.samplers]]: a list of entries with a name
        first: dict[str, int] = {}
        for index, entry in enumerate(value):
            if not isinstance(entry, Mapping):
                problems.append(f"{head}{kind}[{index}]: must be a table, got {type(entry).__name__}")
                continue
            entry = _snake_keys(entry)
            name = entry.get("name")
            if isinstance(name, str) and name in first:
                problems.append(
                    f"{head}{kind}[{index}].name: {name!r} is already the name of {kind}[{first[name]}]; "
                    "give each plugin of a kind its own name"
                )
                continue
            if isinstance(name, str) and name:
                first[name] = index
            entries.append(entry)
            names.append(str(name or f"[{index}]"))
    else:
        problems.append(f"{head}{kind}: must be a table of plugins or a list, got {type(value).__name__}")
    return entries, names


def _config_problems(
    exc: ValidationError,
    head: str,
    names: dict[str, list[str]],
    left_out: list[str],
    from_env: Mapping[tuple[str, ...], str],
) -> list[str]:
    problems = []
    variables = {join_path(path): variable for path, variable in from_env.items()}
    described = describe_validation_error(exc, model=LoopaiConfig)
    for line, error in zip(described, exc.errors(include_url=False), strict=True):
        loc = tuple(f"[{part}]" if isinstance(part, int) else str(part) for part in error["loc"])
        if len(loc) >= 3 and loc[0] == "plugins" and isinstance(error["loc"][2], int):
            index = int(error["loc"][2])
            kind_names = names.get(loc[1], [])
            loc = (loc[1], kind_names[index] if index < len(kind_names) else loc[2], *loc[3:])
        where = join_path(loc) or "(root)"
        if any(where == skip or where.startswith((f"{skip}.", f"{skip}[")) for skip in left_out):
            continue  # its variable is unset, and that was said
        variable = next((v for path, v in variables.items() if _related(where, path)), None)
        source = f"{variable}: " if variable is not None else head  # the value came from the environment
        problems.append(f"{source}{where}: {line.split(': ', 1)[1]}")
    return problems
