"""The configuration's shape: pydantic models for plugins, dispatch, delivery and the tasks table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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
    field_validator,
    model_validator,
)

from loopai._kinds import Kind, kind_of
from loopai._redact import REDACTED, EnvValue, redact
from loopai.config._lines import with_lines
from loopai.config._tasks import TaskId, TaskTable

if TYPE_CHECKING:
    from loopai._plugin import Plugin

__all__ = [
    "DeliverySettings",
    "DispatchSettings",
    "HostSettings",
    "LoopaiConfig",
    "PluginConfiguration",
    "PluginsConfiguration",
    "ServeSettings",
    "StateSettings",
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

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() end up in logs and tracebacks: they never show a secret (see _shown).
        for name, value in super().__repr_args__():
            yield name, _shown(name, value)


def _shown(name: str | None, value: Any) -> Any:
    """A value as repr() shows it: nested models as they are (they hide their own), plugin settings
    with every text hidden (without the plugin's model nothing tells which text is a secret), and the
    rest as :func:`loopai._redact.redact` has it (secret-looking keys, ``${SECRET}`` values, URL passwords)."""
    if isinstance(value, BaseModel) or (isinstance(value, list) and all(isinstance(v, BaseModel) for v in value)):
        return value
    if name == "configuration":
        return _hide_text(value)
    return redact(value, key=name or "")


def _hide_text(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        return REDACTED if value else value
    if isinstance(value, dict):
        return {key: _hide_text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hide_text(item) for item in value]
    return value


class PluginConfiguration(_Strict):
    """One plugin's entry in the configuration (the seed's ``PluginConfiguration``).

    ``priority`` and ``enabled`` override the plugin's own values only when they are
    written in the file. ``configuration`` is validated against the plugin's settings
    model. ``timeout`` (seconds) bounds each hook call; ``factory`` (``module:attribute``)
    registers a plugin that is not installed as a package. ``tasks`` (task ids) runs a
    validator or sampler only for records of those tasks (None: every task).
    """

    name: Annotated[str, Field(min_length=1)]
    type: str | None = None
    enabled: _EnvBool = True
    priority: _EnvInt = 0
    configuration: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[float, Field(gt=0)] | None = None
    factory: str | None = None
    tasks: list[TaskId] | None = None
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

    @model_validator(mode="after")
    def _tasks_only_for_validators_and_samplers(self) -> PluginsConfiguration:
        scoped = [entry.name for entry in self.webhook_handlers if entry.tasks is not None]
        if scoped:
            raise ValueError(
                f"tasks applies to validators and samplers, not to webhook handlers ({', '.join(scoped)}); "
                "a handler gets every event it supports: set its events instead"
            )
        return self

    def for_kind(self, kind: Kind | type[Plugin] | str) -> list[PluginConfiguration]:
        """The entries of one kind (``loopai.SamplerPlugin``, ``"sampler"`` or ``"samplers"``)."""
        entries: list[PluginConfiguration] = getattr(self, kind_of(kind).key)
        return entries

    def find(self, kind: Kind | type[Plugin] | str, name: str) -> PluginConfiguration | None:
        """The entry for plugin ``name`` of ``kind``, or None."""
        return next((entry for entry in self.for_kind(kind) if entry.name == name), None)


class DispatchSettings(_Strict):
    """How the host calls plugins: stopping, retries, timeouts, dry run.

    ``stall_notice`` (seconds, 0 for never): how long one plugin call may hold ``loopai run`` up
    before the run says which plugin and line it waits for (and again each time the wait doubles).
    """

    stop_on_failure: _EnvBool = False
    max_retries: Annotated[_EnvInt, Field(ge=0)] = 3
    retry_backoff: Annotated[float, Field(ge=0)] = 0.5
    retry_max_backoff: Annotated[float, Field(ge=0)] = 30.0
    default_timeout: Annotated[float, Field(gt=0)] | None = None
    dry_run: _EnvBool = False
    stall_notice: Annotated[float, Field(ge=0)] = 10.0


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
    """Durable event delivery (``[delivery]``): where the outbox lives and how its workers deliver.

    With an outbox, ``emit`` records the event and returns; workers in the host's process
    deliver due deliveries in the background, each handler with at most ``max_in_flight`` at
    once. A failed attempt is retried later, scheduled in the outbox (``[dispatch]``
    ``retry_backoff`` doubling up to ``retry_max_backoff``, with jitter, or the receiver's
    ``Retry-After`` up to ``retry_after_limit``), until ``[dispatch] max_retries`` retries
    made it dead. After ``circuit_failures`` consecutive failures a handler's circuit opens:
    its deliveries wait ``circuit_cooldown`` seconds, then one is tried as a probe. Closing
    the host waits up to ``drain_timeout`` seconds for deliveries due by then; the rest stays
    pending for the next start or ``loopai events deliver``.
    """

    outbox: str | None = None
    """The outbox: a SQLite file (relative to the configuration file), ``:memory:``, or a
    ``postgresql://`` URL (the outbox every replica naming that database shares). Not set: with
    ``[state] url``, in the state's database; else this configuration file's own in the user's state
    folder, ``outboxes/<folder>-<digest>.sqlite3`` (``loopai events where`` prints it; see
    :func:`loopai.delivery.default_outbox_path`), so that two projects never deliver each other's
    events; ``outboxes/default.sqlite3`` there without a configuration file."""
    workers: _EnvBool = True
    """Deliver in the process that emits; false: only record, and let a sidecar deliver
    (``loopai events deliver --follow``, which delivers whatever this says)."""
    max_in_flight: Annotated[_EnvInt, Field(ge=1)] = 8
    """Deliveries in flight at once, per handler (a handler may set its own, lower: the console's is 1)."""
    drain_timeout: Annotated[float, Field(ge=0)] = 10.0
    """Seconds closing the host waits for due deliveries; what is left stays pending."""
    retry_after_limit: Annotated[float, Field(ge=0)] = 300.0
    """The longest ``Retry-After`` honoured, in seconds (never below ``retry_max_backoff``)."""
    circuit_failures: Annotated[_EnvInt, Field(ge=0)] = 5
    """Consecutive failed attempts that open a handler's circuit (0: never)."""
    circuit_cooldown: Annotated[float, Field(gt=0)] = 30.0
    """Seconds an open circuit waits before its probe."""
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    """Seconds between two looks at the outbox for work recorded by other processes."""
    lease: Annotated[float, Field(gt=0)] | None = None
    """Seconds a claimed delivery is reserved for its worker; a worker that is gone loses it then.
    Default: 300 for a SQLite outbox (a process of this machine that is gone loses it at once), 30
    for PostgreSQL (renewed every lease/3 seconds while the worker lives)."""


class StateSettings(_Strict):
    """Where per-task state lives: in the process (no ``url``), or in a PostgreSQL database shared by
    every process that names it (``url``, overridden by ``LOOPAI_STATE_URL``).

    ``unavailable_timeout`` (seconds): how long a process keeps retrying, with backoff, while the
    database is unreachable (a restart, a failover) before its calls fail.
    """

    url: str | None = None
    unavailable_timeout: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql://user@host:5432/database URL")
        return value

    def database_url(self, environ: Mapping[str, str]) -> str | None:
        """``LOOPAI_STATE_URL`` when set, else ``url``: the shared database, or None for in-process state."""
        return environ.get("LOOPAI_STATE_URL") or self.url


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
    state: StateSettings = Field(default_factory=StateSettings)
    """Per-task state: in the process, or in PostgreSQL (``[state] url``) shared by many processes."""
    host: HostSettings = Field(default_factory=HostSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    """``loopai serve``'s settings (``[serve]``)."""
    tasks: TaskTable = Field(default_factory=dict)
    """The tasks table (``[tasks."<task_id>"]``): schemas, sampling rate and thresholds per task."""

    _source: Path | None = PrivateAttr(default=None)
    _label: str | None = PrivateAttr(default=None)
    _section: str = PrivateAttr(default="")
    _variables: dict[str, str] = PrivateAttr(default_factory=dict)
    """The places ``LOOPAI_*__*`` variables set (``webhook_handlers.h.configuration.url``) and their names."""
    _searched: bool = PrivateAttr(default=False)

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from, or None for built-in defaults."""
        return self._source

    @property
    def searched(self) -> bool:
        """Whether :func:`loopai.load_config` made this configuration, having looked for its file (found
        or not); False for one made in code. A host's reload looks for the file again only then: a
        ``loopai.toml`` created after a service started without one is found."""
        return self._searched

    def where(self, kind: Kind | str, name: str) -> str:
        """How messages name a plugin's entry: ``loopai.toml: samplers.percentage-sampler``
        (``pyproject.toml: tool.loopai.samplers...`` when read from ``[tool.loopai]``).
        ``kind`` is a :class:`~loopai._kinds.Kind` or any of its names."""
        return f"{self.where_prefix()}{kind_of(kind).key}.{name}"

    def with_lines(self, messages: Iterable[str]) -> list[str]:
        """``messages`` with the line of this configuration's file that each names, where the file
        writes it: ``loopai.toml: samplers.s.priority: ...`` becomes ``loopai.toml:7:
        samplers.s.priority: ...`` (see :func:`loopai.config.with_lines`); as they are when the
        configuration was not read from a file."""
        messages = [self.by_variable(message) for message in messages]
        if self._source is None:
            return messages
        return [message for message, _ in with_lines(messages, self._source, self.source_label)]

    def by_variable(self, message: str) -> str:
        """``message`` naming the ``LOOPAI_*`` variable that set the place it is about, instead of the
        file: ``LOOPAI_PLUGINS__SAMPLERS__S__CONFIGURATION__RATE: samplers.s.rate: ...``. A plugin's
        own entry is the variable's only when no file was read (the variable made the entry)."""
        if not self._variables:
            return message
        return "\n".join(self._line_by_variable(line) for line in message.split("\n"))

    def _line_by_variable(self, line: str) -> str:
        prefix = self.where_prefix()
        if not line.startswith(prefix):
            return line
        place = line[len(prefix) :].split(": ", 1)[0]
        for path, variable in self._variables.items():
            settings = path.replace(".configuration.", ".", 1)  # plugins name their settings without it
            inside = any(place == p or place.startswith((f"{p}.", f"{p}[")) for p in (path, settings))
            made = self._source is None and path.startswith(f"{place}.")
            if inside or made:
                return f"{variable}: {line[len(prefix) - len(self._section) :]}"
        return line

    def variable_of(self, path: str) -> str | None:
        """The ``LOOPAI_*`` variable that set the value at ``path`` (``deny``, ``dispatch.max_retries``), if one did."""
        return self._variables.get(path)

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
