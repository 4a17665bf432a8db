"""Which discovered plugins may load: autoload, allow and deny lists, from flags, env and config."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loopai._config import LoopaiConfig

__all__ = ["Selection"]

_TRUE = {"1", "true", "yes", "on"}


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class Selection:
    """The rules that turn discovered plugins on or off before anything is imported.

    Order: a deny rule wins (``--disable-plugins``, ``LOOPAI_DISABLE_PLUGINS``, config
    ``deny`` or ``enabled = false``); then an allow list, when one is given (the first of
    ``--plugins``, ``LOOPAI_PLUGINS``, config ``allow``), decides; then, with autoload off
    (``--no-autoload``, ``LOOPAI_DISABLE_PLUGIN_AUTOLOAD=1``, config ``autoload = false``),
    only plugins named in the configuration load; else everything loads.

    Patterns are shell globs matched against the plugin name or ``distribution:name``.
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
            allowed, allow_source = tuple(config.allow), f"allow in {label}"
        else:
            allowed, allow_source = None, ""
        if deny is not None:
            denied, deny_source = tuple(deny), "--disable-plugins"
        elif environ.get("LOOPAI_DISABLE_PLUGINS", "").strip():
            denied, deny_source = tuple(_split(environ["LOOPAI_DISABLE_PLUGINS"])), "LOOPAI_DISABLE_PLUGINS"
        else:
            denied, deny_source = tuple(config.deny), f"deny in {label}"
        env_autoload = environ.get("LOOPAI_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower()
        if autoload is not None:
            auto, auto_source = autoload, "--no-autoload" if not autoload else "--autoload"
        elif env_autoload:
            auto, auto_source = env_autoload not in _TRUE, "LOOPAI_DISABLE_PLUGIN_AUTOLOAD"
        elif not config.autoload:
            auto, auto_source = False, f"autoload = false in {label}"
        else:
            auto, auto_source = True, "default"
        configured = {
            (kind, entry.name): entry.enabled
            for kind in ("validator", "sampler", "webhook-handler")
            for entry in config.plugins.for_kind(kind)
        }
        return cls(allowed, allow_source, denied, deny_source, auto, auto_source, configured, label)

    def decide(self, kind: str, name: str, distribution: str) -> tuple[bool, str]:
        """``(on, rule)`` for one plugin; ``rule`` is a short human explanation."""
        qualified = f"{distribution}:{name}"
        for pattern in self.deny:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(qualified, pattern):
                return False, f"denied by {self.deny_source} ({pattern})"
        configured = (self.configured or {}).get((kind, name))
        if configured is False:
            return False, f"enabled = false in {self.config_label}"
        if self.allow is not None:
            for pattern in self.allow:
                if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(qualified, pattern):
                    return True, f"allowed by {self.allow_source} ({pattern})"
            return False, f"not in the allow list of {self.allow_source} ({','.join(self.allow) or 'empty'})"
        if not self.autoload:
            if configured:
                return True, f"named in {self.config_label} (autoload is off)"
            return False, f"autoload is off ({self.autoload_source}) and it is not named in {self.config_label}"
        if configured:
            return True, f"autoload; configured in {self.config_label}"
        return True, "autoload"
