"""loopai: the plugin host of Loopai (validators, samplers and webhook handlers).

Every public name is importable from here; each is imported from its home module the first
time it is used, so ``import loopai`` costs next to nothing. The subpackages own one concern
each (see docs/ARCHITECTURE.md): ``config``, ``registry``, ``discovery``, ``state``,
``delivery``, ``host``, ``run``, ``serve`` (the HTTP service, the ``serve`` extra), ``cli``,
``testing`` and ``client`` (the service's client, the ``client`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopai._lazy import lazy_getattr as _lazy_getattr

if TYPE_CHECKING:
    from loopai._errors import (
        ConfigError,
        DuplicatePluginError,
        HostStateError,
        LoopaiError,
        OutboxError,
        PluginError,
        PluginSettingsError,
        PluginSignatureError,
        StartupError,
    )
    from loopai._hookspecs import HookSpecs, hookimpl, hookspec
    from loopai._models import (
        EventSeverity,
        ExecutionRecord,
        ExecutionStatus,
        SamplingContext,
        SamplingDecision,
        ValidationContext,
        ValidationResult,
        WebhookEvent,
        WebhookEventType,
        WebhookHandlerContext,
    )
    from loopai._plugin import Plugin, SamplerPlugin, ValidatorPlugin, WebhookHandlerPlugin
    from loopai._redact import redact
    from loopai._report import EmitReport, PluginFailure, SamplingReport, ValidationReport
    from loopai.config import (
        DispatchSettings,
        LoopaiConfig,
        PluginConfiguration,
        PluginsConfiguration,
        find_config,
        load_config,
        parse_config,
    )
    from loopai.delivery import HandlerDeliveries, Outbox
    from loopai.host import HookTimeout, Host, PluginUsage
    from loopai.registry import PluginRegistry, RegisteredPlugin
    from loopai.state import StateStore, TaskStatistics

    __version__: str

_HOMES: dict[str, str] = {
    **dict.fromkeys(
        (
            "ConfigError",
            "DuplicatePluginError",
            "HostStateError",
            "LoopaiError",
            "OutboxError",
            "PluginError",
            "PluginSettingsError",
            "PluginSignatureError",
            "StartupError",
        ),
        "loopai._errors",
    ),
    **dict.fromkeys(("HookSpecs", "hookimpl", "hookspec"), "loopai._hookspecs"),
    **dict.fromkeys(
        (
            "EventSeverity",
            "ExecutionRecord",
            "ExecutionStatus",
            "SamplingContext",
            "SamplingDecision",
            "ValidationContext",
            "ValidationResult",
            "WebhookEvent",
            "WebhookEventType",
            "WebhookHandlerContext",
        ),
        "loopai._models",
    ),
    **dict.fromkeys(("Plugin", "SamplerPlugin", "ValidatorPlugin", "WebhookHandlerPlugin"), "loopai._plugin"),
    "redact": "loopai._redact",
    **dict.fromkeys(("EmitReport", "PluginFailure", "SamplingReport", "ValidationReport"), "loopai._report"),
    **dict.fromkeys(
        (
            "DispatchSettings",
            "LoopaiConfig",
            "PluginConfiguration",
            "PluginsConfiguration",
            "find_config",
            "load_config",
            "parse_config",
        ),
        "loopai.config",
    ),
    **dict.fromkeys(("HandlerDeliveries", "Outbox"), "loopai.delivery"),
    **dict.fromkeys(("HookTimeout", "Host", "PluginUsage"), "loopai.host"),
    **dict.fromkeys(("PluginRegistry", "RegisteredPlugin"), "loopai.registry"),
    **dict.fromkeys(("StateStore", "TaskStatistics"), "loopai.state"),
}

__all__ = [
    "ConfigError",
    "DispatchSettings",
    "DuplicatePluginError",
    "EmitReport",
    "EventSeverity",
    "ExecutionRecord",
    "ExecutionStatus",
    "HandlerDeliveries",
    "HookSpecs",
    "HookTimeout",
    "Host",
    "HostStateError",
    "LoopaiConfig",
    "LoopaiError",
    "Outbox",
    "OutboxError",
    "Plugin",
    "PluginConfiguration",
    "PluginError",
    "PluginFailure",
    "PluginRegistry",
    "PluginSettingsError",
    "PluginSignatureError",
    "PluginUsage",
    "PluginsConfiguration",
    "RegisteredPlugin",
    "SamplerPlugin",
    "SamplingContext",
    "SamplingDecision",
    "SamplingReport",
    "StartupError",
    "StateStore",
    "TaskStatistics",
    "ValidationContext",
    "ValidationReport",
    "ValidationResult",
    "ValidatorPlugin",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookHandlerContext",
    "WebhookHandlerPlugin",
    "__version__",
    "find_config",
    "hookimpl",
    "hookspec",
    "load_config",
    "parse_config",
    "redact",
]


_import_lazily = _lazy_getattr(globals(), _HOMES)


def __getattr__(name: str) -> Any:
    """Import a public name from its home module the first time it is asked for."""
    if name != "__version__":
        return _import_lazily(name)
    from loopai._version import core_version

    value = globals()[name] = core_version()
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
