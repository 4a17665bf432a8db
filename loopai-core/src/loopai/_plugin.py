"""Base classes for plugins: identity, runtime enable/priority, and typed settings."""

from __future__ import annotations

import abc
import weakref
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from loopai._case import kebab, snake
from loopai._errors import PluginError, PluginSettingsError, describe_validation_error
from loopai._models import (
    ExecutionRecord,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
    WebhookEventType,
    WebhookHandlerContext,
)
from loopai._switches import (
    ISOLATION_MODES,
    Switch,
    as_given,
    flag,
    integer,
    isolation_mode,
    megabytes,
    names,
    retries,
    seconds,
    switches,
    workers,
)

__all__ = [
    "ALL_EVENTS",
    "ISOLATION_MODES",
    "Plugin",
    "SamplerPlugin",
    "ValidatorPlugin",
    "WebhookHandlerPlugin",
    "broken_defaults",
    "validate_settings",
]

ALL_EVENTS: frozenset[WebhookEventType] = frozenset(WebhookEventType)


_SETTINGS_CONFIG = ConfigDict(extra="forbid", populate_by_name=True)


def _strict_model(model: type[BaseModel]) -> type[BaseModel]:
    """The same settings model, refusing unknown keys and taking field names as well as
    aliases (cached on the model class)."""
    cached = model.__dict__.get("__loopai_strict__")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if all(model.model_config.get(key) == value for key, value in _SETTINGS_CONFIG.items()):
        strict = model
    else:
        config = ConfigDict(**{**model.model_config, **_SETTINGS_CONFIG})
        strict = type(model.__name__, (model,), {"model_config": config, "__module__": model.__module__})
    type.__setattr__(model, "__loopai_strict__", strict)
    return strict


def _normalise_keys(model: type[BaseModel], raw: Mapping[str, Any]) -> dict[str, Any]:
    # The seed's JSON uses PascalCase keys; accept them when they name a field.
    known = set(model.model_fields)
    for field in model.model_fields.values():
        if field.alias:
            known.add(field.alias)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        snaked = snake(key)
        out[key if key in known or snaked not in known else snaked] = value
    return out


def validate_settings(model: type[BaseModel] | None, raw: Any, where: str) -> Any:
    """Validate ``raw`` settings against ``model``; unknown keys are refused.

    ``where`` prefixes every problem line (``loopai.toml: samplers.percentage-sampler``).
    Returns a model instance, or ``dict(raw)`` when the plugin declares no model.
    Raises :class:`loopai.PluginSettingsError` listing every wrong field (a setting that ``raw``
    leaves out and whose default breaks its own field's constraints among them: see
    :func:`broken_defaults`), and
    :class:`loopai.PluginError` when ``model`` is not a pydantic model.
    """
    if model is None:
        return dict(raw or {})
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(
            where,
            f"{where}: {getattr(model, '__qualname__', model)!s} must subclass pydantic.BaseModel to declare "
            "the plugin's settings (class Config(BaseModel): ...)",
        )
    if isinstance(raw, model):
        settings = raw
    else:
        if isinstance(raw, BaseModel):
            raw = raw.model_dump()
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise PluginSettingsError(where, [f"{where}: settings must be a table, got {type(raw).__name__}"])
        try:
            settings = _strict_model(model).model_validate(_normalise_keys(model, raw))
        except ValidationError as exc:
            raise PluginSettingsError(where, describe_validation_error(exc, where, model)) from None
    broken = broken_defaults(model, settings, where)
    if broken:
        raise PluginSettingsError(where, [line for lines in broken.values() for line in lines])
    return settings


def broken_defaults(model: type[BaseModel], settings: BaseModel | None, where: str) -> dict[str, list[str]]:
    """The settings of ``settings`` (an instance of ``model``; None: the defaults alone) that took a
    default breaking its own field's constraints, by field name, each with the lines that say so
    (one per broken constraint); empty when there is none.

    pydantic does not validate defaults, so ``rate: float = Field(default=1.5, le=1)`` would reach
    the plugin unseen. Each line names the setting (after ``where``), the constraint, the default and
    what to do: ``loopai.toml: samplers.s.rate: must be <= 1 (got 1.5): that is the default of
    S.Config.rate, which breaks its own field's constraints; set rate in the configuration, or fix
    the default in the plugin ...``. The host refuses such settings (:func:`validate_settings`) as it
    refuses a wrong value, and :func:`loopai.testing.check_settings` reports them.
    """
    if settings is None:
        settings = model.model_construct()
    given = settings.model_fields_set
    defaulted = {name for name, field in model.model_fields.items() if name not in given and not field.is_required()}
    if not defaulted:
        return {}
    try:
        _strict_model(model).model_validate(settings.model_dump())
    except ValidationError as exc:
        lines = describe_validation_error(exc, where, model)
        errors = exc.errors(include_url=False)
    else:
        return {}
    owner = getattr(model, "__qualname__", model.__name__)
    broken: dict[str, list[str]] = {}
    for error, line in zip(errors, lines, strict=True):
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in defaulted:
            broken.setdefault(field, []).append(
                f"{line}: that is the default of {owner}.{field}, which breaks its own field's constraints; "
                f"set {field} in the configuration, or fix the default in the plugin (or ask its maintainers to)"
            )
    return broken


class _PickledSettings:
    """A plugin's validated settings as plain values, for the trip into a worker process."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values


class Plugin(abc.ABC):
    """What every loopai plugin is: a name, a version, an on/off switch and a priority.

    Subclasses set the identity as class attributes (``name = "my-validator"``,
    ``priority = 100``...) and may declare their settings as a pydantic model in a nested
    class ``Config``. The host validates configured settings against it (unknown keys
    refused) and the plugin finds the typed result in ``self.config``.

    ``enabled`` and ``priority`` may be changed at any time, from any thread; every host
    that holds the plugin uses the new value from its next call. These attributes (below too)
    take what the configuration's keys of the same names take, set in the class body, as
    constructor keywords or on an instance: ``enabled = "false"``, ``priority = 1.9`` or
    ``timeout = -1`` raise ``TypeError`` / ``ValueError`` naming the plugin, the attribute, the
    value and what is allowed.

    Order and dependencies (class attributes, or the configuration's keys of the same names):
    ``run_before`` / ``run_after`` name plugins of the same kind this one is called before /
    after (priority orders what they leave free); ``requires_plugins`` names plugins of any
    kind without which this one is disabled (status ``missing-plugin``). Isolation:
    ``isolation = "process"`` runs the hooks in ``workers`` worker processes with
    ``memory_limit_mb``, ``cpu_time_limit_s`` and ``timeout`` enforced (see the plugin
    development guide); the instance is then pickled into each worker, so keep clients and
    connections out of ``__init__`` and open them in ``startup``.
    """

    name: str = ""
    description: str = ""
    version: str = "0.0.0"
    author: str = ""

    Config: ClassVar[type[BaseModel] | None] = None

    if TYPE_CHECKING:  # to type checkers, plain attributes that subclasses may set in their body
        enabled: bool
        priority: int
        timeout: float | None
        requires_plugins: Sequence[str]
        run_before: Sequence[str]
        run_after: Sequence[str]
        isolation: str
        workers: int
        memory_limit_mb: int | None
        cpu_time_limit_s: float | None
    else:
        enabled = Switch(flag, "Whether hosts call this plugin; takes effect on their next call.")
        priority = Switch(
            integer,
            "Higher runs earlier, among what run_before/run_after leave free; ties are ordered by name. "
            "Takes effect on the next call.",
        )
        timeout = Switch(
            seconds,
            "Seconds a single hook call may take before the host gives up on it (an isolated plugin's "
            "worker is killed and replaced); None: no limit.",
        )
        requires_plugins = Switch(
            names,
            "Names of plugins (of any kind) that must be loaded and enabled for this one to run; when one "
            "is not, the host disables this plugin (status missing-plugin).",
        )
        run_before = Switch(names, "Plugins of the same kind this one is called before (absent names are ignored).")
        run_after = Switch(names, "Plugins of the same kind this one is called after (absent names are ignored).")
        isolation = Switch(
            isolation_mode,
            '"inline" (default): hooks run in the host\'s process; "process": in worker subprocesses, '
            "with the resource limits below.",
        )
        workers = Switch(workers, 'Worker processes of an isolated plugin (isolation = "process"); default 1.')
        memory_limit_mb = Switch(
            megabytes,
            "Address-space limit of each worker process of an isolated plugin, in MB; None: no limit.",
        )
        cpu_time_limit_s = Switch(
            seconds,
            "CPU seconds one hook call of an isolated plugin may use (whole seconds, rounded up); None: no limit.",
        )

    _default_enabled: ClassVar[bool] = True
    _default_priority: ClassVar[int] = 0
    _default_timeout: ClassVar[float | None] = None
    _default_requires_plugins: ClassVar[tuple[str, ...]] = ()
    _default_run_before: ClassVar[tuple[str, ...]] = ()
    _default_run_after: ClassVar[tuple[str, ...]] = ()
    _default_isolation: ClassVar[str] = "inline"
    _default_workers: ClassVar[int] = 1
    _default_memory_limit_mb: ClassVar[int | None] = None
    _default_cpu_time_limit_s: ClassVar[float | None] = None

    _loopai_kind: ClassVar[str] = "plugin"
    """How error messages name this kind of plugin (``validator 'v': ...``)."""

    config: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # ``priority = 50`` in a class body must not hide the switches that tell hosts about
        # runtime changes: keep the value as the class default instead. A property of the
        # subclass's own (a data descriptor) replaces the switch, and tells hosts itself.
        if not cls.__dict__.get("name"):
            # Each class is its own plugin: without a name of its own it gets one from
            # its class name (``BusinessRuleValidator`` -> ``business-rule-validator``).
            cls.name = kebab(cls.__name__)
        # Checked as on an instance: ``enabled = "no"`` fails the class statement, naming the plugin.
        for attr, switch in switches(cls):
            if attr in cls.__dict__ and not hasattr(type(cls.__dict__[attr]), "__set__"):
                type.__setattr__(cls, f"_default_{attr}", switch.check(cls, cls.__dict__[attr]))
                type.__delattr__(cls, attr)

    def __init__(
        self,
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        enabled: bool | None = None,
        priority: int | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        if enabled is not None:
            self.__dict__["_enabled"] = vars(Plugin)["enabled"].check(self, enabled)
        if priority is not None:
            self.__dict__["_priority"] = vars(Plugin)["priority"].check(self, priority)
        self.metadata: dict[str, str] = {}
        model = type(self).Config
        self.config = {} if model is None and config is None else validate_settings(model, config, self.name)

    # -- runtime changes ----------------------------------------------------------------

    def configure(self, config: BaseModel | Mapping[str, Any] | None, *, where: str | None = None) -> None:
        """Validate and apply new settings (raises :class:`loopai.PluginSettingsError`)."""
        self.config = validate_settings(type(self).Config, config, where or self.name)
        self._loopai_changed()

    def _loopai_changed(self) -> None:
        for ref in list(self.__dict__.get("_loopai_watchers", ())):
            registry = ref()
            if registry is not None:
                registry._bump()

    def _loopai_watch(self, registry: Any) -> None:
        # Weak references in a plain list (a WeakSet costs more than the rest of registering
        # a plugin): a plugin must not keep a discarded registry alive.
        watchers = self.__dict__.setdefault("_loopai_watchers", [])
        watchers[:] = [ref for ref in watchers if ref() is not None and ref() is not registry]
        watchers.append(weakref.ref(registry))

    def _loopai_unwatch(self, registry: Any) -> None:
        watchers = self.__dict__.get("_loopai_watchers")
        if watchers is not None:
            watchers[:] = [ref for ref in watchers if ref() is not None and ref() is not registry]

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into an isolated plugin's worker process: the registries watching this
        # instance stay behind (weak references do not pickle, and mean nothing there), and
        # the settings travel as values, validated again on arrival (the strict model class
        # they were validated with is made at run time: pickle cannot name it).
        state = dict(self.__dict__)
        state.pop("_loopai_watchers", None)
        settings = state.get("config")
        if isinstance(settings, BaseModel):
            state["config"] = _PickledSettings(settings.model_dump())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        settings = state.get("config")
        if isinstance(settings, _PickledSettings):
            name = state.get("name") or type(self).name
            state["config"] = validate_settings(type(self).Config, settings.values, name)
        self.__dict__.update(state)

    # -- lifecycle (optional) -----------------------------------------------------------

    def startup(self, host: Any) -> Awaitable[None] | None:
        """Called once when a host starts (``host`` is the :class:`loopai.Host`); override to open resources."""
        return None

    def shutdown(self, host: Any) -> Awaitable[None] | None:
        """Called once when a host closes; override to release resources."""
        return None

    def configuration_warnings(self) -> list[str]:
        """What the configured settings accept but will likely surprise someone, one sentence each
        (``loopai config check`` prints them as warnings; they never stop a run). The default: none."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} priority={self.priority} enabled={self.enabled}>"


class ValidatorPlugin(Plugin):
    """A plugin that judges executions: define ``validate`` (``def`` or ``async def``)."""

    _loopai_kind: ClassVar[str] = "validator"

    @abc.abstractmethod
    def validate(
        self, execution: ExecutionRecord, context: ValidationContext
    ) -> ValidationResult | Awaitable[ValidationResult]:
        """See :meth:`loopai.HookSpecs.validate` for the contract."""


class SamplerPlugin(Plugin):
    """A plugin that picks executions for deeper checks: define ``should_sample``."""

    _loopai_kind: ClassVar[str] = "sampler"

    @abc.abstractmethod
    def should_sample(
        self, execution: ExecutionRecord, context: SamplingContext
    ) -> SamplingDecision | Awaitable[SamplingDecision]:
        """See :meth:`loopai.HookSpecs.should_sample` for the contract."""


class WebhookHandlerPlugin(Plugin):
    """A plugin that is told about events: define ``handle_event``.

    ``supported_events`` (default: all 17 types) limits which events arrive; strings such
    as ``"program.execution.failed"`` or ``"ProgramExecutionFailed"`` are accepted.
    ``max_retries`` overrides the host's retry count for this handler.
    """

    _loopai_kind: ClassVar[str] = "webhook handler"

    if TYPE_CHECKING:
        supported_events: Iterable[WebhookEventType | str]
        max_retries: int | None
    else:
        supported_events = Switch(as_given, "Event types this handler takes (default: all 17).")
        max_retries = Switch(retries, "Retries after a failed delivery; None: the host's setting.")

    _default_supported_events: ClassVar[Iterable[WebhookEventType | str]] = ALL_EVENTS
    _default_max_retries: ClassVar[int | None] = None

    @abc.abstractmethod
    def handle_event(self, event: WebhookEvent, context: WebhookHandlerContext) -> Awaitable[None] | None:
        """See :meth:`loopai.HookSpecs.handle_event` for the contract."""

    def validate_configuration(self, configuration: Mapping[str, Any]) -> bool:
        """Return False to refuse ``configuration`` (the raw settings); the host then leaves
        this handler out and says so. The default accepts anything its ``Config`` accepted."""
        return True
