"""What a reload changed: plugins added, removed and reconfigured, and the typed result a reload returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from loopai._kinds import kind_of
from loopai.registry import PluginRegistry, RegisteredPlugin

__all__ = ["PluginChange", "ReloadResult", "fingerprints", "compare"]

Fingerprint = tuple[Any, ...]


@dataclass(frozen=True)
class PluginChange:
    """One plugin a reload added, removed or reconfigured; ``what`` says what changed (reconfigured only)."""

    kind: str
    name: str
    what: tuple[str, ...] = ()

    def __str__(self) -> str:
        changed = f" ({', '.join(self.what)})" if self.what else ""
        return f"{self.kind} {self.name!r}{changed}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "name": self.name, "changed": list(self.what)}


@dataclass(frozen=True)
class ReloadResult:
    """What :meth:`loopai.Host.reload` did.

    ``reloaded`` is False when the reload failed and nothing changed (the previous plugin set
    keeps running); ``problems`` says why, one line each (with ``reloaded`` True they are what
    the new set reported: a plugin left out, a shutdown that failed...). ``added``,
    ``removed`` and ``reconfigured`` compare the enabled plugins before and after (empty when
    nothing was reloaded); a reconfigured plugin names what changed (settings, priority,
    order, isolation, version...). ``generation`` numbers the host's plugin sets (1 at
    construction); ``source`` is the configuration file read, if any. True when reloaded.
    """

    reloaded: bool
    added: tuple[PluginChange, ...] = ()
    removed: tuple[PluginChange, ...] = ()
    reconfigured: tuple[PluginChange, ...] = ()
    problems: tuple[str, ...] = ()
    generation: int = 0
    source: str | None = None

    def __bool__(self) -> bool:
        return self.reloaded

    @property
    def changed(self) -> bool:
        """Whether any plugin was added, removed or reconfigured."""
        return bool(self.added or self.removed or self.reconfigured)

    def summary(self) -> str:
        """One line: ``reloaded: 1 added (...), 0 removed, 1 reconfigured (...)`` or why it failed."""
        if not self.reloaded:
            return f"reload failed, nothing changed: {'; '.join(self.problems)}"
        parts = []
        for label, changes in (("added", self.added), ("removed", self.removed), ("reconfigured", self.reconfigured)):
            named = f" ({', '.join(map(str, changes))})" if changes else ""
            parts.append(f"{len(changes)} {label}{named}")
        problems = f"; {len(self.problems)} problem(s)" if self.problems else ""
        return f"reloaded (plugin set {self.generation}): {', '.join(parts)}{problems}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``loopai serve`` answers to an admin reload)."""
        return {
            "reloaded": self.reloaded,
            "generation": self.generation,
            "source": self.source,
            "added": [change.to_dict() for change in self.added],
            "removed": [change.to_dict() for change in self.removed],
            "reconfigured": [change.to_dict() for change in self.reconfigured],
            "problems": list(self.problems),
        }


_ASPECTS = (
    "version",
    "settings",
    "priority",
    "timeout",
    "metadata",
    "requires_plugins",
    "run_before",
    "run_after",
    "isolation",
    "workers",
    "memory_limit_mb",
    "cpu_time_limit_s",
    "supported_events",
    "max_retries",
)


def _fingerprint(entry: RegisteredPlugin) -> Fingerprint:
    plugin = entry.plugin
    settings = getattr(plugin, "config", None)  # a plugin whose __init__ did not call super().__init__() has none
    # Python values, not JSON: SecretStr compares its secret, so a changed secret is a change.
    settings = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})
    return (
        plugin.version,
        settings,
        plugin.priority,
        plugin.timeout,
        dict(getattr(plugin, "metadata", None) or {}),
        tuple(plugin.requires_plugins),
        tuple(plugin.run_before),
        tuple(plugin.run_after),
        plugin.isolation,
        plugin.workers,
        plugin.memory_limit_mb,
        plugin.cpu_time_limit_s,
        _events(plugin),
        getattr(plugin, "max_retries", None),
    )


def _events(plugin: Any) -> Any:
    declared = getattr(plugin, "supported_events", None)
    if declared is None or isinstance(declared, str):
        return declared
    try:
        return frozenset(str(event) for event in declared)
    except TypeError:
        return repr(declared)


def fingerprints(registry: PluginRegistry) -> dict[tuple[str, str], Fingerprint]:
    """What a reload compares, for every enabled plugin, by ``(kind label, name)``; read now, before
    anything is reconfigured (a plugin registered in code is one object in both sets)."""
    return {(kind_of(entry.kind).label, entry.name): _fingerprint(entry) for entry in registry if entry.plugin.enabled}


def compare(
    before: dict[tuple[str, str], Fingerprint], after: dict[tuple[str, str], Fingerprint]
) -> tuple[tuple[PluginChange, ...], tuple[PluginChange, ...], tuple[PluginChange, ...]]:
    """Plugins added, removed and reconfigured from ``before`` to ``after`` (each sorted by kind and name)."""
    added = tuple(PluginChange(*key) for key in sorted(after.keys() - before.keys()))
    removed = tuple(PluginChange(*key) for key in sorted(before.keys() - after.keys()))
    reconfigured = []
    for key in sorted(before.keys() & after.keys()):
        what = tuple(aspect for aspect, old, new in zip(_ASPECTS, before[key], after[key], strict=True) if old != new)
        if what:
            reconfigured.append(PluginChange(*key, what))
    return added, removed, tuple(reconfigured)
