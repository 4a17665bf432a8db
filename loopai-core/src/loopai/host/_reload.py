"""Hot reload: build the next plugin set aside, start it, swap it in, retire the old one after its last call.

A reload re-reads the configuration (or takes the one given), rediscovers installed plugins
and builds a new plugin set beside the running one. Plugins registered in code are carried
over: the same objects, registered again, never started or shut down twice (an isolated one
gets new workers). When the new set is sound and started, it becomes current in one
assignment; calls in flight finish on the old set, whose ``shutdown`` hooks run after its
last call. A reload that fails changes nothing and says why.

It fails when the configuration cannot be read, when strict mode finds any problem, when a
plugin the configuration names cannot run (it is not installed, fails to load, or its settings
are refused: what ``loopai run`` refuses to start on), when a new plugin's
``startup`` raises, or when a plugin that runs now would be lost to a failure. A plugin
uninstalled, turned off or left without a required plugin on purpose is simply removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from loopai._errors import ConfigError
from loopai._kinds import KINDS, Kind, kind_of
from loopai._log import logger
from loopai._plugin import Plugin
from loopai.config import LoopaiConfig
from loopai.host._build import configured_failures, is_about
from loopai.host._changes import ReloadResult, compare, fingerprints
from loopai.host._set import PluginSet
from loopai.host._settings import Settings
from loopai.registry import RegisteredPlugin

__all__ = ["HostAside", "Reloadable", "areload", "carried_over", "reload"]

log = logger("loopai")

_FAILED_STATUSES = frozenset(("failed", "incompatible", "missing-dependency", "duplicate"))


class Reloadable(Protocol):
    """What a reload needs of the host (see :class:`loopai.Host`)."""

    _set: PluginSet
    problems: list[str]

    @property
    def started(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def _problem(self, message: str) -> None: ...

    def _read_config(self) -> LoopaiConfig: ...

    def _build_set(
        self, config: LoopaiConfig, carried: Sequence[RegisteredPlugin]
    ) -> tuple[PluginSet, list[str], Settings]: ...

    def _swap(self, candidate: PluginSet, settings: Settings, problems: Sequence[str]) -> None: ...


class HostAside:
    """The host as the hooks of a set that is not (or no longer) current see it during a reload:
    its ``registry``, ``config`` and ``discovered`` are that set's; everything else is the host's."""

    def __init__(self, host: Any, plugin_set: PluginSet) -> None:
        self._host = host
        self._plugin_set = plugin_set

    @property
    def registry(self) -> Any:
        return self._plugin_set.registry

    @property
    def config(self) -> LoopaiConfig:
        return self._plugin_set.config

    @property
    def discovered(self) -> Any:
        return self._plugin_set.discovered

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    def __repr__(self) -> str:
        return f"<{self._host!r} with plugin set {self._plugin_set.generation}>"


def carried_over(old: PluginSet) -> list[RegisteredPlugin]:
    """The entries of ``old`` that were registered in code (not discovered, not a configured factory)."""
    discovered = {(r.kind, r.name) for r in old.discovered if r.loaded}
    factories = {(kind.label, e.name) for kind in KINDS for e in old.config.plugins.for_kind(kind) if e.factory}
    return [e for e in old.registry if (kind_of(e.kind).label, e.name) not in discovered | factories]


def reload(host: Reloadable, config: LoopaiConfig | None) -> ReloadResult:
    """Build, check and start the next set aside, swap it in and retire the old one (see the module)."""
    prepared = _prepare(host, config)
    if isinstance(prepared, ReloadResult):
        return prepared
    old, candidate, settings, problems, before, revived = prepared
    if host.started:
        said: list[str] = []
        candidate.lifecycle.report_to(said.append)
        candidate.lifecycle.begin()
        try:
            candidate.lifecycle.start(HostAside(host, candidate), old.lifecycle.owners())
        except BaseException:
            _give_up_again(revived)
            raise
        if said:
            _abandon(host, candidate, old, revived)
            return _failed(old, said)
    after = fingerprints(candidate.registry)
    host._swap(candidate, settings, problems)
    old.retired = True
    old.drain()
    problems += _retire(host, old, candidate)
    return _succeeded(candidate, before, after, problems)


async def areload(host: Reloadable, config: LoopaiConfig | None) -> ReloadResult:
    """:func:`reload` from async code: async ``startup``/``shutdown`` hooks run on the caller's loop,
    and waiting for the old set's last call does not block it."""
    prepared = await asyncio.to_thread(_prepare, host, config)
    if isinstance(prepared, ReloadResult):
        return prepared
    old, candidate, settings, problems, before, revived = prepared
    if host.started:
        said: list[str] = []
        candidate.lifecycle.report_to(said.append)
        candidate.lifecycle.begin()
        try:
            await candidate.lifecycle.astart(HostAside(host, candidate), old.lifecycle.owners())
        except BaseException:  # cancelled, say: the running set keeps what it gave up on
            _give_up_again(revived)
            raise
        if said:
            await asyncio.to_thread(_abandon, host, candidate, old, revived)
            return _failed(old, said)
    after = fingerprints(candidate.registry)
    host._swap(candidate, settings, problems)
    old.retired = True
    await old.adrain()
    problems += await _aretire(host, old, candidate)
    return _succeeded(candidate, before, after, problems)


Prepared = tuple[PluginSet, PluginSet, Settings, list[str], dict[tuple[str, str], Any], list[Plugin]]
"""The running set, the candidate, its settings and problems, the fingerprints before, the plugins revived."""


def _prepare(host: Reloadable, config: LoopaiConfig | None) -> Prepared | ReloadResult:
    old = host._set
    if host.closed:
        return _failed(old, ["the host is closed: build a new one"])
    try:
        new_config = config if config is not None else host._read_config()
    except ConfigError as exc:
        return _failed(old, exc.problems)
    before = fingerprints(old.registry)
    revived = _revive(old)
    try:
        candidate, problems, settings = host._build_set(new_config, carried_over(old))
    except BaseException:
        _give_up_again(revived)
        raise
    if settings.strict:
        refusals = problems
    else:  # as at the start of loopai run: a plugin it names that cannot run is a mistake
        lost = _lost(old, candidate, problems)  # said with the advice to turn it off: the others only once
        named = configured_failures(new_config, candidate.registry, candidate.discovered, problems)
        places = [new_config.where(kind, name) for kind, name in lost]
        refusals = [*lost.values(), *(line for line in named if not any(is_about(line, where) for where in places))]
    if refusals:
        candidate.pools.close()
        _give_up_again(revived)
        return _failed(old, new_config.with_lines(refusals))
    return old, candidate, settings, problems, before, revived


def _revive(old: PluginSet) -> list[Plugin]:
    """Turn on the plugins ``old``'s worker pools gave up on (and disabled): given up on until a
    reload, and this is one. The next set is built and started with them (a carried-over plugin
    is the same object in both sets); the plugins turned on are returned, for a reload that
    fails to turn off again (:func:`_give_up_again`)."""
    revived = [pool.entry.plugin for pool in old.pools.tripped() if not pool.entry.plugin.enabled]
    for plugin in revived:
        plugin.enabled = True
    return revived


def _give_up_again(revived: Sequence[Plugin]) -> None:
    """A reload failed: the plugins :func:`_revive` turned on are off again in the set that runs on."""
    for plugin in revived:
        plugin.enabled = False


def _lost(old: PluginSet, new: PluginSet, problems: Sequence[str]) -> dict[tuple[Kind, str], str]:
    """Why plugins that run in ``old`` would be lost to a failure in ``new``: one line each, by kind
    and name."""
    records = {(r.kind, r.name): r for r in new.discovered}
    carried = {(kind_of(e.kind).label, e.name) for e in carried_over(old)}
    lost = {}
    for entry in old.registry:
        kind = kind_of(entry.kind)
        key = (kind.label, entry.name)
        if not entry.plugin.enabled or new.registry.contains(kind.base, entry.name):
            continue
        record = records.get(key)
        if record is not None and record.status in _FAILED_STATUSES:
            why = record.reason or record.status
        elif record is None and (key in carried or _is_factory(new.config, kind.label, entry.name)):
            where = f"{kind.key}.{entry.name}"
            why = next((p for p in problems if where in p), "it could not be registered again")
        else:
            continue  # uninstalled or turned off on purpose
        advice = "" if "enabled = false" in why else "; fix that, or turn it off (enabled = false) to reload without it"
        lost[(kind, entry.name)] = f"{kind.title} {entry.name!r} runs now and would be lost: {why}{advice}"
    return lost


def _is_factory(config: LoopaiConfig, kind: str, name: str) -> bool:
    entry = config.plugins.find(kind, name)
    return entry is not None and entry.enabled and bool(entry.factory)


def _abandon(host: Reloadable, candidate: PluginSet, old: PluginSet, revived: Sequence[Plugin]) -> None:
    """Shut down what a failed reload started (not the plugins the running set shares with it),
    and turn off again the plugins the running set had given up on."""
    try:
        entries = candidate.lifecycle.begin_close(keep=old.lifecycle.owners())
        candidate.lifecycle.report_to(lambda message: log.warning("%s", message))
        candidate.lifecycle.stop(HostAside(host, candidate), entries or ())
        candidate.pools.close()
    finally:
        _give_up_again(revived)


def _retire(host: Reloadable, old: PluginSet, new: PluginSet) -> list[str]:
    said: list[str] = []
    entries = old.lifecycle.begin_close(keep=new.lifecycle.owners())
    old.lifecycle.report_to(said.append)
    old.lifecycle.stop(HostAside(host, old), entries or ())
    old.pools.close()
    for message in said:
        host._problem(message)
    return said


async def _aretire(host: Reloadable, old: PluginSet, new: PluginSet) -> list[str]:
    said: list[str] = []
    entries = old.lifecycle.begin_close(keep=new.lifecycle.owners())
    old.lifecycle.report_to(said.append)
    await old.lifecycle.astop(HostAside(host, old), entries or ())
    await asyncio.to_thread(old.pools.close)
    for message in said:
        host._problem(message)
    return said


def _failed(old: PluginSet, problems: Sequence[str]) -> ReloadResult:
    result = ReloadResult(False, problems=tuple(problems), generation=old.generation, source=_source(old.config))
    log.warning("%s", result.summary())
    return result


def _succeeded(
    new: PluginSet, before: dict[tuple[str, str], Any], after: dict[tuple[str, str], Any], problems: list[str]
) -> ReloadResult:
    added, removed, reconfigured = compare(before, after)
    result = ReloadResult(
        True, added, removed, reconfigured, tuple(problems), generation=new.generation, source=_source(new.config)
    )
    log.info("%s", result.summary())
    return result


def _source(config: LoopaiConfig) -> str | None:
    return str(config.source) if config.source is not None else None
