"""A host built where results are the output (``loopai run``, ``loopai serve``): no start when a plugin
the configuration names cannot run (``loopai run``, and the service's check before its workers
restart), and the console handler kept to alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from loopai._errors import ConfigError
from loopai._kinds import WEBHOOK_HANDLER
from loopai._plugin import WebhookHandlerPlugin
from loopai.run._record import ALERT_EVENTS

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig
    from loopai.host import Host

__all__ = ["CONSOLE", "console_to_alerts", "refuse_unrunnable"]

CONSOLE: Final = "console-webhook-handler"


def refuse_unrunnable(host: Host, config: LoopaiConfig, outcome: str) -> None:
    """Close ``host`` and raise :class:`loopai.ConfigError` when a plugin ``config`` names cannot run
    (see :meth:`loopai.Host.configured_failures`): each problem with its line, then ``outcome``
    (``loopai run: nothing was processed``) and what to do. Running without such a plugin would
    hide the mistake: a service would answer "valid" without the validator the file asks for."""
    failures = host.configured_failures()
    if not failures:
        return
    host.close()
    named_by = config.source_label if config.source is not None else "the configuration (LOOPAI_* variables)"
    what_to_do = (
        f"{outcome}: {named_by} names plugins that cannot run (above); fix them, or set "
        "enabled = false in their tables (loopai config check lists every error)"
    )
    raise ConfigError([*config.with_lines(failures), what_to_do])


def console_to_alerts(host: Host) -> None:
    """Keep the console handler to alerts, on stderr, unless the host's configuration sets it up
    (give it to :meth:`loopai.Host.adjust_plugins`, so that it holds after a reload too).

    On built-in defaults it would print a box for every event of every record: among the result
    lines of ``loopai run`` (or its JSON summary), and for every request of ``loopai serve``. Only
    alerts stay (failed and timed-out runs, threshold breaches); a configuration that names the
    handler gets it as configured.
    """
    plugin = host.registry.resolve(WebhookHandlerPlugin, CONSOLE)  # type: ignore[type-abstract]
    if plugin is None or host.config.plugins.find(WEBHOOK_HANDLER, CONSOLE) is not None:
        return
    plugin.supported_events = ALERT_EVENTS
    settings = plugin.config
    if "stream" in getattr(type(settings), "model_fields", {}):
        plugin.configure({**settings.model_dump(), "stream": "stderr"})  # also makes the host see the new events
    else:
        plugin.priority = plugin.priority  # the host rebuilds its routes when a plugin changes
