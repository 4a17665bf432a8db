"""The one place the service builds its host: the same configuration, discovery, selection and strict
mode as every ``loopai`` command, a durable outbox, and metering for the metrics.

An integrator who plugs in another state store (``Host(state=...)``, from ``[state] url``) or
outbox does it here, and only here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from loopai._plugin import WebhookHandlerPlugin
from loopai.config import LoopaiConfig, load_tasks
from loopai.discovery import Selection
from loopai.host import Host, Meter
from loopai.run import ALERT_EVENTS
from loopai.serve._options import ServeOptions

__all__ = ["build_host"]

_CONSOLE = "console-webhook-handler"


def build_host(
    config: LoopaiConfig,
    options: ServeOptions,
    *,
    meter: Meter | bool = False,
    environ: Mapping[str, str] | None = None,
) -> Host:
    """A host as ``loopai serve`` runs it (not started).

    Plugins are discovered and selected as by every command (``options`` carry the
    ``--plugins``/``--disable-plugins``/``--no-autoload`` flags); ``options.strict`` (else
    ``LOOPAI_STRICT_PLUGINS``, else the configuration) makes any plugin problem raise
    :class:`loopai.StartupError`; ``options.tasks`` names a tasks file read instead of the
    configuration's ``[tasks]``. Events go through the durable outbox (``[delivery] outbox``,
    ``LOOPAI_OUTBOX``, else the default path). Raises :class:`loopai.ConfigError` for a bad
    tasks file.
    """
    environ = os.environ if environ is None else environ
    selection = Selection.resolve(
        config, environ, allow=options.plugins, deny=options.disable_plugins, autoload=options.autoload
    )
    tasks = load_tasks(options.tasks) if options.tasks else None
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
    _console_to_alerts(host, config)
    return host


def _console_to_alerts(host: Host, config: LoopaiConfig) -> None:
    """As ``loopai run`` does: on built-in defaults the console handler would print a box for every
    event of every request; unless the configuration sets it up, it prints only alerts (failed and
    timed-out runs, threshold breaches), on stderr."""
    plugin = host.registry.resolve(WebhookHandlerPlugin, _CONSOLE)  # type: ignore[type-abstract]
    if plugin is None or config.plugins.find("webhook_handlers", _CONSOLE) is not None:
        return
    plugin.supported_events = ALERT_EVENTS
    settings = plugin.config
    if "stream" in getattr(type(settings), "model_fields", {}):
        plugin.configure({**settings.model_dump(), "stream": "stderr"})  # also makes the host see the new events
    else:
        plugin.priority = plugin.priority  # the host rebuilds its routes when a plugin changes
