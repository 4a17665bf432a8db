"""Entry-point discovery: requirement checks and selection before import, isolated loading after."""

from __future__ import annotations

import functools
import gc
import importlib
import json
import logging
import re
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from loopai._config import LoopaiConfig
from loopai._errors import LoopaiError, PluginSettingsError
from loopai._metadata import GROUPS, DistInfo, Inventory, canonical, read_inventory
from loopai._plugin import Plugin, WebhookHandlerPlugin, validate_settings
from loopai._registry import PluginRegistry, kind_from
from loopai._selection import Selection

__all__ = ["DiscoveredPlugin", "RequirementCheck", "discover", "load_discovered"]

Status = Literal["ok", "disabled", "incompatible", "missing-dependency", "duplicate", "failed"]
CORE = "loopai-core"
_CONFIG_KEYS = {"validator": "validators", "sampler": "samplers", "webhook-handler": "webhook_handlers"}
log = logging.getLogger("loopai.discovery")


@dataclass(frozen=True)
class RequirementCheck:
    """One ``Requires-Dist`` line of a plugin's distribution, checked against what is installed."""

    requirement: str
    ok: bool
    installed: str | None
    message: str
    project: str = ""
    """The canonical name of the required project (``loopai-core``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"requirement": self.requirement, "ok": self.ok, "installed": self.installed, "message": self.message}


@dataclass
class DiscoveredPlugin:
    """One declared plugin (an entry point) and what discovery decided about it.

    ``status`` is ``ok``, ``disabled`` (off: a selection rule turned it off, or once
    loaded, the plugin turned itself off), ``incompatible`` (its distribution does not
    accept the installed loopai-core), ``missing-dependency``, ``duplicate`` (another
    distribution declares the same name for the same kind), or ``failed`` (importing,
    constructing, configuring or registering it raised, or its settings were refused).
    ``reason`` says why and what to do (None when ``ok``); ``selected_by`` names the
    selection rule that put it on or off, and ``selected`` is that rule's outcome.

    Before loading (``loaded`` False), ``enabled`` is what selection, the requirement checks
    and the configuration's ``enabled`` say: a plugin may still turn itself off when it is
    constructed (a webhook handler without a URL does). ``priority`` is None until the
    plugin is loaded, unless the configuration sets it. ``warnings`` are problems that do
    not keep the plugin out (settings configured for a plugin that takes none).
    """

    name: str
    kind: str
    group: str
    value: str
    distribution: str
    version: str
    path: str
    summary: str = ""
    requires: list[str] = field(default_factory=list)
    checks: list[RequirementCheck] = field(default_factory=list)
    status: Status = "ok"
    reason: str | None = None
    selected_by: str = ""
    enabled: bool = True
    priority: int | None = None
    loaded: bool = False
    selected: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``json-schema-validator (validator, loopai-builtin 0.1.0)``."""
        return f"{self.name} ({self.kind}, {self.distribution} {self.version})"

    def fail(self, status: Status, reason: str) -> None:
        """Mark this plugin as left out, with why."""
        self.status, self.reason, self.enabled = status, reason, False

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``loopai plugins list --json`` prints for this plugin.

        ``priority`` is null when it is not known: before loading, unless configured.
        """
        return {
            "name": self.name,
            "kind": self.kind,
            "distribution": self.distribution,
            "version": self.version,
            "enabled": self.enabled,
            "priority": self.priority,
            "status": self.status,
            "reason": self.reason,
            "selected_by": self.selected_by,
            "entry_point": f"{self.name} = {self.value}",
            "group": self.group,
            "loaded": self.loaded,
            "warnings": list(self.warnings),
        }


def _environment() -> dict[str, str]:
    from packaging.markers import default_environment

    return {**{key: str(value) for key, value in default_environment().items()}, "extra": ""}


def _check(
    dist: DistInfo,
    line: str,
    versions: Mapping[str, str],
    env: dict[str, str],
    memo: dict[str, RequirementCheck | None] | None = None,
    applies: dict[str, bool] | None = None,
    core_needs: Callable[[], Mapping[str, str]] | None = None,
) -> RequirementCheck | None:
    """Check one Requires-Dist ``line`` of ``dist``; None when its marker does not apply here.

    ``core_needs`` (asked only when a requirement fails) maps what loopai-core itself needs
    installed to why: a plugin that wants another version of one of those is told to
    upgrade itself, not to downgrade what the core needs.
    """
    if memo is not None:
        # Many plugins declare the same lines; within one discovery the versions and the
        # environment are fixed, so a line that passes (or does not apply) does so for all,
        # and so does a marker (``applies``: its text -> whether it holds here).
        if line in memo:
            return memo[line]
        check = _check(dist, line, versions, env, applies={} if applies is None else applies, core_needs=core_needs)
        if check is None or check.ok:  # failures name their distribution: not shared
            memo[line] = check
        return check
    try:
        name, extras_set, specifier, marker = _parse(line)
    except InvalidRequirement as exc:
        return RequirementCheck(
            line, False, None, f"{dist.name} {dist.version} declares an invalid requirement {line!r}: {exc}"
        )
    if marker is not None:
        text = str(marker)
        holds = applies.get(text) if applies is not None else None
        if holds is None:
            try:
                holds = bool(marker.evaluate(env))
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                holds = False
            if applies is not None:
                applies[text] = holds
        if not holds:
            return None  # for another platform, Python or extra
    key = canonical(name)
    extras = f"[{','.join(sorted(extras_set))}]" if extras_set else ""
    wanted = f"{name}{extras}{specifier}"
    installed = versions.get(key)
    owner = f"{dist.name} {dist.version}"
    if installed is None:
        message = f"{owner} requires {wanted}, which is not installed; install it: pip install '{wanted}'"
        return RequirementCheck(wanted, False, None, message, key)
    try:
        fits = specifier.contains(_version(installed), prereleases=True)
    except InvalidVersion:
        fits = specifier.contains(installed, prereleases=True)
    if fits:
        return RequirementCheck(wanted, True, installed, f"{wanted}: {installed} is installed", key)
    if key == CORE:
        if _needs_newer(specifier, installed):
            fix = f"upgrade loopai-core: pip install -U '{wanted}'"
        else:
            fix = f"upgrade it: pip install -U {dist.name}"
        message = f"{owner} requires {wanted}, but {installed} is installed; {fix}"
    elif core_needs is not None and not _needs_newer(specifier, installed) and key in (needs := core_needs()):
        message = (
            f"{owner} requires {wanted}, but {installed} is installed, and loopai-core needs {needs[key]}: "
            f"do not downgrade {name}; upgrade the plugin instead: pip install -U {dist.name}"
        )
    else:
        message = f"{owner} requires {wanted}, but {installed} is installed; fix it: pip install '{wanted}'"
    return RequirementCheck(wanted, False, installed, message, key)


def _core_needs(paths: Sequence[str] | None, env: dict[str, str]) -> dict[str, str]:
    """What loopai-core needs installed, by canonical name: its requirements and theirs.

    ``pydantic>=2.6``, or ``pydantic-core==2.27.2 (for pydantic)`` for one of a dependency.
    Read with importlib.metadata (only when some requirement failed: it scans the path).
    """
    import importlib.metadata
    import sys

    search = list(paths) if paths is not None else sys.path
    needs: dict[str, str] = {}
    todo: list[tuple[str, str | None]] = [(CORE, None)]
    seen: set[str] = set()
    while todo:
        project, via = todo.pop()
        if project in seen:
            continue
        seen.add(project)
        dist = next(iter(importlib.metadata.distributions(name=project, path=search)), None)
        for line in (dist.requires or []) if dist is not None else []:
            try:
                name, _, specifier, marker = _parse(line)
                if marker is not None and not marker.evaluate(env):
                    continue
            except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                continue
            key = canonical(name)
            needs.setdefault(key, f"{name}{specifier}" + (f" (for {via})" if via is not None else ""))
            todo.append((key, key))
    return needs


# ``name``, ``name>=1.2``, ``name<2,>=1.2; marker``: what most Requires-Dist lines look like,
# and all of it valid PEP 508 whenever the specifiers and the marker parse. Parsing these
# from their parts, with each distinct specifier set and marker parsed once per process, is
# several times cheaper than packaging's Requirement, with the same result. Anything else
# (extras, URLs, spaces, parentheses, pre-releases, wildcards) goes to Requirement.
_VERSION_CLAUSE = r"(?:~=|==|!=|<=|>=|<|>)[0-9]+(?:\.[0-9]+)*"
_SIMPLE_REQUIREMENT = re.compile(
    rf"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    rf"(?P<specifier>{_VERSION_CLAUSE}(?:,{_VERSION_CLAUSE})*)?"
    rf"(?:; (?P<marker>[^;]*[^;\s]))?"
)


@functools.lru_cache(maxsize=256)
def _specifier_set(text: str) -> SpecifierSet:
    return SpecifierSet(text)


@functools.lru_cache(maxsize=256)
def _marker(text: str) -> Marker:
    return Marker(text)


@functools.lru_cache(maxsize=1024)
def _version(text: str) -> Version:
    return Version(text)  # an InvalidVersion is raised, and not cached, each time


def _parse(line: str) -> tuple[str, set[str], SpecifierSet, Marker | None]:
    """Name, extras, specifier and marker of a requirement line; raises InvalidRequirement."""
    simple = _SIMPLE_REQUIREMENT.fullmatch(line)
    if simple is not None:
        try:
            marker = _marker(simple["marker"]) if simple["marker"] is not None else None
            return simple["name"], set(), _specifier_set(simple["specifier"] or ""), marker
        except (InvalidSpecifier, InvalidMarker):
            pass  # packaging says what is wrong with it
    requirement = Requirement(line)
    return requirement.name, requirement.extras, requirement.specifier, requirement.marker


def _needs_newer(specifier: SpecifierSet, installed: str) -> bool:
    """Whether the installed version is below what ``specifier`` asks for (else: above)."""
    try:
        have = Version(installed)
        for spec in specifier:
            if spec.operator in (">", ">=", "==", "~=", "===") and have < Version(spec.version.rstrip(".*")):
                return True
    except InvalidVersion:
        pass
    return False


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _gc_paused(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` with the cyclic garbage collector paused (as it was, afterwards).

    Discovery and loading make thousands of long-lived objects (records, modules, plugins)
    and little garbage; the collections they would trigger cost about a sixth of the time.
    Plugin modules imported meanwhile may make garbage too: it is collected afterwards.
    """

    @functools.wraps(function)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@_gc_paused
def discover(
    config: LoopaiConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    selection: Selection | None = None,
    paths: Sequence[str] | None = None,
) -> list[DiscoveredPlugin]:
    """Every plugin declared through ``loopai.*`` entry points, checked and selected.

    Reads distribution metadata only: nothing is imported. The distribution's
    ``Requires-Dist`` on loopai-core must admit the installed core (pre-releases count),
    its other requirements (markers evaluated) must be installed at fitting versions, and
    the selection rules must turn it on. Two selected distributions declaring one name
    for one kind are both marked ``duplicate``: no winner is picked silently.
    """
    import os

    config = config if config is not None else LoopaiConfig()
    environ = os.environ if environ is None else environ
    selection = selection if selection is not None else Selection.resolve(config, environ)
    env = _environment()
    inventory = read_inventory(paths, environ=environ, derive=lambda fresh: _derive_checks(fresh, env))
    versions = _versions(inventory)
    memo = _checks_from(inventory.derived, _checks_stamp(env, versions))
    applies: dict[str, bool] = {}
    # Once per discovery, not per plugin: the configured entries by kind and name (the first
    # of a name wins, as in PluginsConfiguration.find) and the failing checks of a distribution.
    configured: dict[str, dict[str, Any]] = {}
    for label in GROUPS.values():
        table = configured[label] = {}
        for configured_entry in config.plugins.for_kind(label):
            table.setdefault(configured_entry.name, configured_entry)
    core_needs = functools.cache(lambda: _core_needs(paths, env))  # only when a requirement fails
    passed: dict[tuple[str, ...], list[RequirementCheck]] = {}  # requirement lists that pass, checked
    found: list[DiscoveredPlugin] = []
    for dist in inventory.plugins:
        requires = tuple(dist.requires)
        known = passed.get(requires)
        if known is not None:
            checks, failing = list(known), []
        else:
            checks = [
                c
                for c in (_check(dist, line, versions, env, memo, applies, core_needs) for line in requires)
                if c is not None
            ]
            failing = [c for c in checks if not c.ok]
            if not failing:
                passed[requires] = checks
        for ep in dist.entry_points:
            kind = GROUPS[ep.group]
            record = DiscoveredPlugin(
                name=ep.name,
                kind=kind,
                group=ep.group,
                value=ep.value,
                distribution=dist.name,
                version=dist.version,
                path=dist.path,
                summary=dist.summary,
                requires=list(dist.requires),
                checks=checks,
            )
            entry = configured[kind].get(ep.name)
            if entry is not None and "priority" in entry.model_fields_set:
                record.priority = entry.priority
            on, record.selected_by = selection.decide(kind, ep.name, dist.name)
            record.selected = on
            if not on:
                record.fail("disabled", record.selected_by)
            elif any(c.project == CORE for c in failing):
                record.fail("incompatible", "; ".join(c.message for c in failing))
            elif failing:
                record.fail("missing-dependency", "; ".join(c.message for c in failing))
            found.append(record)
    _mark_duplicates(found)
    order = {label: index for index, label in enumerate(GROUPS.values())}
    found.sort(key=lambda r: (order[r.kind], r.name, r.distribution))
    return found


def _versions(inventory: Inventory) -> dict[str, str]:
    versions = dict(inventory.versions)
    if CORE not in versions:
        from loopai import __version__

        versions[CORE] = __version__
    return versions


def _checks_stamp(env: Mapping[str, str], versions: Mapping[str, str]) -> str:
    """What a requirement's outcome depends on besides the installed versions (cached with it)."""
    import packaging

    return json.dumps([env, versions[CORE], packaging.__version__], sort_keys=True)


def _derive_checks(inventory: Inventory, env: dict[str, str]) -> dict[str, Any]:
    """For the discovery cache: every requirement line of ``inventory`` that passes or does not apply.

    A warm discovery then parses no requirement at all. Failures are not kept: their
    messages name the distribution, and they are checked again each time.
    """
    versions = _versions(inventory)
    memo: dict[str, RequirementCheck | None] = {}
    applies: dict[str, bool] = {}
    for dist in inventory.plugins:
        for line in dist.requires:
            _check(dist, line, versions, env, memo, applies)
    kept = {line: None if c is None else [c.requirement, c.installed, c.project] for line, c in memo.items()}
    return {"stamp": _checks_stamp(env, versions), "checks": kept}


def _checks_from(derived: Any, stamp: str) -> dict[str, RequirementCheck | None]:
    """The outcomes :func:`_derive_checks` kept, when they were made for this environment."""
    memo: dict[str, RequirementCheck | None] = {}
    if not isinstance(derived, dict) or derived.get("stamp") != stamp:
        return memo
    try:
        for line, kept in derived["checks"].items():
            if kept is None:
                memo[line] = None
            else:
                wanted, installed, project = kept
                memo[line] = RequirementCheck(wanted, True, installed, f"{wanted}: {installed} is installed", project)
    except (LookupError, TypeError, ValueError, AttributeError):
        return {}  # not what this version writes: check every line
    return memo


def _mark_duplicates(found: list[DiscoveredPlugin]) -> None:
    first: dict[tuple[str, str], DiscoveredPlugin] = {}
    by_key: dict[tuple[str, str], list[DiscoveredPlugin]] = {}  # only names declared more than once
    for record in found:
        if record.status == "ok":
            key = (record.kind, record.name)
            other = first.setdefault(key, record)
            if other is not record:
                by_key.setdefault(key, [other]).append(record)
    for (kind, name), records in by_key.items():
        records.sort(key=lambda r: (r.distribution, r.version))  # directory order is arbitrary
        owners = ", ".join(f"{r.distribution} {r.version} ({r.value})" for r in records)
        for record in records:
            record.fail(
                "duplicate",
                f"the {kind} name {name!r} is declared by {owners}; none was loaded: uninstall one, "
                f"or turn one off with LOOPAI_DISABLE_PLUGINS={records[0].distribution}:{name}",
            )


def _import(value: str) -> Any:
    value = value.split("[", 1)[0]  # ``module:attr [extra]``: extras are a packaging matter
    module_name, _, attribute = value.partition(":")
    target: Any = importlib.import_module(module_name.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        target = getattr(target, part)
    return target


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_FATAL = (KeyboardInterrupt, GeneratorExit)
"""What a plugin may raise that still stops everything: the user's Ctrl-C, a generator's close."""


@_gc_paused
def load_discovered(
    found: Sequence[DiscoveredPlugin],
    registry: PluginRegistry,
    config: LoopaiConfig | None = None,
    *,
    strict: bool = False,
) -> list[DiscoveredPlugin]:
    """Import, construct, configure and register every ``ok`` plugin of ``found``.

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
    loaded = []
    prefix = config.where_prefix()  # once: a thousand plugins need a thousand messages' heads
    for record in found:
        if record.status != "ok":
            continue
        kind = kind_from(record.kind)
        entry = config.plugins.find(kind, record.name)
        where = f"{prefix}{_CONFIG_KEYS[record.kind]}.{record.name}"
        settings = entry.configuration if entry is not None else {}
        try:
            target = _import(record.value)
        except _FATAL:
            raise
        except BaseException as exc:  # SystemExit too: a plugin must not end the host
            record.fail(
                "failed",
                f"importing {record.value} failed: {_describe(exc)}; reinstall or upgrade {record.distribution}",
            )
            continue
        if settings and not _takes_settings(target):
            warning = _settings_ignored(target, record, where)
            if strict:
                record.fail("failed", f"{warning} (strict mode)")
                continue
            record.warnings.append(warning)
            log.warning("%s", warning)
        try:
            plugin = _instantiate(target, kind, settings, where, record)
            registry.register(plugin, name=record.name, kinds=(kind,))
        except _FATAL:
            raise
        except PluginSettingsError as exc:
            record.fail("failed", str(exc))  # the configuration is wrong: its message names the field
            continue
        except LoopaiError as exc:  # the plugin itself is wrong: only its maintainers can fix it
            record.fail("failed", f"{exc}; {_remedy(record)}")
            continue
        except BaseException as exc:
            record.fail("failed", f"constructing {record.value} failed: {_describe(exc)}; {_remedy(record)}")
            continue
        registered = registry.resolve(kind, record.name)
        if registered is not None:
            # A plugin that does not state its own version or description has its package's.
            if registered.version == Plugin.version:
                registered.version = record.version
            if not registered.description:
                registered.description = record.summary
        if entry is not None and isinstance(registered, WebhookHandlerPlugin):
            accepted, said = _accepts(registered, settings)
            if not accepted:  # as the host would refuse it: said here, before it is counted as loaded
                registry.unregister(kind, record.name)
                detail = f": {'; '.join(said)}" if said else ""
                record.fail(
                    "failed",
                    f"{where}: webhook handler {record.name!r} refused its settings (validate_configuration() "
                    f"returned False){detail}; fix them, or set enabled = false to leave it off",
                )
                continue
        record.loaded = True
        # What the configuration sets, the host applies next; else the plugin's own values.
        given = entry.model_fields_set if entry is not None else set()
        if registered is None:
            record.enabled = False
        else:
            record.enabled = entry.enabled if entry is not None and "enabled" in given else registered.enabled
            if "priority" not in given:
                record.priority = registered.priority
            if not record.enabled:
                record.status, record.reason = "disabled", _why_off(registered, record, settings, config)
        loaded.append(record)
    return loaded


def _remedy(record: DiscoveredPlugin) -> str:
    return (
        f"upgrade {record.distribution} or report it to its maintainers; "
        f"to start without it: LOOPAI_DISABLE_PLUGINS={record.distribution}:{record.name}"
    )


def _takes_settings(target: Any) -> bool:
    """Whether an entry point's object can be given settings: a plugin class or instance."""
    return isinstance(target, Plugin) or (isinstance(target, type) and issubclass(target, Plugin))


def _settings_ignored(target: Any, record: DiscoveredPlugin, where: str) -> str:
    what = "a module of @hookimpl functions" if isinstance(target, types.ModuleType) else "not a loopai plugin class"
    return (
        f"{where}: settings are ignored: {record.value} ({record.distribution} {record.version}) is {what}, "
        f"and module plugins take no settings; remove its configuration table, or ask the maintainers of "
        f"{record.distribution} for a plugin class with a Config model"
    )


def _why_off(plugin: Plugin, record: DiscoveredPlugin, settings: Mapping[str, Any], config: LoopaiConfig) -> str:
    """Why a plugin that loaded is off, and how to turn it on."""
    source = config.source_label if config.source_label != "<defaults>" else "loopai.toml"
    table = f"[plugins.{_CONFIG_KEYS[record.kind]}.{record.name}]"
    if isinstance(plugin, WebhookHandlerPlugin):
        accepted, said = _accepts(plugin, settings)
        if not accepted:
            detail = f": {'; '.join(said)}" if said else ""
            return f"idle: validate_configuration() refused its settings{detail}; set them under {table} in {source}"
    return (
        f"off: the plugin turned itself off (enabled is False once constructed); "
        f"to turn it on: enabled = true under {table} in {source}"
    )


class _Said(logging.Handler):
    """Collects the warnings logged on one thread (what a plugin says when it refuses settings)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.messages.append(record.getMessage())
            except Exception:
                self.messages.append(str(record.msg))


def _accepts(plugin: WebhookHandlerPlugin, settings: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether ``plugin.validate_configuration(settings)`` accepts them, and the warnings it logged.

    A plugin that raises instead counts as refusing, with the exception as what it said.
    """
    said = _Said()
    root = logging.getLogger()
    root.addHandler(said)
    try:
        return bool(plugin.validate_configuration(settings)), said.messages
    except _FATAL:
        raise
    except BaseException as exc:
        return False, [*said.messages, f"validate_configuration() raised {_describe(exc)}"]
    finally:
        root.removeHandler(said)


def _instantiate(
    target: Any, kind: type[Plugin], settings: Mapping[str, Any], where: str, record: DiscoveredPlugin
) -> Any:
    if isinstance(target, type):
        if issubclass(target, Plugin):
            if not issubclass(target, kind):
                raise LoopaiError(
                    f"entry point [{record.group}] {record.name} = {record.value} of {record.distribution} "
                    f"names {target.__name__}, which is not a subclass of loopai.{kind.__name__}"
                )
            return target(validate_settings(target.Config, settings, where))
        return target()
    if isinstance(target, Plugin) and settings:
        target.configure(settings, where=where)
    return target
