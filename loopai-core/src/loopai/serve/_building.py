"""The one place the service builds its host: the same configuration, discovery, selection and strict
mode as every ``loopai`` command, a durable outbox, and metering for the metrics.

An integrator who plugs in another state store (``Host(state=...)``, from ``[state] url``) or
outbox does it here, and only here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from loopai._log import captured_warnings, logger
from loopai.config import LoopaiConfig, load_tasks
from loopai.discovery import Selection
from loopai.host import Host, Meter
from loopai.run import console_to_alerts, refuse_unrunnable
from loopai.serve._options import ServeOptions

__all__ = ["build_host"]

log = logger("loopai.serve")


def build_host(
    config: LoopaiConfig,
    options: ServeOptions,
    *,
    meter: Meter | bool = False,
    environ: Mapping[str, str] | None = None,
    outcome: str | None = None,
) -> Host:
    """A host as ``loopai serve`` runs it (not started).

    Plugins are discovered and selected as by every command (``options`` carry the
    ``--plugins``/``--disable-plugins``/``--no-autoload`` flags); ``options.strict`` (else
    ``LOOPAI_STRICT_PLUGINS``, else the configuration) makes any plugin problem raise
    :class:`loopai.StartupError`; ``options.tasks`` names a tasks file read instead of the
    configuration's ``[tasks]``. Events go through the durable outbox (``[delivery] outbox``,
    ``LOOPAI_OUTBOX``, else the default path). Raises :class:`loopai.ConfigError` for a bad
    tasks file.

    A plugin the configuration names that cannot run (it does not load, or its settings are wrong)
    is left out, as a long-running process isolates it: each such problem is logged as a warning
    naming the file, the line, the plugin and the field (``loopai.toml:2:
    samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)``), then what to do, and
    ``GET /api/v1/plugins`` shows it ``failed``. With ``outcome`` (the check before the workers
    restart on SIGHUP, which must fail as a reload of one process fails) it raises
    :class:`loopai.ConfigError` instead, its last problem saying ``outcome`` and what to do.
    """
    environ = os.environ if environ is None else environ
    selection = Selection.resolve(
        config, environ, allow=options.plugins, deny=options.disable_plugins, autoload=options.autoload
    )
    tasks = load_tasks(options.tasks) if options.tasks else None
    with captured_warnings() as said:  # the host's problems, logged below once it is known to start
        host = Host(
            config,
            discover=True,
            selection=selection,
            strict=options.strict,
            outbox=True,
            meter=meter,
            tasks=tasks,
            environ=environ,
        )
    if outcome is not None:
        refuse_unrunnable(host, config, outcome)  # names its own problems, with their lines
    failures = host.configured_failures()  # each with the place of the plugin's table
    for problem in config.with_lines(failures):
        log.warning("%s", problem)
    if failures:
        log.warning("%s", _left_out(config))
    for problem in config.with_lines(p for p in host.problems if not any(f.endswith(p) for f in failures)):
        log.warning("%s", problem)
    for text in said:  # what else building it said (the outbox's folder made, deliveries left behind)
        if text not in host.problems:
            log.warning("%s", text)
    host.adjust_plugins(console_to_alerts)
    return host


def _left_out(config: LoopaiConfig) -> str:
    """What to do about plugins the configuration names that the service started without."""
    named_by = config.source_label if config.source is not None else "the configuration (LOOPAI_* variables)"
    return (
        f"loopai serve: started without plugins {named_by} names that cannot run (above; GET /api/v1/plugins "
        "shows them failed): fix them and reload (SIGHUP), or set enabled = false in their tables; --strict "
        "(or strict = true) refuses to start instead"
    )
