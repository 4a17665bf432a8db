"""Fixtures for durable delivery: a real HTTP receiver on 127.0.0.1, outboxes in tmp, the CLI as a subprocess.

Every test gets its own ``LOOPAI_OUTBOX``, ``LOOPAI_CACHE_DIR`` and ``XDG_STATE_HOME`` under
``tmp_path``, so nothing is written outside it. ``receiver`` answers 200 unless told otherwise:
``fail(2, status=503, retry_after="1")`` scripts the next answers (fail N times, 429 with
``Retry-After``...), ``always(503)`` makes every later answer a failure until ``always(200)``,
``slow(seconds)`` answers late, ``hold()`` keeps every later request waiting until ``release()``,
``stop()`` / ``start()`` take it down (connections refused) and bring it back on the same port.
``make_host(..., delivery={...})`` sets ``[delivery]`` settings. Helpers are fixtures: with
--import-mode=importlib a test cannot import this file.
"""

from __future__ import annotations

import base64
import os
import socket
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
from loopai.delivery import SqliteOutbox as Outbox
from loopai_builtin import HttpWebhookHandler

KEY = b"delivery-tests-key-material-0123456789"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


@dataclass
class Answer:
    """What the receiver does for one request: wait (``delay`` s, or until released), then answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: bool = False
    body: bytes = b"ok"


@dataclass
class Request:
    """One request the receiver got."""

    path: str
    headers: httpx.Headers
    body: bytes
    at: float

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """A ThreadingHTTPServer in a thread that records requests and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[Answer] = []
        self.default = Answer()
        self.gate = threading.Event()  # held requests wait for it (set by release() and close())
        self._changed = threading.Condition()
        self._connections: set[socket.socket] = set()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()
        self.url = f"http://127.0.0.1:{self.port}/hooks/loopai"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the handlers' clients expect

            def setup(self) -> None:
                super().setup()
                with owner._changed:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._changed:
                    owner._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                answer = owner._take(Request(self.path, httpx.Headers(self.headers.items()), body, time.monotonic()))
                if answer.hold:
                    owner.gate.wait(30)
                elif answer.delay:
                    owner.gate.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up, or the receiver was stopped

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _take(self, request: Request) -> Answer:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            return self.script.pop(0) if self.script else self.default

    # -- scripting -----------------------------------------------------------------------

    def fail(self, times: int, status: int = 503, retry_after: str | None = None) -> None:
        """The next ``times`` requests get ``status`` (with ``Retry-After`` when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._changed:
            self.script.extend(Answer(status, headers, body=b"try later") for _ in range(times))

    def always(self, status: int, retry_after: str | None = None) -> None:
        """Every request after the scripted ones gets ``status`` (200: healthy again)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.default = Answer(status, headers, body=b"try later" if status >= 300 else b"ok")

    def answer(self, times: int) -> None:
        """The next ``times`` requests get 200 at once, whatever comes after."""
        with self._changed:
            self.script.extend(Answer() for _ in range(times))

    def slow(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests are answered (200) after ``seconds``."""
        with self._changed:
            self.script.extend(Answer(delay=seconds) for _ in range(times))

    def hold(self) -> None:
        """Requests after the scripted ones wait until :meth:`release` (then get 200)."""
        self.gate.clear()
        self.default = Answer(hold=True)

    def release(self) -> None:
        """Answer held requests, and every later one at once."""
        self.default = Answer()
        self.gate.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` requests arrived."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    def event_ids(self) -> list[str]:
        """The ``webhook-id`` of every request, in arrival order (duplicates included)."""
        with self._changed:
            return [r.event_id for r in self.requests]

    # -- up and down ---------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on the same port."""
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and drop open connections: clients get connection errors."""
        assert self.server is not None and self._thread is not None
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        with self._changed:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server = None

    def close(self) -> None:
        self.gate.set()
        if self.server is not None:
            self.stop()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outbox, discovery cache and state directory under tmp_path; no stray configuration."""
    monkeypatch.setenv("LOOPAI_OUTBOX", str(tmp_path / "outbox.sqlite3"))
    monkeypatch.setenv("LOOPAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in (
        "LOOPAI_CONFIG",
        "LOOPAI_STRICT_PLUGINS",
        "LOOPAI_TRACE",
        "LOOPAI_PLUGINS",
        "LOOPAI_WEBHOOK_SECRET",
        "LOOPAI_DISABLE_PLUGINS",
        "LOOPAI_DISABLE_PLUGIN_AUTOLOAD",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    """The outbox file of this test (also in ``LOOPAI_OUTBOX``)."""
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
def outbox_url(postgres_url: str) -> str:
    """A fresh database on the tests' PostgreSQL server, upgraded to this loopai's schema: its URL
    (password included). Tests that use it are marked ``postgres``."""
    from loopai.database import Database, upgrade

    database = Database(postgres_url)
    try:
        with database.connect() as conn:
            upgrade(conn, database.url.shown)
    finally:
        database.close()
    return postgres_url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver; shut down after the test."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def down_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port that was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/loopai"


def _event(kind: str = "program.execution.failed", **fields: Any) -> loopai.WebhookEvent:
    fields.setdefault("task_id", uuid.uuid4())
    fields.setdefault("payload", {"error": "division by zero", "attempts": [1, 2]})
    return loopai.WebhookEvent(event_type=kind, **fields)


@pytest.fixture
def event() -> Callable[..., loopai.WebhookEvent]:
    """``event("canary.rollback", severity="critical")``: a webhook event with a fresh id."""
    return _event


@pytest.fixture
def make_host(outbox_path: Path) -> Iterator[Callable[..., loopai.Host]]:
    """``make_host(plugin, ...)``: a host with only these plugins, this test's outbox file and fast
    retries; closed after the test."""
    hosts: list[loopai.Host] = []

    def make(*plugins: object, delivery: dict[str, Any] | None = None, **options: Any) -> loopai.Host:
        options.setdefault("environ", {})
        options.setdefault("retry_backoff", 0.001)
        options.setdefault("outbox", outbox_path)
        if delivery is not None:
            options["config"] = loopai.LoopaiConfig(delivery=delivery)
        host = loopai.Host(plugins=plugins, **options)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


@pytest.fixture
def http_handler() -> Callable[..., HttpWebhookHandler]:
    """``http_handler(url, **settings)``: the built-in HTTP handler, signing with ``WHSEC``."""

    def make(url: str, **settings: Any) -> HttpWebhookHandler:
        settings.setdefault("secret", WHSEC)
        settings.setdefault("timeout", 5.0)
        return HttpWebhookHandler({"url": url, **settings})

    return make


@pytest.fixture
def whsec() -> str:
    """The signing secret ``http_handler`` uses, for ``standardwebhooks.Webhook(whsec)``."""
    return WHSEC


@pytest.fixture
def assert_accounted() -> Callable[..., dict[str, int]]:
    """``assert_accounted(outbox, deliveries, settled=True)``: delivered + dead + pending == deliveries
    (emitted events x matching handlers), always; with ``settled``, nothing pending. Returns the counts."""

    def check(outbox: Outbox | None, deliveries: int, *, settled: bool = True) -> dict[str, int]:
        assert outbox is not None
        counts = outbox.counts()
        assert counts["delivered"] + counts["dead"] + counts["pending"] == deliveries, counts
        assert counts["quarantined"] == 0, counts
        if settled:
            assert counts["pending"] == 0, counts
        return counts

    return check


@pytest.fixture
def settle() -> Callable[..., loopai.Host]:
    """``settle(host, timeout=10)``: wait until the host's delivery workers have nothing left to do now
    (fails the test when they still have after ``timeout`` seconds); returns the host."""

    def wait(host: loopai.Host, timeout: float = 10.0) -> loopai.Host:
        assert host.drain(timeout), f"deliveries still due after {timeout} s: {host.delivery_report()}"
        return host

    return wait


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``write_config(url, max_retries=5, retry_backoff=0.01, circuit_failures=5, ...)``: a loopai.toml in
    tmp_path (the CLI's working directory) with only the http handler, posting to ``url`` and signing
    with ``WHSEC`` (from ``LOOPAI_WEBHOOK_SECRET``); other keywords go to ``[delivery]``."""

    def write(url: str, *, max_retries: int = 5, retry_backoff: float = 0.01, **delivery: Any) -> Path:
        monkeypatch.setenv("LOOPAI_WEBHOOK_SECRET", WHSEC)
        settings = "".join(f"{key} = {value!r}\n" for key, value in delivery.items())
        path = tmp_path / "loopai.toml"
        path.write_text(
            "autoload = false\n\n"
            f"[dispatch]\nmax_retries = {max_retries}\nretry_backoff = {retry_backoff}\n\n"
            "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
            f'url = "{url}"\nsecret = "${{LOOPAI_WEBHOOK_SECRET}}"\ntimeout = 5\n\n'
            f"[delivery]\n{settings}",
            encoding="utf-8",
        )
        return path

    return write


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli("events", "list", env={...})``: ``python -m loopai`` in tmp_path (or ``cwd``), with
    this test's environment (outbox, cache) plus ``env``."""

    def run(
        *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loopai", *args],
            cwd=cwd or tmp_path,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
