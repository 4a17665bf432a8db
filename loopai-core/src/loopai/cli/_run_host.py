"""How ``loopai run`` builds its host: from the configuration and the flags, in this process or in
each ``--workers`` process, with the run's own defaults for the console handler and ``--seed``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uuid import UUID

    from loopai.config import LoopaiConfig, TaskSettings
    from loopai.delivery import HandlerDeliveries
    from loopai.host import Host

__all__ = ["HostRecipe", "say_setup"]


class HostRecipe:
    """How ``loopai run`` builds its host, from the configuration and the flags: picklable, so that
    each ``--workers`` process builds its own from the same (already read) configuration. (A plain
    class: a dataclass would compile its methods when ``loopai --help`` imports this module.)"""

    def __init__(
        self,
        config: LoopaiConfig,
        tasks: dict[UUID, TaskSettings],
        args: argparse.Namespace,
        outbox: bool | Path,
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.plugins: str | None = args.plugins
        self.disable_plugins: str | None = args.disable_plugins
        self.no_autoload: bool = args.no_autoload
        self.strict: bool | None = args.strict
        self.dry_run_events: bool = args.dry_run_events
        self.seed: int | None = args.seed
        self.outbox = outbox

    def leave(self) -> None:
        """End this ``--workers`` process now if its plugins left threads running (warned about),
        as the command does (:func:`loopai.cli._threads.leave_without_waiting`)."""
        from loopai.cli._threads import leave_without_waiting

        leave_without_waiting(0, self.config.source)

    def __call__(self, delivers: bool = True) -> tuple[Host, list[str]]:
        """The host, not started, and the problems met loading its plugins. Raises
        :class:`loopai.ConfigError` or :class:`loopai.StartupError` (exit 2), naming the plugins
        the configuration names that cannot run: running without them would hide the mistake.
        ``delivers=False``: it records events in the outbox and delivers none (``[delivery] workers
        = false``), as every ``--workers`` process but the one that delivers for the run."""
        from loopai._errors import ConfigError
        from loopai._kinds import KINDS
        from loopai.cli._common import selection_of
        from loopai.host import Host
        from loopai.run import console_to_alerts, refuse_unrunnable

        flags = argparse.Namespace(
            plugins=self.plugins, disable_plugins=self.disable_plugins, no_autoload=self.no_autoload
        )
        selection = selection_of(flags, self.config)
        config = self.config
        if not delivers:
            config = config.model_copy(update={"delivery": config.delivery.model_copy(update={"workers": False})})
        host = Host(
            config,
            discover=True,
            selection=selection,
            strict=self.strict,
            dry_run=True if self.dry_run_events else None,
            outbox=False if self.dry_run_events else self.outbox,  # a rehearsal keeps nothing, makes no file
            meter=True,
            tasks=self.tasks,
        )
        refuse_unrunnable(host, self.config, "loopai run: nothing was processed")
        # An allow pattern that matches no plugin leaves the run without the plugins it asked for
        # (a misspelt --plugins ran with none, every record valid): refused, with the closest names.
        named = [(r.name, r.distribution) for r in host.discovered]
        named += [(entry.name, "") for kind in KINDS for entry in self.config.plugins.for_kind(kind)]
        unmatched = selection.unmatched(named, allowing=True)
        if unmatched:
            host.close()  # not started: releases the outbox
            raise ConfigError([*unmatched, "loopai run: nothing was processed"])
        problems = list(host.problems)
        host.adjust_plugins(console_to_alerts)
        if self.seed is not None and (problem := _seed_samplers(host, self.seed)):
            host.close()  # not started: releases the outbox
            raise ConfigError([problem])
        return host, problems


def pending_now(recipe: HostRecipe, rows: list[HandlerDeliveries]) -> list[HandlerDeliveries]:
    """``rows`` (the workers' deliveries, added up) with what the outbox holds now that every worker
    has closed: each worker counted while the others may still have been writing their marks.
    Unchanged when the outbox cannot be read (the workers' counts are the best there is)."""
    import dataclasses
    import os

    from loopai._errors import LoopaiError
    from loopai.delivery import open_outbox

    if recipe.dry_run_events:
        return rows  # a rehearsal has no outbox
    try:
        outbox, owned = open_outbox(recipe.outbox, recipe.config, os.environ)
        if outbox is None:
            return rows
        try:
            counts = outbox.open_counts()
        finally:
            if owned:
                outbox.close()
    except LoopaiError:
        return rows
    return [
        dataclasses.replace(
            row,
            pending=counts.get(row.handler, {}).get("pending", 0),
            quarantined=counts.get(row.handler, {}).get("quarantined", 0),
        )
        for row in rows
    ]


def say_setup(host: Any, config: Any) -> None:
    """With ``-v``: the configuration used, the plugins that run (by priority) and where events are kept."""
    from loopai._kinds import KINDS
    from loopai.cli._output import say

    say(f"configuration: {config.source_label}")
    for kind in KINDS:
        running = [f"{e.name} ({e.plugin.priority})" for e in host.registry.entries(kind.base)]
        say(f"{kind.key} (priority): {', '.join(running) or 'none'}")
    say(f"outbox: {host.outbox.path if host.outbox is not None else 'none (events are delivered directly)'}")


def _seed_samplers(host: Any, seed: int) -> str | None:
    """Set ``seed`` in the settings of every enabled sampler that has one (the built-in
    percentage-sampler), over what the configuration says; the problem when none has."""
    from loopai._errors import PluginSettingsError
    from loopai._plugin import SamplerPlugin

    seeded = []
    for sampler in host.registry.list(SamplerPlugin):
        settings = sampler.config
        if "seed" not in getattr(type(settings), "model_fields", {}):
            continue
        try:
            sampler.configure({**settings.model_dump(), "seed": seed}, where=f"--seed for {sampler.name}")
        except PluginSettingsError as exc:
            return f"loopai run: {exc}"
        seeded.append(sampler.name)
    if not seeded:
        return "loopai run: --seed: no enabled sampler takes a seed (the built-in percentage-sampler does; disabled?)"
    return None
