"""Which discovered plugins may load: autoload, allow and deny lists, from flags, env and config."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from loopai._flags import is_true
from loopai._kinds import KINDS
from loopai._suggest import did_you_mean
from loopai.config import LoopaiConfig
from loopai.discovery._inventory import canonical

__all__ = ["Selection"]


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


_GLOB_CHARACTERS = frozenset("*?[")


def _matches(pattern: str, name: str, distribution: str) -> bool:
    """Whether ``pattern`` selects plugin ``name`` of ``distribution`` (its canonical name).

    ``dist:name`` globs match each part: the distribution part normalised as PEP 503 says,
    the name part as written. A bare pattern globs the plugin name; without glob characters
    it also names a whole distribution (any spelling).
    """
    dist_part, colon, name_part = pattern.partition(":")
    if colon:
        return fnmatch.fnmatchcase(distribution, canonical(dist_part)) and fnmatch.fnmatchcase(name, name_part)
    if fnmatch.fnmatchcase(name, pattern):
        return True
    return _GLOB_CHARACTERS.isdisjoint(pattern) and canonical(pattern) == distribution


@dataclass(frozen=True)
class Selection:
    """The rules that turn discovered plugins on or off before anything is imported.

    Order: a deny rule wins (``--disable-plugins``, ``LOOPAI_DISABLE_PLUGINS``, config
    ``deny`` or ``enabled = false``: all of them apply); then an allow list, when one is
    given (the first of ``--plugins``, ``LOOPAI_PLUGINS``, config ``allow``), decides; then, with autoload off
    (``--no-autoload``, ``LOOPAI_DISABLE_PLUGIN_AUTOLOAD=1``, config ``autoload = false``),
    only plugins named in the configuration load; else everything loads.

    Patterns are shell globs, comma-separated in flags and environment variables:

    - ``name`` (``slack``, ``json-*``) matches plugin names, as written;
    - ``distribution:name`` (``loopai-slack:*``) matches plugins of one distribution; the
      distribution part is normalised as PEP 503 says, so ``Loopai_Slack:*`` and
      ``loopai.slack:*`` mean the same;
    - a bare name without glob characters also matches a whole distribution of that name,
      however spelled: ``LOOPAI_DISABLE_PLUGINS=loopai-recorder`` turns off every plugin
      of loopai-recorder (and any plugin named ``loopai-recorder``). To glob over
      distributions, write ``loopai-*:*``: a bare ``loopai-*`` globs plugin names only.

    Each ``*_source`` says where a rule came from, so listings can explain themselves.
    """

    allow: tuple[str, ...] | None = None
    allow_source: str = ""
    deny: tuple[str, ...] = ()
    deny_source: str = ""
    autoload: bool = True
    autoload_source: str = "default"
    configured: Mapping[tuple[str, str], bool] | None = None
    config_label: str = "configuration"
    deny_sources: tuple[str, ...] = ()
    """Where each pattern of ``deny`` came from (else ``deny_source``)."""
    arguments: tuple[tuple[str, ...] | None, tuple[str, ...] | None, bool | None] = (None, None, None)
    """The command-line values (``allow``, ``deny``, ``autoload``) it was resolved with (see :meth:`again`)."""

    @classmethod
    def resolve(
        cls,
        config: LoopaiConfig | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        autoload: bool | None = None,
    ) -> Selection:
        """Combine command-line values (arguments), ``environ`` and ``config`` into rules."""
        config = config if config is not None else LoopaiConfig()
        environ = environ if environ is not None else {}
        label = config.source_label
        if allow is not None:
            allowed: tuple[str, ...] | None = tuple(allow)
            allow_source = "--plugins"
        elif environ.get("LOOPAI_PLUGINS", "").strip():
            allowed, allow_source = tuple(_split(environ["LOOPAI_PLUGINS"])), "LOOPAI_PLUGINS"
        elif config.allow:
            allowed, allow_source = tuple(config.allow), config.variable_of("allow") or f"allow in {label}"
        else:
            allowed, allow_source = None, ""
        # Deny lists add up: turning a plugin off in one place is never undone by another.
        sourced = [(p, "--disable-plugins") for p in deny or ()]
        sourced += [(p, "LOOPAI_DISABLE_PLUGINS") for p in _split(environ.get("LOOPAI_DISABLE_PLUGINS", ""))]
        sourced += [(p, config.variable_of("deny") or f"deny in {label}") for p in config.deny]
        denied = tuple(p for p, _ in sourced)
        deny_source = ", ".join(dict.fromkeys(source for _, source in sourced))
        env_autoload = environ.get("LOOPAI_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower()
        if autoload is not None:
            auto, auto_source = autoload, "--no-autoload" if not autoload else "--autoload"
        elif env_autoload:
            auto, auto_source = not is_true(env_autoload), "LOOPAI_DISABLE_PLUGIN_AUTOLOAD"
        elif not config.autoload:
            auto, auto_source = False, config.variable_of("autoload") or f"autoload = false in {label}"
        else:
            auto, auto_source = True, "default"
        configured = {
            (kind.label, entry.name): entry.enabled for kind in KINDS for entry in config.plugins.for_kind(kind)
        }
        sources = tuple(source for _, source in sourced)
        given = (tuple(allow) if allow is not None else None, tuple(deny) if deny is not None else None, autoload)
        return cls(allowed, allow_source, denied, deny_source, auto, auto_source, configured, label, sources, given)

    def again(self, config: LoopaiConfig, environ: Mapping[str, str]) -> Selection:
        """The same command-line values combined with another configuration (a reload's)."""
        allow, deny, autoload = self.arguments
        return Selection.resolve(config, environ, allow=allow, deny=deny, autoload=autoload)

    def denies(self, kind: str, name: str, distribution: str) -> str | None:
        """The deny rule that turns plugin ``name`` off (``denied by ... (pattern)``), or None.

        Deny rules apply to every source of plugins: installed ones and configured factories."""
        distribution = canonical(distribution)
        for index, pattern in enumerate(self.deny):
            if _matches(pattern, name, distribution):
                source = self.deny_sources[index] if index < len(self.deny_sources) else self.deny_source
                return f"denied by {source} ({pattern})"
        return None

    def unmatched(self, plugins: Iterable[tuple[str, str]], *, allowing: bool = False) -> list[str]:
        """A warning for each allow or deny pattern (``allowing``: allow patterns only) that matches
        none of ``plugins`` (``(name, distribution)`` pairs; ``""`` for a configured factory): a
        misspelt ``--plugins`` would otherwise turn every plugin off without a word, and a misspelt
        deny leave one on."""
        known = [(name, canonical(distribution)) for name, distribution in plugins]
        names = sorted({name for name, _ in known} | {distribution for _, distribution in known if distribution})
        said = []
        rules = [(pattern, self.allow_source) for pattern in self.allow or ()]
        rules += [(pattern, self.deny_sources[i] if i < len(self.deny_sources) else self.deny_source)
                  for i, pattern in enumerate(self.deny) if not allowing]  # fmt: skip
        for pattern, source in rules:
            if not any(_matches(pattern, name, distribution) for name, distribution in known):
                dist_part, colon, name_part = pattern.partition(":")
                named = name_part if colon and _GLOB_CHARACTERS.isdisjoint(name_part) else dist_part
                hint = did_you_mean(named, names)
                said.append(f"{source}: {pattern!r} matches no installed or configured plugin{hint}")
        return said

    def decide(self, kind: str, name: str, distribution: str) -> tuple[bool, str]:
        """``(on, rule)`` for one plugin; ``rule`` is a short human explanation."""
        if self.deny:
            denied = self.denies(kind, name, distribution)
            if denied is not None:
                return False, denied
        if self.allow:  # what patterns match against; most hosts have none
            distribution = canonical(distribution)
        configured = (self.configured or {}).get((kind, name))
        if configured is False:
            return False, f"enabled = false in {self.config_label}"
        if self.allow is not None:
            for pattern in self.allow:
                if _matches(pattern, name, distribution):
                    return True, f"allowed by {self.allow_source} ({pattern})"
            return False, f"not in the allow list of {self.allow_source} ({','.join(self.allow) or 'empty'})"
        if not self.autoload:
            if configured:
                return True, f"named in {self.config_label} (autoload is off)"
            return False, f"autoload is off ({self.autoload_source}) and it is not named in {self.config_label}"
        if configured:
            return True, f"autoload; configured in {self.config_label}"
        return True, "autoload"
