"""The ``console-webhook-handler``: every event as a coloured box on stdout or stderr."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any, Literal

from pydantic import BaseModel

import loopai
from loopai_builtin._version import __version__

__all__ = ["ConsoleWebhookHandler"]

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_COLOURS: dict[loopai.EventSeverity, str] = {
    loopai.EventSeverity.INFO: "\x1b[36m",  # cyan
    loopai.EventSeverity.WARNING: "\x1b[33m",  # yellow
    loopai.EventSeverity.ERROR: "\x1b[31m",  # red
    loopai.EventSeverity.CRITICAL: "\x1b[35m",  # magenta
}


class ConsoleWebhookHandler(loopai.WebhookHandlerPlugin):
    """Prints each event: a box with its type, severity, id, timestamp and the ids it carries,
    then its payload as indented JSON, the retry attempt and a ``[DRY-RUN]`` line when dry.

    Colour follows the severity (info cyan, warning yellow, error red, critical magenta)
    and is used only on a terminal, never when ``NO_COLOR`` is set (``color = "always"``
    or ``FORCE_COLOR`` turn it on anyway). A development tool: priority 0, all events.
    """

    name = "console-webhook-handler"
    version = __version__
    author = "Loopai"
    description = "Prints events to the console, coloured by severity."
    priority = 0

    class Config(BaseModel):
        """Settings of the ``console-webhook-handler``."""

        stream: Literal["stdout", "stderr"] = "stdout"
        """Where to print."""
        color: Literal["auto", "always", "never"] = "auto"
        """``auto``: colour on a terminal unless ``NO_COLOR`` is set (``FORCE_COLOR`` forces it)."""

    config: Config

    def __init__(
        self,
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        stream: IO[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        """``stream`` overrides the ``stream`` setting (tests, embedding); ``environ`` defaults to ``os.environ``."""
        super().__init__(config, **options)
        self._stream = stream
        self._environ = environ
        self._lock = threading.Lock()

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        """See :meth:`loopai.HookSpecs.handle_event`."""
        stream = self._stream or (sys.stderr if self.config.stream == "stderr" else sys.stdout)
        text = self.render(event, context, colour=self._colour(stream))
        with self._lock:  # one event's lines stay together when threads emit at once
            stream.write(text)
            stream.flush()

    def _colour(self, stream: IO[str]) -> bool:
        mode = self.config.color
        if mode != "auto":
            return mode == "always"
        environ = os.environ if self._environ is None else self._environ
        if environ.get("NO_COLOR"):
            return False
        if environ.get("FORCE_COLOR", "") not in ("", "0"):
            return True
        isatty = getattr(stream, "isatty", None)
        return bool(isatty is not None and isatty())

    def render(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext, *, colour: bool) -> str:
        """The text printed for ``event``, with or without ANSI colours."""
        tint = _COLOURS[event.severity] if colour else ""
        bold, reset = (_BOLD, _RESET) if colour else ("", "")
        rows = [
            ("severity", str(event.severity)),
            ("event id", str(event.event_id)),
            ("timestamp", event.timestamp.isoformat()),
        ]
        for label, known in (("task", event.task_id), ("execution", event.execution_id), ("program", event.program_id)):
            if known is not None:
                rows.append((label, str(known)))
        title = f" {event.event_type} "
        cells = [f" {label:<10} {value} " for label, value in rows]
        width = max(len(title) + 2, *(len(cell) for cell in cells))
        lines = [f"{tint}+-{bold}{title}{reset}{tint}{'-' * (width - len(title) - 1)}+{reset}"]
        for (label, value), cell in zip(rows, cells, strict=True):
            shown = f"{tint}{bold}{value}{reset}" if label == "severity" else value
            lines.append(f"{tint}|{reset} {label:<10} {shown} {' ' * (width - len(cell))}{tint}|{reset}")
        lines.append(f"{tint}+{'-' * width}+{reset}")
        lines.append("payload:")
        lines.append(json.dumps(event.model_dump(mode="json")["payload"], indent=2, ensure_ascii=False))
        if event.metadata:
            lines.append("metadata:")
            lines.append(json.dumps(event.model_dump(mode="json")["metadata"], indent=2, ensure_ascii=False))
        if context.retry_attempt > 0:
            lines.append(f"retry attempt {context.retry_attempt} of {context.max_retries}")
        if context.is_dry_run:
            lines.append(f"{tint}[DRY-RUN]{reset} printed only; no other side effects")
        return "\n".join(lines) + "\n"
