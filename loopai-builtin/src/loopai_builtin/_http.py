"""The ``http-webhook-handler``: POSTs events as signed JSON (Standard Webhooks and X-Loopai headers)."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator

import loopai
from loopai_builtin._remote import RemoteHandler
from loopai_builtin._shown import shown_url
from loopai_builtin._signing import loopai_signature, plain_text_warning, standard_key, standard_signatures
from loopai_builtin._transport import RETRY_AFTER_MAX, authority_problem, is_http_url, raw_setting, secret_text
from loopai_builtin._version import __version__

if TYPE_CHECKING:
    from loopai import Host

__all__ = ["HttpWebhookHandler"]

log = logging.getLogger("loopai.builtin.http")

_NO_CURRENT = (
    "is set but secret is not: deliveries are signed with secret and with each previous secret; "
    "set secret to the current one (or remove previous_secrets)"
)


class HttpWebhookHandler(RemoteHandler):
    """POSTs each event as JSON (``event.model_dump(mode="json")``) to ``url``.

    With ``secret`` every request is signed twice: the Standard Webhooks headers
    ``webhook-id`` (the event id, stable across retries), ``webhook-timestamp`` and
    ``webhook-signature``, keyed as the Standard Webhooks libraries key it (a base64
    secret, ``whsec_`` prefix or not, is decoded; other text is used as its UTF-8 bytes,
    and :meth:`configuration_warnings` says so), and ``X-Loopai-Signature: sha256=<hex
    HMAC of the body>``, keyed by the secret's UTF-8 text as upstream Loopai keys it.
    While ``previous_secrets`` is set (a secret being rotated), ``webhook-signature`` carries
    one signature per secret, the current one's first, space-separated as the Standard
    Webhooks specification has it: a receiver holding any one of them verifies.
    ``X-Loopai-Signature`` stays one value, keyed by ``secret`` (upstream's verifiers compare
    it whole). ``ca_file`` names a PEM file of certificate authorities that this handler's
    HTTPS connections trust besides the default ones. ``X-Loopai-Event-Id``,
    ``X-Loopai-Event-Type`` (upstream's C# name, ``ProgramExecutionFailed``) and
    ``X-Loopai-Delivery-Attempt`` are always sent. A non-2xx answer, a timeout (``timeout``
    bounds the whole request) or no connection raises
    :class:`loopai_builtin.WebhookDeliveryError`, so the host retries (honouring
    ``Retry-After`` up to ``retry_after_max``). Without a ``url`` the handler stays off
    until one is configured.
    """

    name = "http-webhook-handler"
    version = __version__
    description = "POSTs events as signed JSON to an HTTP endpoint."
    author = "Loopai"
    user_agent = "loopai-http-webhook"
    trust_setting = "ca_file"
    priority = 100

    class Config(BaseModel):
        """Settings of the ``http-webhook-handler``; write the secret as ``"${LOOPAI_WEBHOOK_SECRET}"``."""

        url: str | None = None
        """The endpoint to POST to (http or https)."""
        secret: SecretStr | None = None
        """Signing secret, ``whsec_<base64>`` (or base64, or plain text); without one, requests are unsigned."""
        previous_secrets: list[SecretStr] | None = None
        """Secrets being rotated out, written as ``secret`` is; each signs ``webhook-signature`` too, after it."""
        ca_file: str | None = None
        """Absolute path of a PEM file of certificate authorities this handler trusts, besides the default ones."""
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

        @field_validator("previous_secrets", mode="before")
        @classmethod
        def _one_or_more(cls, value: Any) -> Any:
            return _listed(value)

        @field_validator("ca_file")
        @classmethod
        def _absolute(cls, value: str | None) -> str | None:
            return None if value is None else _absolute_path(value)

    config: Config

    def validate_configuration(self, configuration: Mapping[str, Any]) -> bool:
        """Refuse settings without a usable ``url``, with a malformed ``whsec_`` secret (``secret``
        or one of ``previous_secrets``), with ``previous_secrets`` but no ``secret``, or with a
        ``ca_file`` that is missing, unreadable or not PEM; each problem is logged naming its
        setting (never a secret's value). Warn (logged, and in :meth:`configuration_warnings`)
        about a plain-text secret."""
        problems: list[str] = []
        url = secret_text(raw_setting(configuration, "url"))
        if not is_http_url(url):
            problems.append("the url setting is required (an http:// or https:// URL)")
        secret = raw_setting(configuration, "secret")
        previous = _listed(raw_setting(configuration, "previous_secrets")) or []
        if previous and secret is None:
            problems.append(f"previous_secrets {_NO_CURRENT}")
        named = _keyed([] if secret is None else [secret], previous)
        problems += [problem for _, _, _, problem in named if problem is not None]
        ca_file = raw_setting(configuration, "ca_file")
        if ca_file is not None:
            try:
                problem = authority_problem(_absolute_path(str(ca_file)))
            except ValueError as exc:
                problem = f"{exc} (got {str(ca_file)!r})"
            if problem is not None:
                problems.append(f"ca_file: {problem}")
        for problem in problems:
            log.warning("%s: %s", self.name, problem)
        if problems:
            return False
        for setting, text, _, _ in named:
            warning = plain_text_warning(text)
            if warning is not None:
                log.warning("%s: %s: %s", self.name, setting, warning)
        return True

    def configuration_warnings(self) -> list[str]:
        """What is accepted but likely to surprise, one sentence each (shown by ``loopai config check``):
        a plain-text secret, and a previous secret that signs as another one does."""
        warnings = []
        seen: dict[bytes, str] = {}
        for setting, text, key, _ in self._named_secrets():
            warning = plain_text_warning(text)
            if warning is not None:
                warnings.append(f"{self.name}: {setting}: {warning}")
            if key is None:
                continue  # refused, and said, by validate_configuration and startup
            if key in seen:
                warnings.append(
                    f"{self.name}: {setting}: the same signing key as {seen[key]}, so it adds no signature; "
                    "remove it (when rotating, secret is the new secret and previous_secrets the old ones)"
                )
            seen.setdefault(key, setting)
        return warnings

    # -- lifecycle -----------------------------------------------------------------------

    def startup(self, host: Host) -> None:
        """Check the secrets and the ``ca_file`` (raising ValueError naming the setting), and open the
        keep-alive connection pool."""
        self._signing()
        self._poster.trust(self.config.ca_file)  # read at each start: a renewed file is taken
        super().startup(host)

    # -- delivery ------------------------------------------------------------------------

    def _named_secrets(self) -> list[tuple[str, str, bytes | None, str | None]]:
        secret = self.config.secret
        return _keyed([] if secret is None else [secret], self.config.previous_secrets or [])

    def _signing(self) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
        """The Standard Webhooks keys (``secret``'s first, then each previous secret's not already
        there; none without a secret) and every form of the secrets a receiver could echo. Derived
        once per configuration; raises ValueError naming a setting that cannot sign."""
        config = self.config
        known = self.__dict__.get("_signing_keys")
        if known is None or known[0] is not config:
            if config.previous_secrets and config.secret is None:
                raise ValueError(f"previous_secrets {_NO_CURRENT}")
            keys: list[bytes] = []
            forms: list[str] = []
            for _, text, key, problem in self._named_secrets():
                if key is None:
                    raise ValueError(problem)
                if key not in keys:
                    keys.append(key)
                forms += _secret_forms(text)
            known = self.__dict__["_signing_keys"] = (config, (tuple(keys), tuple(forms)))
        signing: tuple[tuple[bytes, ...], tuple[str, ...]] = known[1]
        return signing

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
        keys, _ = self._signing()
        if keys:
            assert self.config.secret is not None  # keys come from a secret, the current one first
            headers["webhook-signature"] = standard_signatures(keys, event_id, timestamp, body)
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
        ca_file = self.config.ca_file
        if ca_file != self._poster.ca_file:  # configured since startup, or used without a host
            try:
                self._poster.trust(ca_file, if_changed=True)
            except ValueError as exc:
                raise loopai.PluginError(self.name, f"{self.name}: {exc}") from None
        self._poster.post(
            url,
            body,
            headers,
            timeout=self.config.timeout,
            shown=shown,
            secrets=self._signing()[1],
            retry_after_max=self.config.retry_after_max,
        )


@functools.cache
def _csharp_name(event_type: loopai.WebhookEventType) -> str:
    """Upstream Loopai's C# enum name for an event type: ``program.execution.failed`` -> ``ProgramExecutionFailed``."""
    return "".join(part[:1].upper() + part[1:] for part in event_type.value.split("."))


def _secret_forms(secret: str) -> tuple[str, ...]:
    """The secret as a receiver could echo it: whole, and the base64 part of a ``whsec_`` one."""
    return (secret, secret.removeprefix("whsec_"))


_RELATIVE = "must be an absolute path (~ is expanded): a relative one would depend on the folder loopai is started from"


def _absolute_path(value: str) -> str:
    """``value`` with ``~`` expanded; ValueError (:data:`_RELATIVE`) when it is not an absolute path."""
    path = os.path.expanduser(value)
    if not os.path.isabs(path):
        raise ValueError(_RELATIVE)
    return path


def _listed(value: Any) -> Any:
    """One secret written alone (``previous_secrets = "${OLD}"``) as a list of it; anything else as it is."""
    return [value] if isinstance(value, (str, SecretStr)) else value


def _keyed(current: list[Any], previous: list[Any]) -> list[tuple[str, str, bytes | None, str | None]]:
    """Each secret (a :class:`~pydantic.SecretStr` or its text) as ``(setting, text, key, problem)``: the
    setting it came from (``secret``, ``previous_secrets[0]``...), its text, its Standard Webhooks key,
    and, when it has none (key None), why, as ``setting: reason``."""
    named = [("secret", value) for value in current] + [(f"previous_secrets[{i}]", v) for i, v in enumerate(previous)]
    keyed: list[tuple[str, str, bytes | None, str | None]] = []
    for setting, value in named:
        text = secret_text(value)
        try:
            keyed.append((setting, text, standard_key(text), None))
        except ValueError as exc:
            keyed.append((setting, text, None, f"{setting}: {exc}"))
    return keyed
