"""A webhook handler that posts loopai events to Microsoft Teams as message cards."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import loopai
from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    from loopai import Host

__version__ = "0.1.0"

log = logging.getLogger(__name__)

Severity = loopai.EventSeverity
EventType = loopai.WebhookEventType

ALERTS: frozenset[loopai.WebhookEventType] = frozenset(
    {
        EventType.PROGRAM_EXECUTION_FAILED,
        EventType.PROGRAM_EXECUTION_TIMEOUT,
        EventType.VALIDATION_FAILED,
        EventType.ACCURACY_THRESHOLD_BREACHED,
        EventType.LATENCY_THRESHOLD_BREACHED,
        EventType.CANARY_ROLLBACK,
    }
)
"""The events posted unless the ``events`` setting says otherwise."""

THEME_COLOURS = {
    Severity.INFO: "17A2B8",
    Severity.WARNING: "F0AD4E",
    Severity.ERROR: "D9534F",
    Severity.CRITICAL: "B0279B",
}
_RANK = {severity: rank for rank, severity in enumerate(Severity)}
_MAX_PAYLOAD = 2000  # characters of payload JSON shown in a card


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def shown_url(url: str) -> str:
    """``url`` safe to print: scheme and host only (a Teams webhook URL's path is its secret)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/..."


class TeamsDeliveryError(loopai.LoopaiError):
    """A post to Teams failed. The host retries it unless ``retryable`` is False, after
    ``retry_after`` seconds when Teams asked for a pause (HTTP 429 with ``Retry-After``)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        # Another try does not fix a refused request, except for throttling and timeouts.
        self.retryable = status is None or status >= 500 or status in (408, 429)


def message_card(
    event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext, prefix: str = "loopai"
) -> dict[str, Any]:
    """The MessageCard JSON for ``event``: title, colour by severity, facts and the payload."""
    severity = event.severity
    facts = [
        {"name": "Severity", "value": str(severity)},
        {"name": "Event id", "value": str(event.event_id)},
        {"name": "Time", "value": event.timestamp.isoformat()},
    ]
    for label, value in (
        ("Task", event.task_id),
        ("Execution", event.execution_id),
        ("Program", event.program_id),
    ):
        if value is not None:
            facts.append({"name": label, "value": str(value)})
    if context.retry_attempt:
        facts.append(
            {"name": "Attempt", "value": f"retry {context.retry_attempt} of {context.max_retries}"}
        )
    section: dict[str, Any] = {
        "activityTitle": f"{str(severity).upper()}: {event.event_type}",
        "facts": facts,
        "markdown": True,
    }
    if event.payload not in (None, {}, []):
        payload = json.dumps(event.model_dump(mode="json")["payload"], indent=2, ensure_ascii=False)
        if len(payload) > _MAX_PAYLOAD:
            payload = payload[: _MAX_PAYLOAD - 1] + "…"
        section["text"] = f"```\n{payload}\n```"
    title = f"{prefix}: {event.event_type}"
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": title,
        "title": title,
        "themeColor": THEME_COLOURS[severity],
        "sections": [section],
    }


class TeamsWebhookHandler(loopai.WebhookHandlerPlugin):
    """Posts events to a Microsoft Teams incoming webhook as message cards.

    ``url`` is the webhook's address (a secret: write ``"${TEAMS_WEBHOOK_URL}"``); until it
    has one, the handler stays off, so installing the package changes nothing. By default it
    posts failures, threshold breaches and rollbacks (``events`` picks others) at or above
    ``min_severity``. A failed post raises :class:`TeamsDeliveryError`, which the host
    retries (honouring ``Retry-After``). In a dry run the card is logged, not posted.
    """

    name = "teams-webhook"
    description = "Posts loopai events to a Microsoft Teams incoming webhook as message cards."
    version = __version__
    author = "Loopai"
    priority = 100

    class Config(BaseModel):
        """Settings: ``[plugins.webhook_handlers.teams-webhook.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        # Checked by validate_configuration, not here: a secret is dumped as "**********",
        # and settings must survive a JSON round trip.
        url: SecretStr | None = Field(default=None, description="The incoming webhook URL.")
        events: list[loopai.WebhookEventType] | None = Field(
            default=None, description="Event types to post (default: the alerting ones)."
        )
        min_severity: loopai.EventSeverity = Field(
            default=Severity.INFO, description="Events below this severity are not posted."
        )
        timeout: float = Field(default=10.0, gt=0, description="Seconds one post may take.")
        prefix: str = Field(default="loopai", description="Starts every card's title.")

    config: Config

    def __init__(
        self,
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        enabled: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, enabled=enabled, **options)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        # Discovered with no settings: stay off until a URL is configured, do not fail.
        self._idle = enabled is None and self.config.url is None
        if self._idle:
            self._enabled = False

    @property
    def supported_events(self) -> frozenset[loopai.WebhookEventType]:
        """The ``events`` setting, or :data:`ALERTS`."""
        events = self.config.events
        return frozenset(events) if events is not None else ALERTS

    def configure(
        self, config: BaseModel | Mapping[str, Any] | None, *, where: str | None = None
    ) -> None:
        """Apply new settings; a handler that was off for want of a URL turns on with one."""
        super().configure(config, where=where)
        if self._idle and self.config.url is not None:
            self._idle = False
            self.enabled = True

    def validate_configuration(self, configuration: Mapping[str, Any]) -> bool:
        """Refuse a configuration without a URL: a configured handler must be able to post."""
        url = configuration.get("url")
        text = url.get_secret_value() if isinstance(url, SecretStr) else str(url or "")
        if not _is_http_url(text):
            log.warning('%s: url must be an http(s) URL, e.g. "${TEAMS_WEBHOOK_URL}"', self.name)
            return False
        return True

    # -- lifecycle: one keep-alive client per handler ------------------------------------------

    def startup(self, host: Host) -> None:
        """Open the HTTP client."""
        self._open()

    def shutdown(self, host: Host) -> None:
        """Close the HTTP client and its connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _open(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                agent = f"loopai-teams-webhook/{__version__}"
                self._client = httpx.Client(headers={"user-agent": agent}, follow_redirects=False)
            return self._client

    # -- delivery ----------------------------------------------------------------------------

    def handle_event(
        self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext
    ) -> None:
        if _RANK[event.severity] < _RANK[self.config.min_severity]:
            return
        card = message_card(event, context, self.config.prefix)
        if context.is_dry_run:
            log.info("dry run, not posted: %s", card["title"])
            return
        secret = self.config.url
        if secret is None:
            raise loopai.PluginError(self.name, f"{self.name} has no url configured")
        url = secret.get_secret_value()
        if not _is_http_url(url):
            raise loopai.PluginError(self.name, f"{self.name}: url is not an http(s) URL")
        self.post(url, card)

    def post(self, url: str, card: Mapping[str, Any]) -> None:
        """POST ``card`` to ``url``; raise :class:`TeamsDeliveryError` unless Teams accepted it."""
        shown = shown_url(url)
        try:
            response = self._open().post(url, json=card, timeout=self.config.timeout)
        except httpx.HTTPError as exc:
            raise TeamsDeliveryError(f"POST {shown} failed: {type(exc).__name__}") from None
        if response.is_success:
            return
        retry_after = None
        with contextlib.suppress(ValueError):
            retry_after = float(response.headers.get("retry-after", ""))
        excerpt = response.text[:200].strip().replace(url, shown)
        raise TeamsDeliveryError(
            f"POST {shown} answered {response.status_code}" + (f": {excerpt}" if excerpt else ""),
            status=response.status_code,
            retry_after=retry_after,
        )
