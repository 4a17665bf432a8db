"""Entry-point discovery: every declared plugin, its requirement checks and selection, before any import."""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from loopai._kinds import KINDS, kind_of
from loopai._log import logger
from loopai.config import LoopaiConfig, PluginConfiguration
from loopai.discovery._cache import read_inventory
from loopai.discovery._checks import RequirementCheck, checks_from, checks_stamp, installed_versions
from loopai.discovery._inventory import CORE, DistInfo, Inventory, canonical
from loopai.discovery._selection import Selection

__all__ = ["DiscoveredPlugin", "Status", "discover", "gc_paused"]

log = logger("loopai.discovery")

Status = Literal["ok", "disabled", "incompatible", "missing-dependency", "missing-plugin", "duplicate", "failed"]


@dataclass(slots=True)
class DiscoveredPlugin:
    """One declared plugin (an entry point) and what discovery decided about it.

    ``status`` is ``ok``, ``disabled`` (off: a selection rule turned it off, or once
    loaded, the plugin turned itself off), ``incompatible`` (its distribution does not
    accept the installed loopai-core), ``missing-dependency``, ``missing-plugin`` (once
    loaded: a plugin it names in ``requires_plugins`` is not loaded and enabled),
    ``duplicate`` (another distribution declares the same name for the same kind), or
    ``failed`` (importing, constructing, configuring or registering it raised, or its
    settings were refused).
    ``reason`` says why and what to do (None when ``ok``); ``selected_by`` names the
    selection rule that put it on or off, and ``selected`` is that rule's outcome.

    Before loading (``loaded`` False), ``enabled`` is what selection, the requirement checks
    and the configuration's ``enabled`` say: a plugin may still turn itself off when it is
    constructed (a webhook handler without a URL does). ``priority`` is None until the
    plugin is loaded, unless the configuration sets it. ``warnings`` are problems that do
    not keep the plugin out (settings configured for a plugin that takes none).

    Once a host loaded it: ``requires_plugins``, ``run_before`` and ``run_after`` are what the
    plugin declares (or the configuration sets), ``position`` its place in its kind's call
    order (from 1; None when it is not called) and ``placed_by`` why it stands there.
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
    requires_plugins: list[str] = field(default_factory=list)
    run_before: list[str] = field(default_factory=list)
    run_after: list[str] = field(default_factory=list)
    position: int | None = None
    placed_by: str = ""

    @property
    def label(self) -> str:
        """``json-schema-validator (validator, loopai-builtin 0.1.0)``."""
        return f"{self.name} ({self.kind}, {self.distribution} {self.version})"

    def fail(self, status: Status, reason: str) -> None:
        """Mark this plugin as left out, with why."""
        self.status, self.reason, self.enabled = status, reason, False

    def problem(self) -> str:
        """What went wrong and what to do, in one message: ``sampler 'x' (loopai-x 1.0) is left out:
        importing ... failed: ...; reinstall or upgrade loopai-x``."""
        owner = f"{self.distribution} {self.version}"
        return f"{self.kind} {self.name!r} ({owner}) {_LEFT_OUT.get(self.status, 'is left out')}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``loopai plugins list --json`` prints for this plugin.

        ``priority`` is null when it is not known: before loading, unless configured;
        ``position`` is null unless a host loaded it and calls it.
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
            "requires_plugins": list(self.requires_plugins),
            "run_before": list(self.run_before),
            "run_after": list(self.run_after),
            "position": self.position,
            "placed_by": self.placed_by,
        }


_LEFT_OUT: dict[str, str] = {
    "incompatible": "is left out: it does not fit the installed loopai-core",
    "missing-dependency": "is left out: a requirement is missing",
    "duplicate": "is left out: another distribution declares the same name",
    "disabled": "is off",
}
"""How :meth:`DiscoveredPlugin.problem` says each status (a failure's reason says what failed itself)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def gc_paused(function: Callable[_P, _R]) -> Callable[_P, _R]:
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


@gc_paused
def discover(
    config: LoopaiConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    selection: Selection | None = None,
    paths: Sequence[str] | None = None,
    notes: list[str] | None = None,
) -> list[DiscoveredPlugin]:
    """Every plugin declared through ``loopai.*`` entry points, checked and selected.

    Reads distribution metadata only: nothing is imported. The distribution's
    ``Requires-Dist`` on loopai-core must admit the installed core (pre-releases count),
    its other requirements (markers evaluated) must be installed at fitting versions, and
    the selection rules must turn it on. Two selected distributions declaring one name
    for one kind are both marked ``duplicate``: no winner is picked silently.

    One distribution name installed twice on the path (loopai-core, loopai-builtin, or a
    plugin distribution), of which only the first is used, is a warning: logged, and added
    to ``notes`` when given (a strict host makes it an error); so is an allow or deny pattern
    that matches no installed or configured plugin (a misspelt ``--plugins``). Names in
    ``LOOPAI_ALLOW_SHADOWED`` (comma-separated: a development checkout put ahead of the
    installed release on purpose) are not warned about.
    """
    config = config if config is not None else LoopaiConfig()
    environ = os.environ if environ is None else environ
    selection = selection if selection is not None else Selection.resolve(config, environ)
    inventory = read_inventory(paths, environ=environ, derive=_derive_checks)
    allowed = {canonical(n.strip()) for n in environ.get("LOOPAI_ALLOW_SHADOWED", "").split(",") if n.strip()}
    for twice in inventory.shadowed:
        if twice.name in allowed:
            continue
        log.warning("%s", twice.message())
        if notes is not None:
            notes.append(twice.message())
    installed = installed_versions(inventory)
    memo = checks_from(inventory.derived, checks_stamp(installed))
    # Once per discovery, not per plugin: the configured entries by kind and name (the first
    # of a name wins, as in PluginsConfiguration.find) and the failing checks of a distribution.
    configured: dict[str, dict[str, PluginConfiguration]] = {}
    for each in KINDS:
        table = configured[each.label] = {}
        for configured_entry in config.plugins.for_kind(each):
            table.setdefault(configured_entry.name, configured_entry)
    check = _checker(memo, installed, paths)
    labels = {kind.group: kind.label for kind in KINDS}
    passed: dict[tuple[str, ...], list[RequirementCheck]] = {}  # requirement lists that pass, checked
    found: list[DiscoveredPlugin] = []
    for dist in inventory.plugins:
        requires = tuple(dist.requires)
        known = passed.get(requires)
        if known is not None:
            checks, failing = list(known), []
        else:
            checks = [c for c in (check(dist, line) for line in requires) if c is not None]
            failing = [c for c in checks if not c.ok]
            if not failing:
                passed[requires] = checks
        for ep in dist.entry_points:
            kind = labels.get(ep.group) or kind_of(ep.group).label
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
    factories = [(entry.name, "") for each in configured.values() for entry in each.values()]
    for unmatched in selection.unmatched([(r.name, r.distribution) for r in found] + factories):
        log.warning("%s", unmatched)
        if notes is not None:
            notes.append(unmatched)
    order = {kind.label: index for index, kind in enumerate(KINDS)}
    found.sort(key=lambda r: (order[r.kind], r.name, r.distribution))
    return found


def _checker(
    memo: dict[str, RequirementCheck | None], installed: Mapping[str, str], paths: Sequence[str] | None
) -> Callable[[DistInfo, str], RequirementCheck | None]:
    """One discovery's requirement check of a line: a look-up when the cache holds its outcome; the
    first line it does not hold imports ``packaging`` and builds the marker environment, once."""

    @functools.cache
    def checking() -> Callable[[DistInfo, str], RequirementCheck | None]:
        from loopai.discovery import _requirements as requirements

        env = requirements.environment()
        needs = functools.cache(lambda: requirements.core_needs(paths, env))  # only when a requirement fails
        return functools.partial(
            requirements.check_requirement, versions=installed, env=env, memo=memo, applies={}, needs=needs
        )

    def check(dist: DistInfo, line: str) -> RequirementCheck | None:
        return memo[line] if line in memo else checking()(dist, line)

    return check


def _derive_checks(fresh: Inventory) -> dict[str, Any]:
    from loopai.discovery._requirements import derive_checks  # a fresh scan: every line is checked

    return derive_checks(fresh)


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
