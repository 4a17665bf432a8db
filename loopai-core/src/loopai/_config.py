"""Configuration: where it is read from, its shape, ``${ENV}`` references, and its errors."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from loopai._documents import read_document
from loopai._errors import ConfigError, describe_validation_error
from loopai._plugin import Plugin, _snake
from loopai._redact import EnvValue
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
    "parse_config",
]

KIND_KEYS = ("validators", "samplers", "webhook_handlers")
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNSET: Final = object()
"""What a string becomes when a variable it references is not set: the value is left out."""
_PYPROJECT_SECTION = "tool.loopai."


def _lax_from_env(target: type) -> BeforeValidator:
    """Let a value that was exactly one ``${VAR}`` feed a strict field (``"5"`` -> 5)."""

    def coerce(value: Any) -> Any:
        if isinstance(value, EnvValue) and value.whole:
            try:
                return TypeAdapter(target).validate_python(str(value))
            except ValidationError:
                return value  # the strict field then says what it wanted and what it got
        return value

    return BeforeValidator(coerce)


# Strict, so that ``enabled = "false"`` in a file is an error, not True; a variable is text
# by nature, so ``enabled = "${ON}"`` is parsed as pydantic parses text.
_EnvBool = Annotated[StrictBool, _lax_from_env(bool)]
_EnvInt = Annotated[StrictInt, _lax_from_env(int)]


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
    enabled: _EnvBool = True
    priority: _EnvInt = 0
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

    stop_on_failure: _EnvBool = False
    max_retries: Annotated[_EnvInt, Field(ge=0)] = 3
    retry_backoff: Annotated[float, Field(ge=0)] = 0.5
    retry_max_backoff: Annotated[float, Field(ge=0)] = 30.0
    default_timeout: Annotated[float, Field(gt=0)] | None = None
    dry_run: _EnvBool = False


class DeliverySettings(_Strict):
    """Durable event delivery: where the outbox lives (a SQLite file, or ``:memory:``)."""

    outbox: str | None = None


class LoopaiConfig(_Strict):
    """The whole configuration. ``source`` is the file it came from (None: defaults)."""

    strict: _EnvBool = False
    autoload: _EnvBool = True
    trace: _EnvBool = False
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    plugins: PluginsConfiguration = Field(default_factory=PluginsConfiguration)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    tasks: dict[TaskId, TaskSettings] = Field(default_factory=dict)
    """``loopai run``'s tasks table (``[tasks."<task_id>"]``), when no ``--tasks`` file is given."""

    _source: Path | None = PrivateAttr(default=None)
    _label: str | None = PrivateAttr(default=None)
    _section: str = PrivateAttr(default="")

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from, or None for built-in defaults."""
        return self._source

    def where(self, kind: str, name: str) -> str:
        """How messages name a plugin's entry: ``loopai.toml: samplers.percentage-sampler``
        (``pyproject.toml: tool.loopai.samplers...`` when read from ``[tool.loopai]``).
        ``kind`` is the section's key: ``validators``, ``samplers`` or ``webhook_handlers``."""
        return f"{self.where_prefix()}{kind}.{name}"

    def where_prefix(self) -> str:
        """What :meth:`where` puts before the kind: ``loopai.toml: `` or ``pyproject.toml: tool.loopai.``."""
        return f"{self.source_label}: {self._section}"

    @property
    def source_label(self) -> str:
        """How error messages name the source: a path, the ``label`` given to
        :func:`loopai.parse_config`, or ``<defaults>``."""
        if self._label is not None:  # as load_config named it (relative to its ``cwd``) or parse_config's label
            return self._label
        if self._source is None:
            return "<defaults>"
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
    env = _References(environ)
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
        if where[0] in KIND_KEYS and where[2:3] == ("configuration",)
    )
    return Reading(config, problems, settings)


class _References:
    """Resolves ``${VAR}`` references; remembers unset variables and what was left out for them."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.missing: list[tuple[tuple[str, ...], str]] = []
        self.left_out: list[tuple[str, ...]] = []

    def resolve(self, value: Any, path: tuple[str, ...]) -> Any:
        """``value`` with its references resolved; a key or list holding an unset one is left out."""
        if isinstance(value, str):
            return self._substitute(value, path) if "$" in value else value
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item, (*path, str(key)))
                if resolved is _UNSET:
                    self.left_out.append((*path, str(key)))
                else:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            items = [self.resolve(item, (*path, f"[{index}]")) for index, item in enumerate(value)]
            return _UNSET if any(item is _UNSET for item in items) else items
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
            return _UNSET
        if not used:
            return text
        return EnvValue(text, tuple(used), whole=len(used) == 1 and _ENV_REF.fullmatch(value) is not None)


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
        kind = _snake(str(key)).replace("-", "_")
        if kind not in KIND_KEYS:
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
