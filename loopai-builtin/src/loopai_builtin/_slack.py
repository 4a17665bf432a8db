"""The ``slack-webhook-handler``: posts events to a Slack incoming webhook, coloured by severity."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

import loopai
from loopai_builtin._remote import RemoteHandler
from loopai_builtin._shown import shown_url
from loopai_builtin._transport import RETRY_AFTER_MAX, is_http_url, raw_setting, secret_text
from loopai_builtin._version import __version__

__all__ = ["SlackWebhookHandler"]

log = logging.getLogger("loopai.builtin.slack")

Severity = loopai.EventSeverity
DEFAULT_EVENTS: frozenset[loopai.WebhookEventType] = frozenset(
    {
        loopai.WebhookEventType.PROGRAM_EXECUTION_FAILED,
        loopai.WebhookEventType.ACCURACY_THRESHOLD_BREACHED,
        loopai.WebhookEventType.CANARY_ROLLBACK,
    }
)
# Attachment bar colours, matching the console handler's cyan, yellow, red and magenta.
_COLOURS = {
    Severity.INFO: "#17a2b8",
    Severity.WARNING: "#f0ad4e",
    Severity.ERROR: "#d9534f",
    Severity.CRITICAL: "#b0279b",
}
_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.ERROR: ":x:",
    Severity.CRITICAL: ":rotating_light:",
}
_MAX_HEADER = 150  # Slack's limits for a header block and a section's text
_MAX_SECTION = 3000
_FENCE = "```"
_ZWSP = "\u200b"
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")  # "&", "&am", "&lt"...: an entity cut before its ";"
_TICK_PAIR = re.compile(r"(?<=`)(?=`)")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """``text`` shown as itself in Slack mrkdwn: ``&``, ``<`` and ``>`` as Slack's ``&amp;``,
    ``&lt;`` and ``&gt;``, so that ``<!channel>`` does not notify and ``<https://x|text>`` is no link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip_mrkdwn(text: str, limit: int) -> str:
    """Escaped ``text`` clipped to ``limit`` characters without cutting an entity in two."""
    if len(text) <= limit:
        return text
    return _ENTITY_TAIL.sub("", text[: limit - 1]) + "…"


def _code_block(text: str, limit: int = _MAX_SECTION) -> str:
    """``text`` as a Slack code block of at most ``limit`` characters, showing exactly ``text``
    (or its start): escaped, and with no run of backticks inside that could close the fence
    (a zero-width space separates adjacent backticks)."""
    inner = _TICK_PAIR.sub(_ZWSP, _escape(text))
    inner = _clip_mrkdwn(inner, limit - 2 * len(_FENCE) - 2)
    if inner.startswith("`"):
        inner = _ZWSP + inner  # "````" would open the fence one tick later
    if inner.endswith("`"):
        inner += _ZWSP
    return _FENCE + inner + _FENCE


def slack_message(event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> dict[str, Any]:
    """The incoming-webhook JSON for ``event``: fallback ``text`` plus a coloured attachment of blocks."""
    severity = event.severity
    title = f"{_EMOJI[severity]} {event.event_type}"
    # Every value here but the payload is a UUID, a timestamp or an enum: nothing Slack would parse.
    fields = [
        ("Severity", str(severity)),
        ("Event id", f"`{event.event_id}`"),
        ("Time", event.timestamp.isoformat()),
    ]
    for label, value in (("Task", event.task_id), ("Execution", event.execution_id), ("Program", event.program_id)):
        if value is not None:
            fields.append((label, f"`{value}`"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _MAX_HEADER), "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in fields]},
    ]
    if event.payload not in (None, {}, []):
        payload = json.dumps(event.model_dump(mode="json")["payload"], indent=2, ensure_ascii=False)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _code_block(payload)}})
    note = "loopai"
    if context.retry_attempt > 0:
        note += f" · retry attempt {context.retry_attempt} of {context.max_retries}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    fallback = f"[{str(severity).upper()}] {event.event_type} ({event.event_id})"
    return {"text": fallback, "attachments": [{"color": _COLOURS[severity], "fallback": fallback, "blocks": blocks}]}


class SlackWebhookHandler(RemoteHandler):
    """Posts events to a Slack incoming webhook (``webhook_url``, usually ``"${SLACK_WEBHOOK_URL}"``).

    Default events: ``program.execution.failed``, ``accuracy.threshold.breached`` and
    ``canary.rollback`` (the ``events`` setting overrides them). A failed post raises
    :class:`loopai_builtin.WebhookDeliveryError`, so the host retries (honouring Slack's
    ``Retry-After``). In a dry run the message is logged instead of posted. Without a
    ``webhook_url`` the handler stays off until one is configured.
    """

    name = "slack-webhook-handler"
    version = __version__
    description = "Posts events to a Slack incoming webhook."
    author = "Loopai"
    user_agent = "loopai-slack-webhook"
    destination_setting = "webhook_url"
    default_events = DEFAULT_EVENTS
    priority = 100

    class Config(BaseModel):
        """Settings of the ``slack-webhook-handler`` (the seed's ``SlackWebhookUrl`` is accepted too)."""

        model_config = ConfigDict(populate_by_name=True)

        webhook_url: SecretStr | None = Field(default=None, alias="slack_webhook_url")
        """The incoming-webhook URL; it is a secret, never printed."""
        timeout: Annotated[float, Field(gt=0)] = 10.0
        """Seconds one post may take in all: a deadline, not a per-read timeout."""
        retry_after_max: Annotated[float, Field(ge=0)] = RETRY_AFTER_MAX
        """Longest ``Retry-After`` passed on to the host, in seconds; a longer one is reported and capped."""
        events: list[loopai.WebhookEventType] | None = None
        """Event types to post; default: execution failures, accuracy breaches and canary rollbacks."""

    config: Config

    def validate_configuration(self, configuration: Mapping[str, Any]) -> bool:
        """Refuse settings without a usable ``webhook_url`` (an http(s) URL)."""
        url = raw_setting(configuration, "webhook_url") or raw_setting(configuration, "slack_webhook_url")
        if not is_http_url(secret_text(url)):
            log.warning("%s: webhook_url is required (an https:// URL; write it as ${SLACK_WEBHOOK_URL})", self.name)
            return False
        return True

    def message(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> dict[str, Any]:
        """The JSON posted for ``event``."""
        return slack_message(event, context)

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        """See :meth:`loopai.HookSpecs.handle_event`."""
        secret = self.config.webhook_url
        if secret is None:
            raise loopai.PluginError(self.name, f"{self.name} has no webhook_url configured")
        url = secret.get_secret_value()
        if not is_http_url(url):
            raise loopai.PluginError(self.name, f"{self.name}: webhook_url is not an http(s) URL")
        shown = shown_url(url, keep_path=False)  # the path of a Slack webhook URL is its secret
        body = json.dumps(self.message(event, context), ensure_ascii=False).encode("utf-8")
        if context.is_dry_run:
            log.info("[DRY-RUN] %s would post to %s: %s", self.name, shown, body.decode("utf-8"))
            return
        self._poster.post(
            url,
            body,
            {"content-type": "application/json"},
            timeout=self.config.timeout,
            shown=shown,
            secrets=_secret_parts(url),
            retry_after_max=self.config.retry_after_max,
            keep_path=False,  # where a redirect points is shown without its path, as the URL is
        )


def _secret_parts(url: str) -> tuple[str, ...]:
    """What a receiver could echo of a Slack webhook URL's secret: its path (``/services/T/B/token``),
    that path without the leading slash, and its last segment (the token), percent-decoded too."""
    path = urlsplit(url).path
    token = path.rstrip("/").rsplit("/", 1)[-1]
    parts = (url, path, path.lstrip("/"), token)
    return tuple({*parts, *(unquote(part) for part in parts)} - {"", "/"})
