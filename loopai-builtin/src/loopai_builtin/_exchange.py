"""One HTTP exchange under a whole-request deadline, reading at most a bounded part of the answer.

httpx's timeouts apply to each network operation: a server that sends one byte every half
second never trips a 10 s read timeout, and an answer of a gigabyte is read whole. Here
every connect, TLS handshake, write and read of a request is given only what is left of
the request's deadline, and the answer's body is read up to a limit, after which the
connection is dropped rather than drained. The deadline lives in httpcore's network
backend, the seam its maintainers point to for a total timeout (encode/httpx#1450); the
backend's streams find the current request's deadline in a context variable, so one pool
serves every request and every thread.
"""

from __future__ import annotations

import base64
import contextvars
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

__all__ = ["TRANSPORT_ERRORS", "Answer", "Connections", "Target", "ssl_context"]

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpx.InvalidURL,
)
"""What an exchange raises when no answer came, besides ``httpcore.TimeoutException``."""

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("loopai_builtin_deadline", default=None)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current deadline; ``expired`` once none is left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
        return _Stream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's own sockets, wrapped so that they obey the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_BACKEND = _Backend()
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


@dataclass(frozen=True)
class Target:
    """A URL parsed once: where to connect, through which proxy, and the headers it implies."""

    url: httpcore.URL
    proxy: str | None
    """The proxy URL from the environment, or None for a direct connection."""
    headers: tuple[tuple[bytes, bytes], ...]
    """``host``, and Basic ``authorization`` when the URL carries credentials (as httpx.Client sends them)."""
    basic_token: str | None
    """The base64 ``user:password`` of that authorization header (a secret)."""
    password: str | None

    @classmethod
    def parse(cls, url: str) -> Target:
        """Parse ``url`` (raises ``httpx.InvalidURL``) and pick its proxy from the environment."""
        parsed = httpx.URL(url)
        headers = [(b"host", parsed.netloc)]
        token = None
        if parsed.username or parsed.password:
            token = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode("ascii")
            headers.append((b"authorization", f"Basic {token}".encode("ascii")))
        core = httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path)
        return cls(core, _proxy_for(parsed), tuple(headers), token, parsed.password or None)


def _proxy_for(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY`` honoured as Python's urllib honours them), or None."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return proxy


@dataclass(frozen=True)
class Answer:
    """The start of an HTTP answer: status, reason, headers, and at most ``limit`` bytes of body."""

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes
    truncated: bool
    """The body went on past the limit; the rest was not read (the connection was dropped)."""


class Connections:
    """Keep-alive connections, direct or through the proxy in use, opened on first use.

    Each exchange takes a pool of its own for its duration, and gives it back for the next one
    (the one used last first, its connection warm): exchanges made at once, from the threads of
    a handler's deliveries, never wait for one another, as they would on the lock of one
    shared pool that checks every idle connection on each request. At most
    ``max_keepalive_connections`` pools (one connection each) are kept for later.

    TLS is set up with ``ssl_context`` (see :func:`ssl_context`), or else as httpx sets it up
    (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured) when the first pool is opened. No cookies are
    kept and no redirect is followed: a 3xx is an answer like any other.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._free: dict[str | None, list[httpcore.ConnectionPool]] = {}
        self._opened: set[httpcore.ConnectionPool] = set()  # free or in use; close() closes them all
        self._ssl = ssl_context
        self._retired = False  # set by retire(): no pool is kept for later
        self._lock = threading.Lock()

    def open(self, proxy: str | None = None) -> httpcore.ConnectionPool:
        """A pool for ``proxy`` (None: direct connections), for this caller alone until it gives
        it back with :meth:`give_back` (thread-safe)."""
        with self._lock:
            free = self._free.get(proxy)
            if free:
                return free.pop()
            if self._ssl is None:
                self._ssl = ssl_context()
            pool = httpcore.ConnectionPool(
                ssl_context=self._ssl,
                proxy=_core_proxy(proxy, self._ssl),
                network_backend=_BACKEND,
                # httpx's limits: idle connections closed after 5 s.
                max_connections=_LIMITS.max_connections,
                max_keepalive_connections=_LIMITS.max_keepalive_connections,
                keepalive_expiry=_LIMITS.keepalive_expiry,
            )
            self._opened.add(pool)
            return pool

    def give_back(self, pool: httpcore.ConnectionPool, proxy: str | None = None) -> None:
        """Return a pool :meth:`open` gave, for the next exchange (closed if enough are kept)."""
        with self._lock:
            free = self._free.setdefault(proxy, [])
            keep = not self._retired and pool in self._opened and len(free) < (_LIMITS.max_keepalive_connections or 0)
            if keep:
                free.append(pool)
            else:
                self._opened.discard(pool)
        if not keep:
            pool.close()

    def close(self) -> None:
        """Close every connection (an exchange under way fails); a later one opens new ones."""
        with self._lock:
            pools, self._opened, self._free = self._opened, set(), {}
        for pool in pools:
            pool.close()

    def retire(self) -> None:
        """Close the idle connections now, and each one in use when its exchange gives it back (an
        exchange under way ends as it would have): for connections replaced by others."""
        with self._lock:
            self._retired = True
            pools = [pool for free in self._free.values() for pool in free]
            self._free = {}
            self._opened.difference_update(pools)
        for pool in pools:
            pool.close()

    def exchange(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        timeout: float,
        limit: int,
    ) -> Answer:
        """Send one request and read its answer, all within ``timeout`` seconds.

        At most ``limit`` bytes of the body are read; a longer body is cut there and its
        connection dropped. Raises ``httpcore.TimeoutException`` when the deadline passes
        (whatever the phase: connecting, sending, waiting, or a server that drips its
        answer), else one of :data:`TRANSPORT_ERRORS` when no answer came.
        """
        pool = self.open(target.proxy)
        extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
        token = _DEADLINE.set(time.monotonic() + timeout)
        try:
            with pool.stream(method, target.url, headers=headers, content=body, extensions=extensions) as response:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                for chunk in response.iter_stream():
                    chunks.append(chunk[: limit - size])
                    size += len(chunk)
                    if size > limit:
                        truncated = True  # leaving the block closes the connection: nothing more is read
                        break
                reason = response.extensions.get("reason_phrase", b"")
                return Answer(
                    response.status,
                    reason.decode("ascii", "replace"),
                    httpx.Headers(response.headers),
                    b"".join(chunks),
                    truncated,
                )
        finally:
            _DEADLINE.reset(token)
            self.give_back(pool, target.proxy)


def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """httpx's default context (certifi's authorities, or those ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    name), with the authorities of ``ca_file`` added when given (read now: raises OSError or
    ``ssl.SSLError`` when it cannot be)."""
    context = httpx.create_ssl_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _core_proxy(proxy: str | None, context: ssl.SSLContext) -> httpcore.Proxy | None:
    if proxy is None:
        return None
    parsed = httpx.Proxy(proxy)  # as httpx reads a proxy URL: credentials become Proxy-Authorization
    url = httpcore.URL(
        scheme=parsed.url.raw_scheme, host=parsed.url.raw_host, port=parsed.url.port, target=parsed.url.raw_path
    )
    return httpcore.Proxy(
        url,
        auth=parsed.raw_auth,
        headers=parsed.headers.raw,
        ssl_context=context if parsed.url.scheme == "https" else None,
    )
