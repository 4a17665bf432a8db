"""Posting to webhooks with one reused httpx client, and the error that tells the host to retry."""

from __future__ import annotations

import email.utils
import math
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
import loopai
from pydantic import SecretStr

__all__ = [
    "Poster",
    "WebhookDeliveryError",
    "is_http_url",
    "parse_retry_after",
    "raw_setting",
    "secret_text",
    "shown_url",
]

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


class Poster:
    """One keep-alive ``httpx.Client`` for a handler, opened on first use and closed on shutdown."""

    def __init__(self, user_agent: str) -> None:
        self._user_agent = user_agent
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def open(self) -> httpx.Client:
        """The client, created if needed (thread-safe)."""
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = httpx.Client(
                        headers={"user-agent": self._user_agent}, follow_redirects=False
                    )
        return client

    def close(self) -> None:
        """Close the client and its connections; a later post opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

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
        hidden = [url, *secrets]
        try:
            response = self.open().post(url, content=body, headers=dict(headers), timeout=timeout)
        except httpx.TimeoutException as exc:
            raise WebhookDeliveryError(
                f"POST {shown} timed out after {timeout:g} s ({type(exc).__name__})", url=shown
            ) from None
        except httpx.HTTPError as exc:
            detail = _scrub(str(exc), hidden)
            raise WebhookDeliveryError(
                f"POST {shown} failed: {type(exc).__name__}" + (f": {detail}" if detail else ""), url=shown
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        excerpt = _scrub(response.text[:200].strip(), hidden)
        message = f"POST {shown} answered {status} {response.reason_phrase}".rstrip()
        if retry_after is not None:
            message += f"; retry after {retry_after:g} s"
        if excerpt:
            message += f": {excerpt}"
        retryable = status >= 500 or status in _RETRYABLE_4XX
        raise WebhookDeliveryError(message, url=shown, status=status, retry_after=retry_after, retryable=retryable)
