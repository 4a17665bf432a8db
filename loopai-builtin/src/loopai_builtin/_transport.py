"""Posting to webhooks over keep-alive connections, and the error that tells the host to retry."""

from __future__ import annotations

import base64
import email.utils
import logging
import math
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

import loopai

__all__ = [
    "Poster",
    "WebhookDeliveryError",
    "is_http_url",
    "parse_retry_after",
    "raw_setting",
    "secret_text",
    "shown_url",
]

log = logging.getLogger("loopai.builtin")

_REDACTED = "**********"
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class WebhookDeliveryError(loopai.LoopaiError):
    """A webhook POST did not succeed: an error status, a timeout or no connection.

    ``url`` is the target without credentials or query; ``status`` the HTTP status (None
    when no answer came); ``retry_after`` the seconds the server asked to wait (from
    ``Retry-After``), which the host honours; ``retryable`` is False for answers that
    another try will not change (most 4xx).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay seconds or an HTTP date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def shown_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` safe to print: no user, password, query or fragment (and no path unless ``keep_path``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    if not keep_path:
        return (
            f"{parts.scheme}://{host}{port}/..." if parts.path not in ("", "/") else f"{parts.scheme}://{host}{port}/"
        )
    return f"{parts.scheme}://{host}{port}{parts.path}" + ("?..." if parts.query else "")


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def raw_setting(configuration: Mapping[str, Any], name: str) -> Any:
    """A setting from raw configuration, whatever its spelling (``webhook_url``, ``WebhookUrl``)."""
    wanted = _squash(name)
    return next((value for key, value in configuration.items() if _squash(str(key)) == wanted), None)


def secret_text(value: Any) -> str:
    """The text of a setting that may be a :class:`~pydantic.SecretStr`, a string or missing."""
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value or "")


def _squash(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


class _HttpxLogScrubber(logging.Filter):
    """Shows registered URLs in their printable form in httpx's own log lines.

    httpx logs every request with its full URL at INFO; a webhook URL may be a secret
    (Slack's is) or carry credentials. Logging is process-wide, hence one filter for all.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._hidden: dict[str, tuple[str, int]] = {}  # text -> (shown instead, users)

    def hide(self, text: str, shown: str) -> None:
        with self._lock:
            users = self._hidden.get(text, (shown, 0))[1]
            self._hidden = {**self._hidden, text: (shown, users + 1)}

    def unhide(self, text: str) -> None:
        with self._lock:
            hidden = dict(self._hidden)
            shown, users = hidden.pop(text, ("", 0))
            if users > 1:
                hidden[text] = (shown, users - 1)
            self._hidden = hidden

    def filter(self, record: logging.LogRecord) -> bool:
        hidden = self._hidden  # replaced, never mutated: no lock needed to read
        if hidden:
            message = record.getMessage()
            scrubbed = message
            for text, (shown, _) in hidden.items():
                scrubbed = scrubbed.replace(text, shown)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


_HTTPX_LOG = _HttpxLogScrubber()


class Poster:
    """Keep-alive connections for one handler: opened on first use, closed on shutdown.

    Requests go straight to an ``httpx.HTTPTransport``: httpx's own connection pool, with
    TLS set up as ``httpx.Client`` sets it up (``SSL_CERT_FILE`` and ``SSL_CERT_DIR``
    honoured). The client layer adds nothing a webhook needs (no cookies, redirects or
    auth here) and costs, per request, a fifth of a loopback round trip. When the
    environment names a proxy for a URL's scheme (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``), that URL's requests go through an ``httpx.Client`` instead, which
    applies the proxy settings, ``NO_PROXY`` included, exactly as httpx does.
    """

    def __init__(self, user_agent: str) -> None:
        self._defaults = [(b"user-agent", user_agent.encode("ascii")), (b"accept", b"*/*")]
        self._transport: httpx.HTTPTransport | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._hidden: set[str] = set()
        # Per URL, parsed once (httpx parses a URL given as text on every request): whether a
        # proxy applies to it, and its default headers (ours, and Basic auth from its user info).
        self._targets: dict[str, tuple[httpx.URL, bool, list[tuple[bytes, bytes]]]] = {}
        self._timeouts: dict[float, dict[str, float | None]] = {}

    def _hide(self, url: str, shown: str) -> None:
        if url in self._hidden:
            return
        with self._lock:
            if url in self._hidden:
                return
            self._hidden.add(url)
        logger = logging.getLogger("httpx")
        if _HTTPX_LOG not in logger.filters:
            logger.addFilter(_HTTPX_LOG)
        for text in {url, str(httpx.URL(url))}:
            _HTTPX_LOG.hide(text, shown)

    def open(self) -> httpx.HTTPTransport:
        """The connection pool, created if needed (thread-safe)."""
        transport = self._transport
        if transport is None:
            with self._lock:
                transport = self._transport
                if transport is None:
                    transport = self._transport = httpx.HTTPTransport()
        return transport

    def _proxied(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = httpx.Client(follow_redirects=False)
        return client

    def _target(self, url: str, shown: str) -> tuple[httpx.URL, bool, list[tuple[bytes, bytes]]]:
        target = self._targets.get(url)
        if target is None:
            parsed = httpx.URL(url)
            proxies = urllib.request.getproxies()
            proxied = bool(proxies.get(parsed.scheme) or proxies.get("all"))
            if proxied:  # httpx.Client logs every request with its URL, which may be a secret
                self._hide(url, shown)
            defaults = list(self._defaults)
            if parsed.username or parsed.password:  # as httpx.Client does: Basic auth from the URL
                token = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode("ascii")
                defaults.append((b"authorization", f"Basic {token}".encode("ascii")))
            target = self._targets[url] = (parsed, proxied, defaults)
        return target

    def close(self) -> None:
        """Close the connections; a later post opens new ones."""
        with self._lock:
            transport, self._transport = self._transport, None
            client, self._client = self._client, None
            hidden, self._hidden = self._hidden, set()
            self._targets = {}
        if transport is not None:
            transport.close()
        if client is not None:
            client.close()
        for url in hidden:
            for text in {url, str(httpx.URL(url))}:
                _HTTPX_LOG.unhide(text)

    @staticmethod
    def _encoded(defaults: list[tuple[bytes, bytes]], headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        # The defaults, then these, which win; encoded here, once: given text, httpx
        # normalises every header one by one, which a signed request's eight make costly.
        given = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
        taken = {name.lower() for name, _ in given}
        return [pair for pair in defaults if pair[0] not in taken] + given

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        shown: str,
        secrets: Iterable[str] = (),
    ) -> httpx.Response:
        """POST ``body``; return the 2xx response, else raise :class:`WebhookDeliveryError`.

        ``shown`` names the target in messages; every string in ``secrets`` (and ``url``
        itself) is blanked out of any text taken from httpx or the server.
        """
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = httpx.Timeout(timeout).as_dict()
        try:
            target, proxied, defaults = self._target(url, shown)
            request = httpx.Request(
                "POST", target, content=body, headers=self._encoded(defaults, headers), extensions={"timeout": limits}
            )
            if proxied:
                response = self._proxied().send(request)
            else:
                response = self.open().handle_request(request)
                response.request = request
                try:
                    response.read()
                finally:
                    response.close()  # the connection goes back to the pool
        except httpx.TimeoutException as exc:
            raise WebhookDeliveryError(
                f"POST {shown} timed out after {timeout:g} s ({type(exc).__name__})", url=shown
            ) from None
        except httpx.HTTPError as exc:
            hidden = [url, *secrets]
            detail = _scrub(str(exc), hidden)
            raise WebhookDeliveryError(
                f"POST {shown} failed: {type(exc).__name__}" + (f": {detail}" if detail else ""), url=shown
            ) from None
        status = response.status_code
        if log.isEnabledFor(logging.DEBUG):  # httpx.Client logs each request; its transport does not
            log.debug("POST %s answered %d %s", shown, status, response.reason_phrase)
        if 200 <= status < 300:
            return response
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        excerpt = _scrub(response.text[:200].strip(), [url, *secrets])
        message = f"POST {shown} answered {status} {response.reason_phrase}".rstrip()
        if retry_after is not None:
            message += f"; retry after {retry_after:g} s"
        if excerpt:
            message += f": {excerpt}"
        retryable = status >= 500 or status in _RETRYABLE_4XX
        raise WebhookDeliveryError(message, url=shown, status=status, retry_after=retry_after, retryable=retryable)
