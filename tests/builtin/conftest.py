"""Fixtures for the built-in plugins: a real HTTP receiver on 127.0.0.1, a closed port, records and events.

``record``, ``event`` and ``make_host`` are factories. ``receiver`` answers 200 unless told
otherwise: ``receiver.fail(2, status=503, retry_after="1")`` makes the next two requests fail,
``receiver.slow(1.0)`` makes the next one answer late, ``receiver.respond(302, reason=..., headers=...)``
gives the next one any answer. Hostile answers too:
``receiver.huge(2**30)`` streams a gigabyte, ``receiver.drip(0.5)`` sends its body one byte
every half second, ``receiver.echo(400)`` sends back the request's path and headers. It serves GET from
``receiver.documents`` (path -> bytes). Every request is recorded (method, headers, body,
arrival time) in ``receiver.requests``; ``receiver.sent`` counts the body bytes written.
``tls_receiver`` and ``make_tls_receiver`` serve HTTPS, each with a private authority of its own.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import loopai

_CHUNK = b"x" * 65536


@dataclass
class Answer:
    """What the receiver does for one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"ok"
    size: int | None = None
    """Send a body of this many bytes (declared, then streamed until the client goes away)."""
    drip: float = 0.0
    """Seconds between bytes of the body, sent one at a time (the status line and headers too with ``drip_head``)."""
    drip_head: bool = False
    echo: bool = False
    """Answer with the request's path and headers, in the body and as the reason phrase."""
    reason: str | None = None
    """The reason phrase, sent as is (default: the status's usual one)."""


@dataclass
class Request:
    """One request the receiver got."""

    path: str
    headers: httpx.Headers  # case-insensitive, as HTTP headers are
    body: bytes
    at: float
    peer: tuple[str, int]  # the client's address: one per connection
    method: str = "POST"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # many deliveries connect at once: none refused for want of a backlog


class Receiver:
    """A ThreadingHTTPServer in a thread that records requests and answers from a script."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.open_connections = 0
        self.script: list[Answer] = []
        self.documents: dict[str, bytes] = {}
        self.sent = 0
        self.release = threading.Event()  # set at teardown: slow answers stop waiting
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the handlers' clients expect

            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner.open_connections += 1

            def finish(self) -> None:
                with owner._lock:
                    owner.open_connections -= 1
                super().finish()

            def do_POST(self) -> None:
                self._serve(self.rfile.read(int(self.headers.get("content-length") or 0)), None)

            def do_GET(self) -> None:
                document = owner.documents.get(self.path)
                if document is None:
                    self._serve(b"", Answer(404, body=b"no such document"))
                else:
                    self._serve(b"", Answer(headers={"content-type": "application/schema+json"}, body=document))

            def _serve(self, body: bytes, default: Answer | None) -> None:
                headers = httpx.Headers(self.headers.items())
                request = Request(self.path, headers, body, time.monotonic(), self.client_address, self.command)
                answer = owner._next(request, default)
                if answer.delay:
                    owner.release.wait(answer.delay)
                try:
                    self._answer(answer, request)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout, or a body it cut off)

            def _answer(self, answer: Answer, request: Request) -> None:
                if answer.echo:
                    echoed = (f"{request.path}\n" + "".join(f"{k}: {v}\n" for k, v in request.headers.items())).encode()
                    reason = request.headers.get("authorization") or request.path
                    head = f"HTTP/1.1 {answer.status} {reason}\r\ncontent-length: {len(echoed)}\r\n\r\n"
                    self.wfile.write(head.encode() + echoed)
                    return
                size = len(answer.body) if answer.size is None else answer.size
                reason = (
                    answer.reason if answer.reason is not None else self.responses.get(answer.status, ("Whatever",))[0]
                )
                head = f"HTTP/1.1 {answer.status} {reason}\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in answer.headers.items())
                head += f"content-length: {size}\r\n\r\n"
                if answer.drip:
                    if not answer.drip_head:
                        self.wfile.write(head.encode())
                        head = ""
                    for byte in head.encode() + answer.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if owner.release.wait(answer.drip):
                            return
                    return
                self.wfile.write(head.encode() + (answer.body if answer.size is None else b""))
                if answer.size is not None:
                    left = answer.size
                    while left > 0 and not owner.release.is_set():
                        chunk = _CHUNK[: min(left, len(_CHUNK))]
                        self.wfile.write(chunk)
                        left -= len(chunk)
                        with owner._lock:
                            owner.sent += len(chunk)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/loopai"
        if tls is not None:  # HTTPS, with the certificate ``tls`` holds (issued for localhost)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.port}/hooks/loopai"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _next(self, request: Request, default: Answer | None = None) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else default or Answer()

    def fail(self, times: int, status: int = 500, retry_after: str | None = None, body: bytes = b"nope") -> None:
        """The next ``times`` requests get ``status`` (with ``Retry-After`` when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self.script.extend(Answer(status, headers, 0.0, body) for _ in range(times))

    def respond(
        self, status: int, body: bytes = b"", *, reason: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next request gets this answer: ``reason`` and ``headers`` sent as they are (control
        characters included), as a hostile receiver would."""
        with self._lock:
            self.script.append(Answer(status, headers or {}, body=body, reason=reason))

    def slow(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests are answered (200) after ``seconds``."""
        with self._lock:
            self.script.extend(Answer(delay=seconds) for _ in range(times))

    def huge(self, size: int, status: int = 200) -> None:
        """The next request is answered with a body of ``size`` bytes, streamed while the client reads."""
        with self._lock:
            self.script.append(Answer(status, size=size))

    def drip(self, interval: float, *, head: bool = False, status: int = 200, body: bytes = b"x" * 100) -> None:
        """The next request's body is sent one byte every ``interval`` seconds (with ``head``, its
        status line and headers too)."""
        with self._lock:
            self.script.append(Answer(status, body=body, drip=interval, drip_head=head))

    def echo(self, status: int = 400) -> None:
        """The next request is answered with its own path and headers (reason phrase: its authorization)."""
        with self._lock:
            self.script.append(Answer(status, echo=True))

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def _running() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver; shut down after the test."""
    yield from _running()


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    """A receiver over HTTPS whose certificate a private authority signed, and that authority's
    certificate in a file (for ``SSL_CERT_FILE``)."""
    import trustme

    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    authority_file = tmp_path / "authority.pem"
    authority.cert_pem.write_to_path(str(authority_file))
    server = Receiver(tls=context)
    try:
        yield server, authority_file
    finally:
        server.close()


@pytest.fixture
def make_tls_receiver(tmp_path: Path) -> Iterator[Callable[[str], tuple[Receiver, Path]]]:
    """``make_tls_receiver("a")``: another receiver over HTTPS, its certificate signed by a private
    authority of its own, and that authority's certificate in ``tmp_path / "a.pem"``; each is shut
    down after the test."""
    import trustme

    made: list[Receiver] = []

    def make(label: str) -> tuple[Receiver, Path]:
        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("localhost").configure_cert(context)
        authority_file = tmp_path / f"{label}.pem"
        authority.cert_pem.write_to_path(str(authority_file))
        made.append(Receiver(tls=context))
        return made[-1], authority_file

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.fixture
def proxy() -> Iterator[Receiver]:
    """Another receiver, standing in for an HTTP proxy: it answers every request itself."""
    yield from _running()


@pytest.fixture
def down_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port that was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/loopai"


def _record(**fields: Any) -> loopai.ExecutionRecord:
    """An execution record with fresh ids unless given."""
    fields.setdefault("program_id", uuid.uuid4())
    fields.setdefault("task_id", uuid.uuid4())
    return loopai.ExecutionRecord(**fields)


def _event(kind: str = "program.execution.failed", **fields: Any) -> loopai.WebhookEvent:
    """A webhook event with ids and a small payload unless given."""
    fields.setdefault("task_id", uuid.uuid4())
    fields.setdefault("execution_id", uuid.uuid4())
    fields.setdefault("payload", {"error": "division by zero", "attempts": [1, 2]})
    return loopai.WebhookEvent(event_type=kind, **fields)


def _make_host(*plugins: object, **options: Any) -> loopai.Host:
    """A host with these plugins only, fast retries, and an empty environment."""
    options.setdefault("environ", {})
    options.setdefault("retry_backoff", 0.001)
    return loopai.Host(plugins=plugins, **options)


# Helpers as fixtures: with --import-mode=importlib a test module cannot import this conftest.
@pytest.fixture
def record() -> Callable[..., loopai.ExecutionRecord]:
    """``record(output=...)``: an execution record with fresh ids."""
    return _record


@pytest.fixture
def event() -> Callable[..., loopai.WebhookEvent]:
    """``event("canary.rollback", severity="critical")``: a webhook event with ids and a payload."""
    return _event


@pytest.fixture
def make_host() -> Callable[..., loopai.Host]:
    """``make_host(plugin, ...)``: a host with only these plugins, fast retries and an empty environment."""
    return _make_host


def _loopai(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m loopai ARGS`` as a process in ``tmp_path``, its state and cache there and no
    ``LOOPAI_*`` variable of the caller's: exit status, stdout, stderr."""
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("LOOPAI_")},
        "LOOPAI_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    return subprocess.run(
        [sys.executable, "-m", "loopai", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def loopai_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``loopai_cli(tmp_path, *args)``: the ``loopai`` command as a process (see :func:`_loopai`)."""
    return _loopai
