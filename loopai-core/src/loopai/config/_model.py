"""The configuration's shape: pydantic models for plugins, dispatch, delivery and the tasks table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
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
    "LoopaiConfig",
    "PluginConfiguration",
    "PluginsConfiguration",
    "ServeSettings",
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


class DeliverySettings(_Strict):
    """Durable event delivery: where the outbox lives (a SQLite file, or ``:memory:``)."""

    outbox: str | None = None


def _no_empty_keys(keys: list[SecretStr]) -> list[SecretStr]:
    # An empty key would let an empty "Bearer " header in: refuse it rather than skip it silently.
    if any(not key.get_secret_value().strip() for key in keys):
        raise ValueError("an API key must not be empty (an unset ${VAR:-} gives one)")
    return keys


class ServeSettings(_Strict):
    """``loopai serve``: where it listens, who may call it, and its limits (``[serve]``).

    ``api_keys`` (``${VAR}`` allowed; ``LOOPAI_API_KEYS``, comma-separated, replaces them) are
    required on every ``/api/v1/*`` route but health; with none, only a loopback address may be
    bound unless ``--insecure-no-auth`` is given. ``inbound_secret`` verifies the signature of
    deliveries to ``/api/v1/webhooks/receive`` (refused without one). ``shutdown_timeout``:
    seconds requests in flight get to finish after SIGTERM. ``max_body_mb`` bounds a request
    body read whole (413 beyond; an NDJSON upload streams, and bounds each line instead);
    ``max_batch_items`` the items of a JSON batch body (413 beyond).
    """

    host: str = "127.0.0.1"
    port: Annotated[_EnvInt, Field(ge=0, le=65535)] = 8080
    workers: Annotated[_EnvInt, Field(ge=1)] = 1
    api_keys: Annotated[list[SecretStr], AfterValidator(_no_empty_keys)] = Field(default_factory=list)
    inbound_secret: SecretStr | None = None
    shutdown_timeout: Annotated[float, Field(ge=0)] = 10.0
    max_body_mb: Annotated[float, Field(gt=0)] = 10.0
    max_batch_items: Annotated[_EnvInt, Field(ge=1)] = 10_000


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
    serve: ServeSettings = Field(default_factory=ServeSettings)
    """``loopai serve``'s settings (``[serve]``)."""
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
