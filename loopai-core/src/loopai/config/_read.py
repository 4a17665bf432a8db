"""Reading the configuration: where it is found, parsing TOML or JSON, ``${VAR}`` references, every error at once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from loopai._errors import ConfigError, describe_validation_error
from loopai._kinds import KINDS, kind_of
from loopai._plugin import snake
from loopai.config._documents import read_document, tomllib
from loopai.config._env import References
from loopai.config._model import LoopaiConfig

__all__ = ["Reading", "find_config", "load_config", "parse_config", "read_config"]

_KIND_KEYS = tuple(kind.key for kind in KINDS)
_PYPROJECT_SECTION = "tool.loopai."


def find_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Path | None, str]:
    """Which file to read and how: ``(path, "toml" | "json" | "pyproject")``, or ``(None, "defaults")``.

    Order: ``path``, else ``$LOOPAI_CONFIG``, else ``./loopai.toml``, else ``[tool.loopai]``
    in ``./pyproject.toml``, else built-in defaults. A named file that does not exist is
    a :class:`loopai.ConfigError`.
    """
    environ = os.environ if environ is None else environ
    here = Path(cwd) if cwd is not None else Path.cwd()
    named = path if path is not None else environ.get("LOOPAI_CONFIG") or None
    if named is not None:
        chosen = here / Path(named)
        if not chosen.is_file():
            origin = "" if path is not None else " (from LOOPAI_CONFIG)"
            raise ConfigError([f"{named}: configuration file not found{origin}"])
        if chosen.name == "pyproject.toml":
            return chosen, "pyproject"
        return chosen, "json" if chosen.suffix.lower() == ".json" else "toml"
    if (here / "loopai.toml").is_file():
        return here / "loopai.toml", "toml"
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        try:
            with pyproject.open("rb") as handle:
                if "loopai" in tomllib.load(handle).get("tool", {}):
                    return pyproject, "pyproject"
        except tomllib.TOMLDecodeError:
            return None, "defaults"  # someone else's broken pyproject is not our configuration
    return None, "defaults"


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> LoopaiConfig:
    """Find (see :func:`find_config`), read and validate the configuration.

    TOML shape: ``[plugins.<kind>.<name>]`` tables with ``enabled``, ``priority``,
    ``timeout``, ``metadata`` and a ``configuration`` table. The seed's JSON shape
    (``{"Loopai": {"Plugins": {"Samplers": [{"Name": ...}]}}}``) with PascalCase keys is
    accepted too; other top-level sections of such a file are not loopai's and are
    ignored. ``${VAR}`` and ``${VAR:-default}`` in strings are read from ``environ``.
    Raises :class:`loopai.ConfigError` listing every problem, each naming the file and
    field (``tool.loopai.``-prefixed for ``pyproject.toml``).
    """
    reading = read_config(path, environ=environ, cwd=cwd)
    if reading.config is None or reading.problems:
        raise ConfigError(reading.problems)
    return reading.config


class Reading(NamedTuple):
    """What reading a configuration found.

    ``config`` is None when the file could not be read or its shape is wrong; it is set
    even with ``problems`` otherwise (a value whose variable is unset is left out), so that
    ``loopai config check`` can go on to check plugin settings. ``left_out`` names those
    settings as plugin problems do (``loopai.toml: samplers.s.token``).
    """

    config: LoopaiConfig | None
    problems: list[str]
    left_out: tuple[str, ...] = ()

    def already_reported(self, problem: str) -> bool:
        """Whether a plugin ``problem`` is about a setting left out because its variable is unset."""
        return any(re.search(re.escape(where) + r"[.\[:]", problem) for where in self.left_out)


def read_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Reading:
    """Like :func:`load_config`, but returns every problem instead of raising."""
    environ = os.environ if environ is None else environ
    try:
        found, how = find_config(path, environ=environ, cwd=cwd)
        if found is None:
            return Reading(LoopaiConfig(), [])
        label = _label(found, cwd)
        document = read_document(found, label, how)
    except ConfigError as exc:
        return Reading(None, exc.problems)
    section = _PYPROJECT_SECTION if how == "pyproject" else ""
    reading = _parse(document, label, environ, section)
    if reading.config is not None:
        reading.config._source = found.resolve()
        reading.config._section = section
    return reading


def parse_config(document: Any, *, label: str = "<config>", environ: Mapping[str, str] | None = None) -> LoopaiConfig:
    """Validate an already parsed document (a dict from TOML or JSON) into a :class:`LoopaiConfig`.

    ``label`` names the source in every message, the configuration's included.
    """
    reading = _parse(document, label, os.environ if environ is None else environ)
    if reading.config is None or reading.problems:
        raise ConfigError(reading.problems)
    return reading.config


def _parse(document: Any, label: str, environ: Mapping[str, str], section: str = "") -> Reading:
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
    problems.extend(
        f"{head}{_join(where)}: environment variable {name} is not set (export it, or write ${{{name}:-default}})"
        for where, name in env.missing
    )
    # Every problem of the file at once: structure, environment, fields and kinds.
    for kind, entries in resolved.get("plugins", {}).items():
        for entry, name in zip(entries, names.get(kind, ()), strict=True):
            given = entry.get("type")
            if isinstance(given, str) and not _same_kind(given, kind):
                problems.append(
                    f"{head}{_join((kind, name, 'type'))}: {given!r} does not match the section {kind!r} "
                    "(use validator, sampler or webhook-handler, or leave it out)"
                )
    left_out = [_join(where) for where in env.left_out]
    config: LoopaiConfig | None = None
    try:
        config = LoopaiConfig.model_validate(resolved)
        config._label = label
    except ValidationError as exc:
        problems.extend(_config_problems(exc, head, names, left_out))
    settings = tuple(
        f"{label}: {_join((*where[:2], *where[3:]))}"
        for where in env.left_out
        if where[0] in _KIND_KEYS and where[2:3] == ("configuration",)
    )
    return Reading(config, problems, settings)


def _same_kind(given: str, kind: str) -> bool:
    try:
        return kind_of(given) is kind_of(kind)
    except ValueError:
        return False


def _label(found: Path, cwd: str | os.PathLike[str] | None) -> str:
    try:
        return str(found.resolve().relative_to(Path(cwd or Path.cwd()).resolve()))
    except ValueError:
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
        if kind not in _KIND_KEYS:
            problems.append(f"{head}plugins.{key}: unknown plugin kind; use validators, samplers or webhook_handlers")
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


def _join(parts: tuple[str, ...]) -> str:
    """``("samplers", "[0]", "name")`` -> ``samplers[0].name``."""
    return "".join(part if not index or part.startswith("[") else f".{part}" for index, part in enumerate(parts))


def _config_problems(exc: ValidationError, head: str, names: dict[str, list[str]], left_out: list[str]) -> list[str]:
    problems = []
    for line, error in zip(describe_validation_error(exc), exc.errors(include_url=False), strict=True):
        loc = tuple(f"[{part}]" if isinstance(part, int) else str(part) for part in error["loc"])
        if len(loc) >= 3 and loc[0] == "plugins" and isinstance(error["loc"][2], int):
            index = int(error["loc"][2])
            kind_names = names.get(loc[1], [])
            loc = (loc[1], kind_names[index] if index < len(kind_names) else loc[2], *loc[3:])
        where = _join(loc) or "(root)"
        if any(where == skip or where.startswith((f"{skip}.", f"{skip}[")) for skip in left_out):
            continue  # its variable is unset, and that was said
        problems.append(f"{head}{where}: {line.split(': ', 1)[1]}")
    return problems
