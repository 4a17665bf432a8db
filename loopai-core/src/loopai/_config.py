"""Configuration: where it is read from, its shape, ``${ENV}`` references, and its errors."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt, ValidationError

from loopai._documents import read_document
from loopai._errors import SECRET_KEY, ConfigError, describe_validation_error
from loopai._plugin import Plugin, _snake
from loopai._registry import kind_from
from loopai._run_tasks import TaskId, TaskSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DeliverySettings",
    "DispatchSettings",
    "LoopaiConfig",
    "PluginConfiguration",
    "PluginsConfiguration",
    "find_config",
    "load_config",
    "redact",
]

KIND_KEYS = ("validators", "samplers", "webhook_handlers")
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
REDACTED = "**********"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PluginConfiguration(_Strict):
    """One plugin's entry in the configuration (the seed's ``PluginConfiguration``).

    ``priority`` and ``enabled`` override the plugin's own values only when they are
    written in the file. ``configuration`` is validated against the plugin's settings
    model. ``timeout`` (seconds) bounds each hook call; ``factory`` (``module:attribute``)
    registers a plugin that is not installed as a package.
    """

    name: Annotated[str, Field(min_length=1)]
    type: str | None = None
    enabled: StrictBool = True
    priority: StrictInt = 0
    configuration: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[float, Field(gt=0)] | None = None
    factory: str | None = None


class PluginsConfiguration(_Strict):
    """Configured plugins by kind (the seed's ``PluginsConfiguration``)."""

    validators: list[PluginConfiguration] = Field(default_factory=list)
    samplers: list[PluginConfiguration] = Field(default_factory=list)
    webhook_handlers: list[PluginConfiguration] = Field(default_factory=list)

    def for_kind(self, kind: type[Plugin] | str) -> list[PluginConfiguration]:
        """The entries of one kind (``loopai.SamplerPlugin`` or ``"samplers"``)."""
        return {0: self.validators, 1: self.samplers, 2: self.webhook_handlers}[_kind_index(kind)]

    def find(self, kind: type[Plugin] | str, name: str) -> PluginConfiguration | None:
        """The entry for plugin ``name`` of ``kind``, or None."""
        return next((entry for entry in self.for_kind(kind) if entry.name == name), None)


class DispatchSettings(_Strict):
    """How the host calls plugins: stopping, retries, timeouts, dry run."""

    stop_on_failure: StrictBool = False
    max_retries: Annotated[StrictInt, Field(ge=0)] = 3
    retry_backoff: Annotated[float, Field(ge=0)] = 0.5
    retry_max_backoff: Annotated[float, Field(ge=0)] = 30.0
    default_timeout: Annotated[float, Field(gt=0)] | None = None
    dry_run: StrictBool = False


class DeliverySettings(_Strict):
    """Durable event delivery: where the outbox lives (a SQLite file, or ``:memory:``)."""

    outbox: str | None = None


class LoopaiConfig(_Strict):
    """The whole configuration. ``source`` is the file it came from (None: defaults)."""

    strict: StrictBool = False
    autoload: StrictBool = True
    trace: StrictBool = False
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    plugins: PluginsConfiguration = Field(default_factory=PluginsConfiguration)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    tasks: dict[TaskId, TaskSettings] = Field(default_factory=dict)
    """``loopai run``'s tasks table (``[tasks."<task_id>"]``), when no ``--tasks`` file is given."""

    _source: Path | None = PrivateAttr(default=None)
    _label: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from, or None for built-in defaults."""
        return self._source

    @property
    def source_label(self) -> str:
        """How error messages name the source: a path, or ``<defaults>``."""
        if self._source is None:
            return "<defaults>"
        if self._label is not None:  # as load_config named it, relative to its ``cwd``
            return self._label
        try:
            return str(self._source.relative_to(Path.cwd()))
        except ValueError:
            return str(self._source)


def _kind_index(kind: type[Plugin] | str) -> int:
    from loopai._registry import KINDS

    return KINDS.index(kind_from(kind))


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
            origin = "--config" if path is not None else "LOOPAI_CONFIG"
            raise ConfigError([f"{named}: configuration file not found (from {origin})"])
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
    accepted too. ``${VAR}`` and ``${VAR:-default}`` in strings are read from ``environ``.
    Raises :class:`loopai.ConfigError` listing every problem, each naming the file and field.
    """
    environ = os.environ if environ is None else environ
    found, how = find_config(path, environ=environ, cwd=cwd)
    if found is None:
        return LoopaiConfig()
    label = _label(found, cwd)
    document = read_document(found, label, how)
    config = parse_config(document, label=label, environ=environ)
    config._source = found.resolve()
    config._label = label
    return config


def parse_config(document: Any, *, label: str = "<config>", environ: Mapping[str, str] | None = None) -> LoopaiConfig:
    """Validate an already parsed document (a dict from TOML or JSON) into a :class:`LoopaiConfig`."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    if not isinstance(document, Mapping):
        raise ConfigError([f"{label}: the configuration must be a table/object, got {type(document).__name__}"])
    normalised, names = _normalise(document, label, problems)
    resolved = {
        key: _resolve_plugins(value, names, environ, label, problems)
        if key == "plugins" and isinstance(value, dict)
        else _resolve_env(value, environ, label, (str(key),), problems)
        for key, value in normalised.items()
    }
    # Every problem of the file at once: structure, environment, fields and kinds.
    plugins = resolved.get("plugins")
    for kind, entries in plugins.items() if isinstance(plugins, dict) else ():
        for entry, name in zip(entries, names.get(kind, ()), strict=True):
            given = entry.get("type")
            if isinstance(given, str) and not _same_kind(given, kind):
                problems.append(
                    f"{label}: {kind}.{name}.type: {given!r} does not match the section {kind!r} "
                    "(use validator, sampler or webhook-handler, or leave it out)"
                )
    try:
        config = LoopaiConfig.model_validate(resolved)
    except ValidationError as exc:
        problems.extend(_config_problems(exc, label, names))
    if problems:
        raise ConfigError(problems)
    return config


def _resolve_plugins(
    plugins: dict[str, list[Any]],
    names: dict[str, list[str]],
    environ: Mapping[str, str],
    label: str,
    problems: list[str],
) -> dict[str, list[Any]]:
    # Name plugins, not list indexes, where a reference is missing: samplers.slack.configuration.token
    return {
        kind: [
            _resolve_env(e, environ, label, (kind, n), problems)
            for e, n in zip(entries, names.get(kind, ()), strict=True)
        ]
        for kind, entries in plugins.items()
    }


def _same_kind(given: str, kind: str) -> bool:
    try:
        return kind_from(given) is kind_from(kind)
    except ValueError:
        return False


def _label(found: Path, cwd: str | os.PathLike[str] | None) -> str:
    try:
        return str(found.resolve().relative_to(Path(cwd or Path.cwd()).resolve()))
    except ValueError:
        return str(found)


def _snake_keys(table: Mapping[str, Any]) -> dict[str, Any]:
    return {_snake(str(key)): value for key, value in table.items()}


def _normalise(
    document: Mapping[str, Any], label: str, problems: list[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Snake-case the structural keys and turn ``[plugins.<kind>.<name>]`` tables into lists.

    Returns the document and, per kind, the plugin names in list order (to name plugins,
    not list indexes, in error messages).
    """
    top = _snake_keys(document)
    if set(top) == {"loopai"} and isinstance(top["loopai"], Mapping):  # the seed's appsettings.json
        top = _snake_keys(top["loopai"])
    names: dict[str, list[str]] = {}
    plugins = top.get("plugins")
    if plugins is None:
        return top, names
    if not isinstance(plugins, Mapping):
        problems.append(f"{label}: plugins: must be a table, got {type(plugins).__name__}")
        del top["plugins"]  # reported once, here, rather than again by the model
        return top, names
    out: dict[str, Any] = {}
    for key, value in plugins.items():
        kind = _snake(str(key)).replace("-", "_")
        if kind not in KIND_KEYS:
            problems.append(
                f"{label}: plugins.{key}: unknown plugin kind; use validators, samplers or webhook_handlers"
            )
            continue
        entries, kind_names = _kind_entries(value, f"{label}: {kind}", problems)
        out[kind] = entries
        names[kind] = kind_names
    top["plugins"] = out
    return top, names


def _kind_entries(value: Any, where: str, problems: list[str]) -> tuple[list[Any], list[str]]:
    entries: list[Any] = []
    if isinstance(value, Mapping):  # TOML: [plugins.samplers.percentage-sampler]
        for name, entry in value.items():
            if not isinstance(entry, Mapping):
                problems.append(f"{where}.{name}: must be a table, got {type(entry).__name__}")
                continue
            entry = _snake_keys(entry)
            if "name" in entry and entry["name"] != name:
                problems.append(f"{where}.{name}.name: {entry['name']!r} differs from the table name {name!r}")
            entries.append({**entry, "name": name})
    elif isinstance(value, list):  # JSON / [[plugins.samplers]]: a list of entries with a name
        for index, entry in enumerate(value):
            if not isinstance(entry, Mapping):
                problems.append(f"{where}[{index}]: must be a table, got {type(entry).__name__}")
                continue
            entries.append(_snake_keys(entry))
    else:
        problems.append(f"{where}: must be a table of plugins or a list, got {type(value).__name__}")
    names = [str(e.get("name") or f"[{i}]") for i, e in enumerate(entries)]
    return entries, names


def _resolve_env(value: Any, environ: Mapping[str, str], label: str, path: tuple[str, ...], problems: list[str]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(
                f"{label}: {'.'.join(path) or '(root)'}: environment variable {name} is not set "
                f"(export it, or write ${{{name}:-default}})"
            )
            return ""

        return _ENV_REF.sub(substitute, value) if "$" in value else value
    if isinstance(value, Mapping):
        return {k: _resolve_env(v, environ, label, (*path, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, environ, label, (*path, f"[{i}]"), problems) for i, v in enumerate(value)]
    return value


def _config_problems(exc: ValidationError, label: str, names: dict[str, list[str]]) -> list[str]:
    problems = []
    for line, error in zip(describe_validation_error(exc), exc.errors(include_url=False), strict=True):
        loc = tuple(error["loc"])
        message = line.split(": ", 1)[1]
        if len(loc) >= 3 and loc[0] == "plugins" and isinstance(loc[2], int):
            kind = str(loc[1])
            kind_names = names.get(kind, [])
            name = kind_names[loc[2]] if loc[2] < len(kind_names) else f"[{loc[2]}]"
            rest = ".".join(str(part) for part in loc[3:])
            where = f"{kind}.{name}" + (f".{rest}" if rest else "")
        else:
            where = ".".join(str(part) for part in loc) or "(root)"
        problems.append(f"{label}: {where}: {message}")
    return problems


def redact(value: Any, *, key: str = "") -> Any:
    """A copy of ``value`` safe to print: secrets and secret-looking keys become ``**********``."""
    from pydantic import SecretBytes, SecretStr

    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if key and SECRET_KEY.search(key) and isinstance(value, (str, bytes)) and value:
        return REDACTED
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key=key) for v in value]
    return value
