"""Building a host's plugin set: plugins from code, installed plugins, and configured factories.

Each source is isolated: a plugin that cannot be registered, loaded or configured is left
out, and one line says which and why (the host collects these as its problems).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from loopai._errors import LoopaiError
from loopai._isolation import Raised, attempt, describe
from loopai.config import LoopaiConfig
from loopai.discovery import DiscoveredPlugin, Selection, apply_configuration, discover, load_discovered
from loopai.registry import PluginRegistry

__all__ = ["populate"]


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
) -> tuple[list[DiscoveredPlugin], list[str]]:
    """Register ``plugins``, then (with ``installed``) discover and load installed ones, then apply
    ``config`` to what it names. Returns the discovered plugins and every problem, in that order."""
    problems: list[str] = []
    for plugin in plugins:
        outcome = attempt(registry.register, plugin)
        if isinstance(outcome, Raised):
            error = outcome.error
            problems.append(
                str(error)
                if isinstance(error, LoopaiError)
                else f"plugin {_name_of(plugin)!r} failed: {describe(error)}"
            )
    if selection is None:
        selection = Selection.resolve(config, environ)
    discovered: list[DiscoveredPlugin] = []
    if installed:
        discovered = discover(config, environ=environ, selection=selection, paths=paths)
        load_discovered(discovered, registry, config, strict=strict)
        problems += [record.problem() for record in discovered if record.status not in ("ok", "disabled")]
    problems += apply_configuration(config, registry, discovered, selection)
    return discovered, problems


def _name_of(plugin: object) -> str:
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(plugin, "__name__", type(plugin).__name__))
