"""The ``console-webhook-handler``: events as coloured boxes (or one line each) on stdout or stderr,
at most so many a minute per event type and task."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

import loopai
from loopai_builtin._throttle import Throttle
from loopai_builtin._version import __version__

if TYPE_CHECKING:
    from loopai import Host

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
    then its payload as indented JSON, the retry attempt and a ``[DRY-RUN]`` line when dry; with
    ``compact = true``, one line per event instead.

    It does not flood: at most ``max_per_minute`` events of one type and task are printed in any
    minute (0: no limit). The others are counted, exactly: the next one printed for that type and
    task is preceded by a line saying how many were not shown, and at shutdown one line per type
    and task tells the rest ("3,880 more program.execution.failed alerts for invoice-extraction").
    Events are printed one at a time (``max_in_flight = 1``), in the order they were emitted.

    Colour follows the severity (info cyan, warning yellow, error red, critical magenta)
    and is used only on a terminal, never when ``NO_COLOR`` is set (``color = "always"``
    or ``FORCE_COLOR`` turn it on anyway). A development tool: priority 0, all events.
    """

    name = "console-webhook-handler"
    version = __version__
    author = "Loopai"
    description = "Prints events to the console, coloured by severity."
    priority = 0
    max_in_flight = 1  # one at a time: boxes in the order events were emitted, never interleaved

    class Config(BaseModel):
        """Settings of the ``console-webhook-handler``."""

        stream: Literal["stdout", "stderr"] = "stdout"
        """Where to print."""
        color: Literal["auto", "always", "never"] = "auto"
        """``auto``: colour on a terminal unless ``NO_COLOR`` is set (``FORCE_COLOR`` forces it)."""
        max_per_minute: Annotated[int, Field(ge=0)] = 10
        """Events printed per event type and task in any minute; the rest are counted (0: no limit)."""
        compact: bool = False
        """One line per event instead of a box."""

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
        self._throttle: Throttle[tuple[loopai.WebhookEventType, str]] | None = None

    def _admitted(self, event: loopai.WebhookEvent) -> tuple[bool, int]:
        throttle = self._throttle
        if throttle is None or throttle.limit != self.config.max_per_minute:  # made once per setting
            throttle = self._throttle = Throttle(self.config.max_per_minute)
        return throttle.admit((event.event_type, _task_of(event)))

    def _out(self) -> IO[str]:
        return self._stream or (sys.stderr if self.config.stream == "stderr" else sys.stdout)

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        """See :meth:`loopai.HookSpecs.handle_event`."""
        shown, held = self._admitted(event)
        if not shown:
            return
        stream = self._out()
        colour = self._colour(stream)
        text = (
            self.line(event, context, colour=colour)
            if self.config.compact
            else self.render(event, context, colour=colour)
        )
        if held:
            text = _held_line(held, event.event_type, _task_of(event), "not shown") + "\n" + text
        with self._lock:  # one event's lines stay together when threads emit at once
            stream.write(text)
            stream.flush()

    def shutdown(self, host: Host) -> None:
        """Say, one line per event type and task, how many events were not shown since the last one was."""
        self.report_held()

    def report_held(self) -> None:
        """Print a line per event type and task with events held back since its last one printed."""
        if self._throttle is None:
            return
        lines = [_held_line(n, event_type, task, "") for (event_type, task), n in self._throttle.held().items()]
        if lines:
            stream = self._out()
            with self._lock:
                stream.write("\n".join(lines) + "\n")
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

    def line(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext, *, colour: bool) -> str:
        """The one line printed for ``event`` with ``compact = true``."""
        tint, reset = (_COLOURS[event.severity], _RESET) if colour else ("", "")
        parts = [event.timestamp.isoformat(), f"{tint}[{event.severity}]{reset}", str(event.event_type)]
        for label, known in (("task", _task_of(event)), ("execution", event.execution_id), ("event", event.event_id)):
            if known:
                parts.append(f"{label}={known}")
        if context.retry_attempt > 0:
            parts.append(f"retry={context.retry_attempt}/{context.max_retries}")
        if context.is_dry_run:
            parts.append("[DRY-RUN]")
        payload = json.dumps(event.model_dump(mode="json")["payload"], ensure_ascii=False, separators=(",", ":"))
        parts.append(payload if len(payload) <= _PAYLOAD_CLIP else payload[: _PAYLOAD_CLIP - 3] + "...")
        return " ".join(parts) + "\n"

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


_PAYLOAD_CLIP = 200
"""Characters of payload JSON on a compact line."""


def _task_of(event: loopai.WebhookEvent) -> str:
    """How the event's task is named: the label ``loopai run`` puts in payloads, else the task id, else ''."""
    label = event.payload.get("task") if isinstance(event.payload, Mapping) else None
    if isinstance(label, str) and label:
        return label
    return str(event.task_id) if event.task_id is not None else ""


def _held_line(count: int, event_type: loopai.WebhookEventType, task: str, when: str) -> str:
    kind = "alert" if count == 1 else "alerts"
    what = f"{count:,} more {event_type} {kind}" + (f" for {task}" if task else "")
    return f"({what} {when})" if when else what
