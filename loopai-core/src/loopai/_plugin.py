"""Base classes for plugins: identity, runtime enable/priority, and typed settings."""

from __future__ import annotations

import abc
import re
import weakref
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from loopai._errors import PluginSettingsError, describe_validation_error
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

if TYPE_CHECKING:
    from loopai._host import Host

__all__ = [
    "ALL_EVENTS",
    "Plugin",
    "SamplerPlugin",
    "ValidatorPlugin",
    "WebhookHandlerPlugin",
    "kind_label",
    "validate_settings",
]

ALL_EVENTS: frozenset[WebhookEventType] = frozenset(WebhookEventType)

_RUNTIME_ATTRS = ("enabled", "priority")


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def _snake(key: str) -> str:
    """``SamplingRate`` and ``samplingRate`` become ``sampling_rate``; snake stays snake."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).replace("-", "_").lower()


def _strict_model(model: type[BaseModel]) -> type[BaseModel]:
    """The same settings model, refusing unknown keys (cached on the model class)."""
    cached = model.__dict__.get("__loopai_strict__")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if model.model_config.get("extra") == "forbid":
        strict = model
    else:
        config = ConfigDict(**{**model.model_config, "extra": "forbid"})
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
        snake = _snake(key)
        out[key if key in known or snake not in known else snake] = value
    return out


def validate_settings(model: type[BaseModel] | None, raw: Any, where: str) -> Any:
    """Validate ``raw`` settings against ``model``; unknown keys are refused.

    ``where`` prefixes every problem line (``loopai.toml: samplers.percentage-sampler``).
    Returns a model instance, or ``dict(raw)`` when the plugin declares no model.
    Raises :class:`loopai.PluginSettingsError` listing every wrong field.
    """
    if model is None:
        return dict(raw or {})
    if isinstance(raw, model):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise PluginSettingsError(where, [f"{where}: settings must be a table, got {type(raw).__name__}"])
    try:
        return _strict_model(model).model_validate(_normalise_keys(model, raw))
    except ValidationError as exc:
        raise PluginSettingsError(where, describe_validation_error(exc, where)) from None


class Plugin(abc.ABC):
    """What every loopai plugin is: a name, a version, an on/off switch and a priority.

    Subclasses set the identity as class attributes (``name = "my-validator"``,
    ``priority = 100``...) and may declare their settings as a pydantic model in a nested
    class ``Config``. The host validates configured settings against it (unknown keys
    refused) and the plugin finds the typed result in ``self.config``.

    ``enabled`` and ``priority`` may be changed at any time, from any thread; every host
    that holds the plugin uses the new value from its next call.
    """

    name: str = ""
    description: str = ""
    version: str = "0.0.0"
    author: str = ""
    timeout: float | None = None
    """Seconds a single hook call may take before the host gives up on it; None: no limit."""

    Config: ClassVar[type[BaseModel] | None] = None

    _default_enabled: ClassVar[bool] = True
    _default_priority: ClassVar[int] = 0

    config: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # ``priority = 50`` in a class body must not hide the properties that tell hosts
        # about runtime changes: keep the value as the class default instead.
        for attr in _RUNTIME_ATTRS:
            value = cls.__dict__.get(attr)
            if value is not None and not isinstance(value, property):
                type.__setattr__(cls, f"_default_{attr}", bool(value) if attr == "enabled" else int(value))
                type.__delattr__(cls, attr)
        if not cls.__dict__.get("name"):
            # Each class is its own plugin: without a name of its own it gets one from
            # its class name (``BusinessRuleValidator`` -> ``business-rule-validator``).
            cls.name = _kebab(cls.__name__)

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
        self._enabled = type(self)._default_enabled if enabled is None else bool(enabled)
        self._priority = type(self)._default_priority if priority is None else int(priority)
        self.metadata: dict[str, str] = {}
        model = type(self).Config
        self.config = {} if model is None and config is None else validate_settings(model, config, self.name)

    # -- runtime switches ---------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether hosts call this plugin; takes effect on their next call."""
        return self.__dict__.get("_enabled", type(self)._default_enabled)  # type: ignore[no-any-return]

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self._loopai_changed()

    @property
    def priority(self) -> int:
        """Higher runs earlier; ties are ordered by name. Takes effect on the next call."""
        return self.__dict__.get("_priority", type(self)._default_priority)  # type: ignore[no-any-return]

    @priority.setter
    def priority(self, value: int) -> None:
        self._priority = int(value)
        self._loopai_changed()

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

    # -- lifecycle (optional) -----------------------------------------------------------

    def startup(self, host: Host) -> Awaitable[None] | None:
        """Called once when a host starts; override to open resources."""
        return None

    def shutdown(self, host: Host) -> Awaitable[None] | None:
        """Called once when a host closes; override to release resources."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} priority={self.priority} enabled={self.enabled}>"


class ValidatorPlugin(Plugin):
    """A plugin that judges executions: define ``validate`` (``def`` or ``async def``)."""

    @abc.abstractmethod
    def validate(
        self, execution: ExecutionRecord, context: ValidationContext
    ) -> ValidationResult | Awaitable[ValidationResult]:
        """See :meth:`loopai.HookSpecs.validate` for the contract."""


class SamplerPlugin(Plugin):
    """A plugin that picks executions for deeper checks: define ``should_sample``."""

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

    supported_events: Iterable[WebhookEventType | str] = ALL_EVENTS
    max_retries: int | None = None

    @abc.abstractmethod
    def handle_event(self, event: WebhookEvent, context: WebhookHandlerContext) -> Awaitable[None] | None:
        """See :meth:`loopai.HookSpecs.handle_event` for the contract."""

    def validate_configuration(self, configuration: Mapping[str, Any]) -> bool:
        """Return False to refuse ``configuration`` (the raw settings); the host then leaves
        this handler out and says so. The default accepts anything its ``Config`` accepted."""
        return True


_KIND_LABELS: dict[type[Plugin], str] = {
    ValidatorPlugin: "validator",
    SamplerPlugin: "sampler",
    WebhookHandlerPlugin: "webhook-handler",
}


def kind_label(kind: type[Plugin]) -> str:
    """``validator``, ``sampler`` or ``webhook-handler`` for a kind's base class."""
    return _KIND_LABELS[kind]
