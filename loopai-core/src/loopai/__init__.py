"""loopai: the plugin host of Loopai (validators, samplers and webhook handlers)."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from loopai._config import (
    DispatchSettings,
    LoopaiConfig,
    PluginConfiguration,
    PluginsConfiguration,
    find_config,
    load_config,
    parse_config,
)
from loopai._dispatch import HookTimeout
from loopai._errors import (
    ConfigError,
    DuplicatePluginError,
    LoopaiError,
    PluginError,
    PluginSettingsError,
    PluginSignatureError,
    StartupError,
)
from loopai._hookspecs import HookSpecs, hookimpl, hookspec
from loopai._host import Host, TaskStatistics
from loopai._meter import PluginUsage
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
from loopai._registry import PluginRegistry, RegisteredPlugin
from loopai._report import EmitReport, PluginFailure, SamplingReport, ValidationReport

# A library logs; the application decides where that goes (the CLI prints problems itself).
logging.getLogger("loopai").addHandler(logging.NullHandler())

try:
    __version__ = version("loopai-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "DispatchSettings",
    "DuplicatePluginError",
    "EmitReport",
    "EventSeverity",
    "ExecutionRecord",
    "ExecutionStatus",
    "HookSpecs",
    "HookTimeout",
    "Host",
    "LoopaiConfig",
    "LoopaiError",
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
