"""Loading plugins: import, construct, configure once and register, each step isolated.

Three sources meet here, and every plugin is configured exactly once, by the same code:
entry points found by discovery (:func:`load_discovered`), configuration entries with a
``factory``, and plugins an application registered in code that the configuration names
(both in :func:`apply_configuration`). Settings are validated against the plugin's
``Config`` model when it is constructed (or by ``configure`` for an instance), a webhook
handler's ``validate_configuration`` is asked once, and the entry's ``metadata``,
``timeout``, ``priority``, ``enabled``, order, dependencies and isolation are applied last.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from loopai._errors import LoopaiError, PluginError, PluginSignatureError
from loopai._isolation import Raised, attempt, describe, described_at
from loopai._kinds import KINDS, Kind, kind_of
from loopai._log import captured_warnings, logger
from loopai._plugin import Plugin, WebhookHandlerPlugin, validate_settings
from loopai._suggest import did_you_mean
from loopai.config import LoopaiConfig, PluginConfiguration
from loopai.discovery._discover import DiscoveredPlugin, gc_paused
from loopai.discovery._problems import beside_hint, construction_problem, import_problem, missing_hook, wrong_kind
from loopai.discovery._reference import NoSuchAttribute, import_object
from loopai.discovery._selection import Selection
from loopai.registry import PluginRegistry

__all__ = ["accepts", "apply_configuration", "import_object", "load_discovered"]

log = logger("loopai.discovery")


@gc_paused
def load_discovered(
    found: Sequence[DiscoveredPlugin],
    registry: PluginRegistry,
    config: LoopaiConfig | None = None,
    *,
    strict: bool = False,
) -> list[DiscoveredPlugin]:
    """Import, construct, configure and register every ``ok`` plugin of ``found``: every
    plugin's module is imported first, then each plugin is built and registered, in order.

    A plugin class is instantiated with its settings from the configuration, validated
    against its ``Config`` model; an instance gets them through ``configure``. A module
    of ``@hookimpl`` functions (or any object that is not a loopai plugin) takes none:
    settings configured for it are a warning in ``record.warnings`` (logged), or with
    ``strict`` a failure. A configured webhook handler whose ``validate_configuration``
    refuses its settings is ``failed``. Anything a plugin raises, ``SystemExit`` included
    (not ``KeyboardInterrupt``), marks that plugin ``failed`` with the reason and moves on.

    A loaded plugin that ends up off (it turned itself off, and the configuration does not
    set ``enabled = true``) is ``disabled``, still ``loaded``, with a ``reason`` saying why:
    ``idle: validate_configuration() refused its settings: ...`` for a webhook handler
    that lacks settings. Returns the plugins that were loaded.
    """
    config = config if config is not None else LoopaiConfig()
    prefix = config.where_prefix()  # once: a thousand plugins need a thousand messages' heads
    wanted = [record for record in found if record.status == "ok"]
    # Every module first, then every plugin built and registered. Interleaved, the import
    # machinery and the registry evict each other's working set from the CPU's caches: at a
    # thousand plugins that cost about 15 ms of 100 (docs/PERFORMANCE.md, discovery).
    targets = [attempt(import_object, record.value) for record in wanted]
    return [
        record
        for record, target in zip(wanted, targets, strict=True)
        if _load_one(record, target, registry, config, prefix, strict)
    ]


def _load_one(
    record: DiscoveredPlugin,
    target: Any,
    registry: PluginRegistry,
    config: LoopaiConfig,
    prefix: str,
    strict: bool,
) -> bool:
    """Build, configure and register the plugin ``target`` (what importing ``record.value`` gave,
    or how it failed); whether it was loaded, else ``record`` says why not."""
    kind = kind_of(record.kind)
    entry = config.plugins.find(kind, record.name)
    where = f"{prefix}{kind.key}.{record.name}"
    settings = entry.configuration if entry is not None else {}
    if isinstance(target, Raised):
        record.fail("failed", import_problem(target.error, record))
        return False
    if settings and not _takes_settings(target):
        warning = _settings_ignored(target, record.value, f"{record.distribution} {record.version}", where)
        if strict:
            record.fail("failed", f"{warning} (strict mode)")
            return False
        record.warnings.append(warning)
        log.warning("%s", warning)
    origin = f"entry point [{record.group}] {record.name} = {record.value} of {record.distribution}"
    built = attempt(_register, target, kind, settings, where, registry, record.name, origin)
    if isinstance(built, Raised):
        record.fail("failed", construction_problem(built.error, record, target))
        return False
    plugin = built
    if plugin.version == Plugin.version:  # a plugin that states no version or description has its package's
        plugin.version = record.version
    if not plugin.description:
        plugin.description = record.summary
    refusal = _refusal(plugin, entry, where)
    if refusal is not None:
        registry.unregister(kind.base, record.name)
        record.fail("failed", refusal)
        return False
    if entry is not None:
        _override(plugin, entry)
    record.loaded = True
    record.enabled = plugin.enabled
    if entry is None or "priority" not in entry.model_fields_set:
        record.priority = plugin.priority
    if not record.enabled:
        record.status, record.reason = "disabled", _why_off(plugin, kind, record.name, config)
    return True


def apply_configuration(
    config: LoopaiConfig,
    registry: PluginRegistry,
    discovered: Sequence[DiscoveredPlugin] = (),
    selection: Selection | None = None,
) -> list[str]:
    """Configure what the configuration names that discovery did not load: plugins registered in
    code (their entry's settings, then its overrides) and ``factory`` entries (imported, built and
    registered). Returns one problem per entry that could not be applied; such a plugin is left out.
    Deny rules of ``selection`` apply to factory plugins as to installed ones."""
    problems: list[str] = []
    covered = {(record.kind, record.name) for record in discovered}
    for kind in KINDS:
        known = [
            *(r.name for r in discovered if r.kind == kind.label),
            *(e.name for e in registry.entries(kind.base, False)),
        ]
        for entry in config.plugins.for_kind(kind):
            if (kind.label, entry.name) in covered:
                continue  # discovery configured it, or left it out and said why
            where = config.where(kind, entry.name)
            problem = _apply_entry(kind, entry, registry, where, selection, known, config.source)
            if problem is not None:
                problems.append(problem)
    return problems


def _apply_entry(
    kind: Kind,
    entry: PluginConfiguration,
    registry: PluginRegistry,
    where: str,
    selection: Selection | None,
    known: Sequence[str] = (),
    source: Path | None = None,
) -> str | None:
    registered = registry.entry(kind.base, entry.name)
    if registered is None and entry.factory:
        denied = selection.denies(kind.label, entry.name, "") if selection is not None else None
        if denied is not None or not entry.enabled:  # off: not imported, as an installed plugin turned off
            log.info("%s: not loaded: %s", where, denied or "enabled = false")
            return None
        outcome = attempt(_load_factory, kind, entry, registry, where, source)
        if isinstance(outcome, Raised):
            error = outcome.error
            if isinstance(error, LoopaiError):
                return str(error)
            return f"{where}: making it with {entry.factory} failed: {described_at(error)}"
        plugin = outcome
    elif registered is None:
        if not entry.enabled:
            return None
        hint = did_you_mean(entry.name, known)
        if hint:
            return f"{where}: no {kind.title} named {entry.name!r} is registered{hint}"
        return (
            f"{where}: no {kind.title} named {entry.name!r} is registered; "
            'install the package that provides it, register it in code, or set factory = "module:attribute"'
        )
    else:
        plugin = registered.plugin
        if "configuration" in entry.model_fields_set:
            configured = attempt(plugin.configure, entry.configuration, where=where)
            if isinstance(configured, Raised):
                registry.unregister(kind.base, entry.name)
                error = configured.error
                return (
                    str(error)
                    if isinstance(error, LoopaiError)
                    else f"{where}: configuring it failed: {describe(error)}"
                )
    refusal = _refusal(plugin, entry, where)
    if refusal is not None:
        registry.unregister(kind.base, entry.name)
        return refusal
    _override(plugin, entry)
    return None


def _load_factory(
    kind: Kind, entry: PluginConfiguration, registry: PluginRegistry, where: str, source: Path | None = None
) -> Plugin:
    module_name, _, attribute = (entry.factory or "").partition(":")
    if not module_name or not attribute:
        raise PluginError(entry.name, f"{where}.factory: {entry.factory!r} must look like 'package.module:attribute'")
    try:
        target = import_object(entry.factory or "")
    except NoSuchAttribute as exc:  # the module is there: the name is wrong
        raise PluginError(entry.name, f"{where}.factory: cannot import {entry.factory!r}: {exc}; correct it") from None
    except (ImportError, AttributeError) as exc:
        hint = beside_hint(exc, source)
        raise PluginError(
            entry.name, f"{where}.factory: cannot import {entry.factory!r}: {described_at(exc)}{hint}"
        ) from None
    return _register(target, kind, entry.configuration, where, registry, entry.name, f"{where}.factory")


def _register(
    target: Any,
    kind: Kind,
    settings: Mapping[str, Any],
    where: str,
    registry: PluginRegistry,
    name: str,
    origin: str,
) -> Plugin:
    """Build the plugin ``target`` names with ``settings`` and register it as ``name`` of ``kind``.

    A plugin class is instantiated with its validated settings; another class (and, for a
    factory, a function) is called without arguments; a plugin instance (given, or made by
    that call) gets ``settings`` through ``configure``; a module is registered as it is.
    ``origin`` says where ``target`` came from, in messages. Returns the registered plugin
    (an adapter for a module).
    """
    if isinstance(target, type) and issubclass(target, Plugin):
        if not issubclass(target, kind.base):
            raise PluginError(name, wrong_kind(target, kind, origin))
        unfinished = missing_hook(target, kind, origin)
        if unfinished is not None:
            raise PluginSignatureError(name, unfinished)
        target = target(validate_settings(target.Config, settings, where))
    else:
        factory = origin.endswith(".factory")
        if isinstance(target, type) or (factory and isinstance(target, types.FunctionType)):
            target = target()
        if isinstance(target, Plugin) and settings:
            target.configure(settings, where=where)
    [entry] = registry.register(target, name=name, kinds=(kind,))
    return entry.plugin


def _refusal(plugin: Plugin, entry: PluginConfiguration | None, where: str) -> str | None:
    """Why a configured webhook handler refused its settings, or None when it accepted them (or is
    no handler, or is not configured)."""
    if entry is None or not isinstance(plugin, WebhookHandlerPlugin):
        return None
    settings = entry.configuration if "configuration" in entry.model_fields_set else _settings_of(plugin)
    accepted, said = accepts(plugin, settings)
    if accepted:
        return None
    detail = f": {'; '.join(said)}" if said else ""
    how = (
        "its validate_configuration raised"
        if said and "raised" in said[-1]
        else "validate_configuration() returned False"
    )
    return (
        f"{where}: webhook handler {entry.name!r} refused its settings ({how}){detail}; "
        "fix them, or set enabled = false to leave it off"
    )


_DECLARED = (
    "requires_plugins",
    "run_before",
    "run_after",
    "isolation",
    "workers",
    "memory_limit_mb",
    "cpu_time_limit_s",
)
"""Entry keys that, when written, replace the plugin class's own values."""


def _override(plugin: Plugin, entry: PluginConfiguration) -> None:
    """The entry's own values over the plugin's: metadata, and what the file writes of
    ``timeout``, ``priority``, ``enabled``, order, dependencies and isolation."""
    given = entry.model_fields_set
    plugin.metadata = {**plugin.metadata, **entry.metadata}
    if entry.timeout is not None:
        plugin.timeout = entry.timeout
    for key in _DECLARED:
        value = getattr(entry, key)
        if value is not None:
            setattr(plugin, key, value)
    if "priority" in given:
        plugin.priority = entry.priority
    if "enabled" in given:
        plugin.enabled = entry.enabled


def _settings_of(plugin: Plugin) -> dict[str, Any]:
    settings = plugin.config
    return settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})


def _takes_settings(target: Any) -> bool:
    """Whether an entry point's object can be given settings: a plugin class or instance."""
    return isinstance(target, Plugin) or (isinstance(target, type) and issubclass(target, Plugin))


def _settings_ignored(target: Any, value: str, owner: str, where: str) -> str:
    what = "a module of @hookimpl functions" if isinstance(target, types.ModuleType) else "not a loopai plugin class"
    distribution = owner.rsplit(" ", 1)[0]
    return (
        f"{where}: settings are ignored: {value} ({owner}) is {what}, "
        f"and module plugins take no settings; remove its configuration table, or ask the maintainers of "
        f"{distribution} for a plugin class with a Config model"
    )


def _why_off(plugin: Plugin, kind: Kind, name: str, config: LoopaiConfig) -> str:
    """Why a plugin that loaded is off, and how to turn it on."""
    source = config.source_label if config.source_label != "<defaults>" else "loopai.toml"
    table = f"[plugins.{kind.key}.{name}]"
    if isinstance(plugin, WebhookHandlerPlugin):
        accepted, said = accepts(plugin, _settings_of(plugin))
        if not accepted:
            detail = f": {'; '.join(said)}" if said else ""
            settings = f"[plugins.{kind.key}.{name}.configuration]"
            return f"idle: validate_configuration() refused its settings{detail}; set them under {settings} in {source}"
    return (
        f"off: the plugin turned itself off (enabled is False once constructed); "
        f"to turn it on: enabled = true under {table} in {source}"
    )


def accepts(plugin: WebhookHandlerPlugin, settings: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether ``plugin.validate_configuration(settings)`` accepts them, and the warnings it logged.

    A plugin that raises instead counts as refusing, with the exception as what it said.
    """
    with captured_warnings() as said:  # reported in the plugin's problem or reason: not logged twice
        answer = attempt(plugin.validate_configuration, settings)
    if isinstance(answer, Raised):
        return False, [*said, f"validate_configuration raised {describe(answer.error)}"]
    return bool(answer), said
