"""The configuration's shape: pydantic models for plugins, dispatch, delivery and the tasks table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

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

from loopai._kinds import Kind, kind_of
from loopai._plugin import Plugin
from loopai._redact import EnvValue
from loopai.config._tasks import TaskId, TaskSettings

__all__ = [
    "DeliverySettings",
    "DispatchSettings",
    "HostSettings",
    "LoopaiConfig",
    "PluginConfiguration",
    "PluginsConfiguration",
]


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
    requires_plugins: list[Annotated[str, Field(min_length=1)]] | None = None
    run_before: list[Annotated[str, Field(min_length=1)]] | None = None
    run_after: list[Annotated[str, Field(min_length=1)]] | None = None
    isolation: Literal["inline", "process"] | None = None
    workers: Annotated[_EnvInt, Field(ge=1, le=64)] | None = None
    memory_limit_mb: Annotated[_EnvInt, Field(gt=0)] | None = None
    cpu_time_limit_s: Annotated[float, Field(gt=0)] | None = None


class PluginsConfiguration(_Strict):
    """Configured plugins by kind (the seed's ``PluginsConfiguration``)."""

    validators: list[PluginConfiguration] = Field(default_factory=list)
    samplers: list[PluginConfiguration] = Field(default_factory=list)
    webhook_handlers: list[PluginConfiguration] = Field(default_factory=list)

    def for_kind(self, kind: Kind | type[Plugin] | str) -> list[PluginConfiguration]:
        """The entries of one kind (``loopai.SamplerPlugin``, ``"sampler"`` or ``"samplers"``)."""
        entries: list[PluginConfiguration] = getattr(self, kind_of(kind).key)
        return entries

    def find(self, kind: Kind | type[Plugin] | str, name: str) -> PluginConfiguration | None:
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


class HostSettings(_Strict):
    """A long-running host's reload triggers (see ``Host.reload``).

    ``watch_config``: reload when the configuration file changes (checked every
    ``watch_interval`` seconds; a change is acted on once the file has stayed the same for one
    more interval). ``reload_on_sighup``: an embedding application lets the host take SIGHUP
    (effective when the host is started in the main thread; a library never takes a signal
    on its own).
    """

    watch_config: _EnvBool = False
    watch_interval: Annotated[float, Field(gt=0, le=3600)] = 1.0
    reload_on_sighup: _EnvBool = False


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
    host: HostSettings = Field(default_factory=HostSettings)
    tasks: dict[TaskId, TaskSettings] = Field(default_factory=dict)
    """The tasks table (``[tasks."<task_id>"]``): schemas, sampling rate and thresholds per task."""

    _source: Path | None = PrivateAttr(default=None)
    _label: str | None = PrivateAttr(default=None)
    _section: str = PrivateAttr(default="")

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from, or None for built-in defaults."""
        return self._source

    def where(self, kind: Kind | str, name: str) -> str:
        """How messages name a plugin's entry: ``loopai.toml: samplers.percentage-sampler``
        (``pyproject.toml: tool.loopai.samplers...`` when read from ``[tool.loopai]``).
        ``kind`` is a :class:`~loopai._kinds.Kind` or any of its names."""
        return f"{self.where_prefix()}{kind_of(kind).key}.{name}"

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
