"""The ``http-webhook-handler``: POSTs events as signed JSON (Standard Webhooks and X-Loopai headers)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator

import loopai
from loopai_builtin._remote import RemoteHandler
from loopai_builtin._signing import loopai_signature, plain_text_warning, standard_key, standard_signature
from loopai_builtin._transport import RETRY_AFTER_MAX, is_http_url, raw_setting, secret_text, shown_url
from loopai_builtin._version import __version__

if TYPE_CHECKING:
    from loopai import Host

__all__ = ["HttpWebhookHandler"]

log = logging.getLogger("loopai.builtin.http")


class HttpWebhookHandler(RemoteHandler):
    """POSTs each event as JSON (``event.model_dump(mode="json")``) to ``url``.

    With ``secret`` every request is signed twice: the Standard Webhooks headers
    ``webhook-id`` (the event id, stable across retries), ``webhook-timestamp`` and
    ``webhook-signature``, keyed as the Standard Webhooks libraries key it (a base64
    secret, ``whsec_`` prefix or not, is decoded; other text is used as its UTF-8 bytes,
    and :meth:`configuration_warnings` says so), and ``X-Loopai-Signature: sha256=<hex
    HMAC of the body>``, keyed by the secret's UTF-8 text as upstream Loopai keys it.
    ``X-Loopai-Event-Id``, ``X-Loopai-Event-Type`` (upstream's C# name,
    ``ProgramExecutionFailed``) and ``X-Loopai-Delivery-Attempt`` are always sent. A
    non-2xx answer, a timeout (``timeout`` bounds the whole request) or no connection
    raises :class:`loopai_builtin.WebhookDeliveryError`, so the host retries (honouring
    ``Retry-After`` up to ``retry_after_max``). Without a ``url`` the handler stays off
    until one is configured.
    """

    name = "http-webhook-handler"
    version = __version__
    description = "POSTs events as signed JSON to an HTTP endpoint."
    author = "Loopai"
    user_agent = "loopai-http-webhook"
    priority = 100

    class Config(BaseModel):
        """Settings of the ``http-webhook-handler``; write the secret as ``"${LOOPAI_WEBHOOK_SECRET}"``."""

        url: str | None = None
        """The endpoint to POST to (http or https)."""
        secret: SecretStr | None = None
        """Signing secret, ``whsec_<base64>`` (or base64, or plain text); without one, requests are unsigned."""
        timeout: Annotated[float, Field(gt=0)] = 10.0
        """Seconds one request may take in all (connect, send, answer): a deadline, not a per-read timeout."""
        retry_after_max: Annotated[float, Field(ge=0)] = RETRY_AFTER_MAX
        """Longest ``Retry-After`` passed on to the host, in seconds; a longer one is reported and capped."""
        events: list[loopai.WebhookEventType] | None = None
        """Event types to deliver; default: all."""

        @field_validator("url")
        @classmethod
        def _http_only(cls, value: str | None) -> str | None:
            if value is not None and not is_http_url(value):
                raise ValueError("must be an http:// or https:// URL with a host")
            return value

    config: Config

    def validate_configuration(self, configuration: Mapping[str, Any]) -> bool:
        """Refuse settings without a usable ``url`` or with a malformed ``whsec_`` secret; warn
        (logged, and in :meth:`configuration_warnings`) about a plain-text secret."""
        url = secret_text(raw_setting(configuration, "url"))
        if not is_http_url(url):
            log.warning("%s: the url setting is required (an http:// or https:// URL)", self.name)
            return False
        secret = raw_setting(configuration, "secret")
        if secret is not None:
            try:
                standard_key(secret_text(secret))
            except ValueError as exc:
                log.warning("%s: secret: %s", self.name, exc)
                return False
            warning = plain_text_warning(secret_text(secret))
            if warning is not None:
                log.warning("%s: secret: %s", self.name, warning)
        return True

    def configuration_warnings(self) -> list[str]:
        """What is accepted but likely to surprise, one sentence each (shown by ``loopai config check``)."""
        secret = self.config.secret
        warning = None if secret is None else plain_text_warning(secret.get_secret_value())
        return [] if warning is None else [f"{self.name}: secret: {warning}"]

    # -- lifecycle -----------------------------------------------------------------------

    def startup(self, host: Host) -> None:
        """Check the secret and open the keep-alive connection pool."""
        self._key()
        super().startup(host)

    # -- delivery ------------------------------------------------------------------------

    def _key(self) -> bytes | None:
        secret = self.config.secret
        if secret is None:
            return None
        known = self.__dict__.get("_signing")
        if known is None or known[0] is not secret:  # derived once per configured secret
            known = self.__dict__["_signing"] = (secret, standard_key(secret.get_secret_value()))
        return known[1]

    def body(self, event: loopai.WebhookEvent) -> bytes:
        """The exact bytes POSTed (and signed) for ``event``: its compact UTF-8 JSON, as pydantic writes it."""
        return event.model_dump_json().encode()  # serialised once, in Rust: a third of json.dumps(model_dump())

    def headers(self, event: loopai.WebhookEvent, body: bytes, attempt: int, timestamp: int) -> dict[str, str]:
        """The request headers for one delivery attempt (``attempt`` counts from 1)."""
        event_id = str(event.event_id)
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "X-Loopai-Event-Id": event_id,
            "X-Loopai-Event-Type": _csharp_name(event.event_type),
            "X-Loopai-Delivery-Attempt": str(attempt),
        }
        key = self._key()
        if key is not None:
            assert self.config.secret is not None  # a key comes from a secret
            headers["webhook-signature"] = standard_signature(key, event_id, timestamp, body)
            headers["X-Loopai-Signature"] = loopai_signature(self.config.secret.get_secret_value(), body)
        return headers

    def _shown(self, url: str) -> str:
        known = self.__dict__.get("_shown_url")
        if known is None or known[0] != url:
            known = self.__dict__["_shown_url"] = (url, shown_url(url))
        return known[1]

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        """See :meth:`loopai.HookSpecs.handle_event`."""
        url = self.config.url
        if url is None:
            raise loopai.PluginError(self.name, f"{self.name} has no url configured")
        shown = self._shown(url)
        body = self.body(event)
        headers = self.headers(event, body, context.retry_attempt + 1, int(time.time()))
        if context.is_dry_run:
            log.info(
                "[DRY-RUN] %s would POST %d bytes to %s (%s %s)",
                self.name,
                len(body),
                shown,
                event.event_type,
                event.event_id,
            )
            return
        secret = self.config.secret
        self._poster.post(
            url,
            body,
            headers,
            timeout=self.config.timeout,
            shown=shown,
            secrets=() if secret is None else _secret_forms(secret.get_secret_value()),
            retry_after_max=self.config.retry_after_max,
        )


@functools.cache
def _csharp_name(event_type: loopai.WebhookEventType) -> str:
    """Upstream Loopai's C# enum name for an event type: ``program.execution.failed`` -> ``ProgramExecutionFailed``."""
    return "".join(part[:1].upper() + part[1:] for part in event_type.value.split("."))


def _secret_forms(secret: str) -> tuple[str, ...]:
    """The secret as a receiver could echo it: whole, and the base64 part of a ``whsec_`` one."""
    return (secret, secret.removeprefix("whsec_"))
