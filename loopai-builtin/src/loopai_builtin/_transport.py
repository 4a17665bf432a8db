"""Posting to webhooks, what an answer means for the delivery, and the error that tells the host to retry."""

from __future__ import annotations

import email.utils
import logging
import math
import ssl
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from pydantic import SecretStr

import loopai
from loopai_builtin._shown import basic_token_forms, excerpt, scrub, shown_url, url_secrets

if TYPE_CHECKING:
    from loopai_builtin._exchange import Answer, Connections, Target

__all__ = [
    "EXCERPT_LIMIT",
    "RETRY_AFTER_MAX",
    "Poster",
    "WebhookDeliveryError",
    "authority_problem",
    "is_http_url",
    "parse_retry_after",
    "raw_setting",
    "secret_text",
]

log = logging.getLogger("loopai.builtin")

EXCERPT_LIMIT = 4096
"""Bytes of an answer's body read, at most; the rest is never read (the connection is dropped)."""
RETRY_AFTER_MAX = 300.0
"""Default longest ``Retry-After`` a handler passes on to the host, in seconds."""
_SHOWN_EXCERPT = 200  # characters of the answer quoted in an error message
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_NOT_FOLLOWED = "redirects are not followed, so that an event never goes to an address the configuration does not name"
_PROCESS_WIDE = "SSL_CERT_FILE or SSL_CERT_DIR"


class WebhookDeliveryError(loopai.LoopaiError):
    """A webhook POST did not succeed: an error status, a timeout or no connection.

    ``url`` is the target without credentials or query; ``status`` the HTTP status (None
    when no answer came); ``retry_after`` the seconds the server asked to wait (from
    ``Retry-After``), which the host honours; ``retryable`` is False for answers that
    another try will not change (most 4xx; a 3xx, as no redirect is followed).
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


def authority_problem(path: str) -> str | None:
    """Why the file at ``path`` cannot add certificate authorities to a handler's HTTPS connections
    (it is missing, unreadable, or holds no PEM certificate), naming the path; None when it can."""
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no default authorities: only the file is read
        context.load_verify_locations(cafile=path)
    except FileNotFoundError:
        return f"no such file: {path!r}"
    except IsADirectoryError:
        return f"{path!r} is a folder, not a PEM file of certificates"
    except PermissionError:
        return f"cannot read {path!r}: permission denied"
    except ssl.SSLError as exc:
        if exc.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            return f"{path!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----; convert a DER file to PEM)"
        return f"{path!r} is not a valid PEM file of certificates ({exc.reason or exc})"
    except (OSError, ValueError) as exc:  # a path too long, a loop of links, a NUL in the path...
        return f"cannot read {path!r}: {getattr(exc, 'strerror', None) or exc}"
    if not context.cert_store_stats().get("x509"):
        return f"{path!r} holds no certificate (only revocation lists)"
    return None


def _untrusted(setting: str | None, ca_file: str | None) -> str:
    """Advice for a receiver whose certificate did not verify: the handler's own authority setting
    first (when it has one), the process-wide variables last."""
    if setting is None:
        return f" (a receiver whose certificate a private authority signed: set {_PROCESS_WIDE} to it)"
    if ca_file is None:
        return (
            f" (a receiver whose certificate a private authority signed: set {setting} to that authority's "
            f"certificate, a PEM file, for this handler alone; {_PROCESS_WIDE} would replace the default "
            "authorities of every HTTPS connection of the process)"
        )
    return (
        f" ({setting} is {ca_file!r}, but neither its authorities nor the default ones signed the receiver's "
        f"certificate: set {setting} to the authority that did)"
    )


def _squash(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def _joined(url: str, location: str) -> str:
    """The address a ``Location`` (absolute, or relative to ``url``) names."""
    try:
        return urljoin(url, location.strip())
    except ValueError:
        return location


class Poster:
    """Keep-alive connections for one handler (see :class:`~loopai_builtin._exchange.Connections`),
    and what a delivery makes of the answer: success, or a :class:`WebhookDeliveryError`.

    Each POST has ``timeout`` seconds in all (a deadline, not a per-read timeout), and at
    most :data:`EXCERPT_LIMIT` bytes of any answer are read: a receiver can neither hold a
    delivery open nor fill the memory. The network libraries (httpx, httpcore) are imported
    when the connections are first needed: a handler left off (no URL configured) never does.

    HTTPS receivers are verified with the default authorities (as httpx has them), and those of
    the PEM file :meth:`trust` was given, for this poster's connections only; ``trust_setting``
    names the handler's setting for that file in the advice about a certificate that did not
    verify (None: the handler has none, and the advice names ``SSL_CERT_FILE``).
    """

    def __init__(self, user_agent: str, setting: str = "url", trust_setting: str | None = None) -> None:
        self._setting = setting  # the handler's URL setting, named in the advice about a redirect
        self._trust_setting = trust_setting
        self._ca_file: str | None = None
        self._ssl: ssl.SSLContext | None = None  # trusting _ca_file; None: httpx's default context
        self._defaults = ((b"user-agent", user_agent.encode("ascii")), (b"accept", b"*/*"))
        self._connections: Connections | None = None
        self._lock = threading.Lock()
        self._targets: dict[str, Target] = {}  # parsed once per URL (httpx parses a text URL every time)

    @property
    def ca_file(self) -> str | None:
        """The PEM file of authorities trusted besides the default ones (see :meth:`trust`), or None."""
        return self._ca_file

    def trust(self, ca_file: str | None, *, if_changed: bool = False) -> None:
        """Verify HTTPS receivers with the default authorities and, when ``ca_file`` names a PEM file,
        its authorities too (None: the defaults alone). The file is read now, once: what becomes of it
        later changes nothing until the next call. Connections opened before are closed once idle
        (deliveries under way end as they would have). With ``if_changed``, nothing happens when
        ``ca_file`` is already the one trusted (so that deliveries made at once that all see a new
        setting replace the connections once). Raises ValueError naming the setting and the path when
        the file cannot serve (see :func:`authority_problem`)."""
        context = None if ca_file is None else self._context(ca_file)
        with self._lock:
            if if_changed and ca_file == self._ca_file:
                return
            previous, self._connections = self._connections, None
            self._ca_file, self._ssl = ca_file, context
        if previous is not None:
            previous.retire()

    def _context(self, ca_file: str) -> ssl.SSLContext:
        """The TLS context that trusts ``ca_file`` besides the default authorities; ValueError when it cannot."""
        from loopai_builtin._exchange import ssl_context

        problem = authority_problem(ca_file)
        if problem is None:
            try:
                return ssl_context(ca_file)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; the file changed since the check
                problem = authority_problem(ca_file) or f"cannot read {ca_file!r}: {exc}"
        raise ValueError(f"{self._trust_setting or 'ca_file'}: {problem}")

    def _pool(self) -> Connections:
        with self._lock:
            if self._connections is None:
                from loopai_builtin._exchange import Connections

                self._connections = Connections(self._ssl)
            return self._connections

    def open(self) -> None:
        """Open the direct connection pool now rather than on the first post (TLS set-up takes a while)."""
        connections = self._pool()
        connections.give_back(connections.open())

    def close(self) -> None:
        """Close the connections; a later post opens new ones."""
        self._targets = {}
        if self._connections is not None:
            self._connections.close()

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            from loopai_builtin._exchange import Target

            target = Target.parse(url)
            self._targets = {**self._targets, url: target}
        return target

    def _encoded(self, target: Target, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        # Ours, then the URL's, then these, which win; encoded here, once per request.
        given = [(name.lower().encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
        taken = {name for name, _ in given}
        return [pair for pair in (*self._defaults, *target.headers) if pair[0] not in taken] + given

    @staticmethod
    def _hidden(url: str, target: Target | None, secrets: Iterable[str]) -> list[str]:
        """Everything that must never be shown: the URL, its password and the Basic token made of
        it (whole header value too, and the forms of :func:`~loopai_builtin._shown.basic_token_forms`), its query's
        values, and the caller's secrets."""
        hidden = [url, *url_secrets(url), *secrets]
        if target is not None:
            hidden += [target.password or "", quote(target.password or "", safe="")]
            if target.basic_token:
                hidden += basic_token_forms(target.basic_token)
        return hidden

    @staticmethod
    def _pointed(url: str, location: str, hidden: list[str], keep_path: bool) -> str:
        """Where a redirect from ``url`` points, safe to print: as :func:`shown_url` shows a URL, the
        secrets blanked (all but ``url`` itself: the path it shares with the address is no secret)."""
        shown = shown_url(_joined(url, location), keep_path=keep_path)
        return excerpt(scrub(shown, [text for text in hidden if text != url]), _SHOWN_EXCERPT)

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        shown: str,
        secrets: Iterable[str] = (),
        retry_after_max: float = RETRY_AFTER_MAX,
        keep_path: bool = True,
    ) -> Answer:
        """POST ``body``; return the 2xx answer, else raise :class:`WebhookDeliveryError`.

        ``shown`` names the target in messages; ``url`` itself, its credentials, its query's
        values and every string in ``secrets`` are blanked out of any text taken from the
        server or the network library, and so are the control characters of such text. A
        ``Retry-After`` longer than ``retry_after_max`` seconds is reported, and capped to it
        on the error's ``retry_after``. A redirect is not followed: the error says where it
        pointed, shown as ``shown_url`` shows a URL (with its path unless ``keep_path`` is
        False), and to set the URL to that address.
        """
        import httpcore

        from loopai_builtin._exchange import TRANSPORT_ERRORS

        target: Target | None = None
        try:
            target = self._target(url)
            answer = self._pool().exchange(
                "POST", target, self._encoded(target, headers), body, timeout=timeout, limit=EXCERPT_LIMIT
            )
        except httpcore.TimeoutException as exc:
            raise WebhookDeliveryError(
                f"POST {shown} timed out after {timeout:g} s ({type(exc).__name__})", url=shown
            ) from None
        except TRANSPORT_ERRORS as exc:
            detail = excerpt(scrub(str(exc), self._hidden(url, target, secrets)), _SHOWN_EXCERPT)
            hint = _untrusted(self._trust_setting, self._ca_file) if "CERTIFICATE_VERIFY_FAILED" in str(exc) else ""
            raise WebhookDeliveryError(
                f"POST {shown} failed: {type(exc).__name__}" + (f": {detail}" if detail else "") + hint, url=shown
            ) from None
        status = answer.status
        if 200 <= status < 300:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("POST %s answered %d", shown, status)
            return answer
        hidden = self._hidden(url, target, secrets)
        reason = excerpt(scrub(answer.reason, hidden), _SHOWN_EXCERPT)
        log.debug("POST %s answered %d %s", shown, status, reason)
        message = f"POST {shown} answered {status} {reason}".rstrip()
        location = answer.headers.get("location") if 300 <= status < 400 else None
        if location is not None:
            message += f", pointing to {self._pointed(url, location, hidden, keep_path)}"
            hidden += url_secrets(_joined(url, location))  # the body may repeat the address
        asked = parse_retry_after(answer.headers.get("retry-after"))
        retry_after = None if asked is None else min(asked, retry_after_max)
        if retry_after is not None:
            message += f"; retry after {retry_after:g} s"
            if asked is not None and asked > retry_after:
                message += f" (it asked for {asked:g} s; retry_after_max caps the wait)"
        if 300 <= status < 400:
            address = "that address" if location is not None else "the final address"
            message += f"; set {self._setting} to {address} ({_NOT_FOLLOWED})"
        quoted = excerpt(scrub(answer.body.decode("utf-8", "replace"), hidden), _SHOWN_EXCERPT)
        if quoted:
            message += f": {quoted}" + ("…" if answer.truncated and not quoted.endswith("…") else "")
        retryable = status >= 500 or status in _RETRYABLE_4XX
        raise WebhookDeliveryError(message, url=shown, status=status, retry_after=retry_after, retryable=retryable)
