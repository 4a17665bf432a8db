"""Building a host's plugin set: plugins from code, installed plugins, and configured factories.

Each source is isolated: a plugin that cannot be registered, loaded or configured is left
out, and one line says which and why (the host collects these as its problems). Then the
dependencies between plugins are settled: a plugin whose ``requires_plugins`` are not all
loaded and enabled is disabled (status ``missing-plugin``), and cycles of order constraints
and misspelt names in them are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopai._errors import LoopaiError
from loopai._isolation import Raised, attempt, describe
from loopai._kinds import KINDS, Kind, kind_of
from loopai._suggest import closest
from loopai.config import LoopaiConfig
from loopai.discovery import DiscoveredPlugin, Selection, apply_configuration, discover, load_discovered
from loopai.host._invoke import Invoker
from loopai.host._lifecycle import Lifecycle
from loopai.host._process import Pools, WorkerPool
from loopai.host._set import PluginSet
from loopai.host._settings import Settings
from loopai.registry import (
    Ordering,
    PluginRegistry,
    RegisteredPlugin,
    order_entries,
    requirement_cycles,
    unmet_requirements,
)

__all__ = ["Sources", "build_set", "configured_failures", "describe_order", "is_about", "orderings", "populate"]


@dataclass(frozen=True)
class Sources:
    """What every plugin set of one host is built with, kept for its reloads: where plugins come
    from besides code (installed ones, with ``installed``: which ``selection`` of them, on which
    ``paths``), the ``environ`` to read, the host's ``invoker``, where its lifecycle problems
    go (``report``) and who is told when an isolated plugin's pool gives up (``given_up``)."""

    installed: bool
    selection: Selection | None
    paths: Sequence[str] | None
    environ: Mapping[str, str]
    invoker: Invoker
    report: Callable[[str], None]
    given_up: Callable[[WorkerPool, str], None]


def build_set(
    generation: int,
    config: LoopaiConfig,
    registry: PluginRegistry,
    settings: Settings,
    sources: Sources,
    plugins: Iterable[object] = (),
    carried: Sequence[RegisteredPlugin] = (),
) -> tuple[PluginSet, list[str]]:
    """A plugin set (not started) of ``plugins``, ``carried`` entries and what ``config`` and
    ``sources`` bring, with its problems (cycles of order constraints and misspelt names in them
    among them: the plugins run all the same)."""
    pools = Pools(settings.default_timeout, sources.given_up)
    lifecycle = Lifecycle(
        registry, sources.invoker, settings.tracer, settings.default_timeout, sources.report, pools.hooks
    )
    plugin_set = PluginSet(generation, registry, config, [], lifecycle, pools)
    plugin_set.discovered, problems = populate(
        registry,
        config,
        plugins,
        installed=sources.installed,
        environ=sources.environ,
        selection=sources.selection,
        paths=sources.paths,
        strict=settings.strict,
        carried=carried,
    )
    found = orderings(registry)
    for ordering in found.values():
        problems += ordering.cycle_report + ordering.misspelt  # a misspelt name is no mere note: said
    problems += requirement_cycles(entry for entry in registry if entry.plugin.enabled)
    describe_order(registry, plugin_set.discovered, found)
    return plugin_set, problems


def populate(
    registry: PluginRegistry,
    config: LoopaiConfig,
    plugins: Iterable[object],
    *,
    installed: bool,
    environ: Mapping[str, str],
    selection: Selection | None,
    paths: Sequence[str] | None,
    strict: bool,
    carried: Sequence[RegisteredPlugin] = (),
) -> tuple[list[DiscoveredPlugin], list[str]]:
    """Register ``plugins`` (and ``carried``: entries of a previous set, registered again as they
    were), then (with ``installed``) discover and load installed ones, then apply ``config`` to
    what it names, then settle dependencies. Returns the discovered plugins and every problem
    (not cycles of order constraints: :func:`build_set` reports those with the call order)."""
    problems: list[str] = []
    registrations: list[tuple[tuple[object], dict[str, Any]]] = [((plugin,), {}) for plugin in plugins]
    registrations += [((getattr(e.plugin, "wraps", e.plugin),), {"name": e.name, "kinds": (e.kind,)}) for e in carried]
    for args, named in registrations:
        outcome = attempt(registry.register, *args, **named)
        if isinstance(outcome, Raised):
            error = outcome.error
            problems.append(
                str(error)
                if isinstance(error, LoopaiError)
                else f"plugin {_name_of(args[0])!r} failed: {describe(error)}"
            )
    # A selection given at construction keeps its command-line values; the configuration's part
    # follows ``config`` (a reload's new file).
    selection = Selection.resolve(config, environ) if selection is None else selection.again(config, environ)
    discovered: list[DiscoveredPlugin] = []
    if installed:
        discovered = discover(config, environ=environ, selection=selection, paths=paths, notes=problems)
        load_discovered(discovered, registry, config, strict=strict)
        problems += [record.problem() for record in discovered if record.status not in ("ok", "disabled")]
    problems += apply_configuration(config, registry, discovered, selection)
    for kind, name, why, record in disable_unmet(registry, discovered):
        if record is not None:
            problems.append(record.problem())  # as every discovered plugin's problem is said
            continue
        said = f"{kind.title} {name!r} is disabled (missing-plugin): {why}"
        configured = config.plugins.find(kind, name) is not None
        problems.append(f"{config.where(kind, name)}: {said}" if configured else said)
    return discovered, problems


def disable_unmet(
    registry: PluginRegistry, discovered: list[DiscoveredPlugin]
) -> list[tuple[Kind, str, str, DiscoveredPlugin | None]]:
    """Disable the plugins whose ``requires_plugins`` are not all loaded and enabled (their records
    become ``missing-plugin``); each one's kind, name, why (a missing name close to one that is
    there gets "did you mean") and record (None for a plugin that was not discovered)."""
    disabled = []
    unmet = unmet_requirements(registry)
    there = [entry.name for entry in registry]
    for entry in registry:
        missing = unmet.get((entry.kind, entry.name))
        if missing is None:
            continue
        entry.plugin.enabled = False
        others = [name for name in there if name != entry.name]
        names = ", ".join(_named(name, others) for name in missing)
        verb = "is" if len(missing) == 1 else "are"
        kind = kind_of(entry.kind)
        reason = (
            f"it requires {names}, which {verb} not loaded and enabled; install and enable "
            f"{'it' if len(missing) == 1 else 'them'}, or take {'it' if len(missing) == 1 else 'them'} "
            "out of its requires_plugins"
        )
        found = None
        for record in discovered:
            if record.name == entry.name and record.kind == kind.label and record.loaded:
                record.status, record.reason, record.enabled = "missing-plugin", reason, False
                found = record
        disabled.append((kind, entry.name, reason, found))
    return disabled


def orderings(registry: PluginRegistry) -> dict[str, Ordering]:
    """Each kind's effective call order over the registry's enabled plugins, by kind label."""
    found = {}
    for kind in KINDS:
        names = [entry.name for entry in registry.entries(kind.base, enabled_only=False)]
        _, found[kind.label] = order_entries(kind, registry.entries(kind.base), names)
    return found


def describe_order(registry: PluginRegistry, discovered: list[DiscoveredPlugin], found: dict[str, Ordering]) -> None:
    """Write each loaded plugin's declared order and dependencies, and its place, into its record."""
    places = {(kind, placed.name): placed for kind, ordering in found.items() for placed in ordering.placed}
    for record in discovered:
        entry = registry.entry(record.kind, record.name) if record.loaded else None
        if entry is None:
            continue
        plugin = entry.plugin
        record.requires_plugins = list(plugin.requires_plugins)
        record.run_before, record.run_after = list(plugin.run_before), list(plugin.run_after)
        placed = places.get((record.kind, record.name))
        record.position = placed.position if placed is not None else None
        record.placed_by = placed.reason if placed is not None else ""


def _named(name: str, there: list[str]) -> str:
    """``'business-rulez' (did you mean 'business-rules'?)``, or the name alone when none is close."""
    near = closest(name, there, limit=1)
    return f"{name!r} (did you mean {near[0]!r}?)" if near else repr(name)


def _name_of(plugin: object) -> str:
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(plugin, "__name__", type(plugin).__name__))


def configured_failures(
    config: LoopaiConfig, registry: PluginRegistry, discovered: Sequence[DiscoveredPlugin], problems: Sequence[str]
) -> list[str]:
    """:meth:`loopai.Host.configured_failures` of a plugin set: ``config``, its ``registry``, the
    plugins it ``discovered`` and the ``problems`` met building it."""
    records = {(record.kind, record.name): record for record in discovered}
    failures = []
    for kind in KINDS:
        for entry in config.plugins.for_kind(kind):
            registered = registry.entry(kind.base, entry.name)
            if not entry.enabled or (registered is not None and registered.plugin.enabled):
                continue
            where = config.where(kind, entry.name)
            started = [p for p in problems if f"{entry.name!r} failed to start" in p]
            if started:  # its startup hook raised: the host turned it off
                failures += [f"{where}: {problem}" for problem in started]
                continue
            record = records.get((kind.label, entry.name))
            if record is not None:
                if record.status != "disabled":
                    failures.append(f"{where}: {record.problem()}")
                continue
            failures += [p for p in problems if is_about(p, where)]
    return failures


def is_about(message: str, where: str) -> bool:
    """Whether ``message`` is about the configuration entry at ``where`` (``loopai.toml:
    validators.a``): ``loopai.toml: validators.a.tag: ...`` is, ``... validators.ab: ...`` is not."""
    return message.startswith(where) and message[len(where) : len(where) + 1] in ":.["
