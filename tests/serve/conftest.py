"""Real ``loopai serve`` processes on 127.0.0.1 for the service's tests, and the records they judge.

``launch(home, config=...)`` starts ``python -m loopai serve`` on a free port with everything it
writes (outbox, discovery cache, events, log) under ``home``, in a process group of its own (with its
``--workers N`` processes), waits for ``/health`` and returns a :class:`Server`; ``server.stop()``
sends SIGTERM and waits, ``server.end()`` also kills what is left of the group, so that no worker
outlives a test. Test plugins live in a module written
next to the configuration and are registered by factory: ``recorder`` appends every event it gets
to ``home/events.jsonl``; ``slow`` (a validator) and ``slow-handler`` take ``LOOPAI_TEST_DELAY``
seconds. ``server`` is one service for a whole module (no keys); ``launcher`` starts servers for one
test and stops them after it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    import fastapi  # noqa: F401
except ImportError:  # without the serve extra (nox installs it on one Python only): nothing to test here
    collect_ignore_glob = ["test_*.py"]

import httpx

from loopai.client import Client

TASK = "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"
"""In the tasks table: a schema for its output, sampled always."""
OTHER_TASK = "0b7d4c1e-5a2f-4e3b-8c9d-1a2b3c4d5e6f"
"""Not in the tasks table."""
PROGRAM = "00000000-0000-4000-8000-000000000001"
OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"enum": ["positive", "negative"]}},
}
MODULE = "loopai_serve_test_plugins"

PLUGINS = '''
import asyncio, json, os, threading, time
import loopai

_lock = threading.Lock()


class Recorder(loopai.WebhookHandlerPlugin):
    """Appends every event it gets to events.jsonl in the working directory."""

    def handle_event(self, event, context):
        line = json.dumps({"event_id": str(event.event_id), "type": event.event_type.value,
                           "payload": event.payload, "metadata": event.metadata,
                           "severity": event.severity.value, "task_id": str(event.task_id)})
        with _lock, open("events.jsonl", "a", encoding="utf-8") as out:
            out.write(line + "\\n")


class Slow(loopai.ValidatorPlugin):
    """Valid after LOOPAI_TEST_DELAY seconds (async: it does not hold the event loop)."""

    async def validate(self, execution, context):
        await asyncio.sleep(float(os.environ.get("LOOPAI_TEST_DELAY", "0.05")))
        return loopai.ValidationResult(is_valid=True, validator_type="slow", message="slept")


class SlowHandler(loopai.WebhookHandlerPlugin):
    """Takes LOOPAI_TEST_DELAY seconds, then appends the event to events.jsonl."""

    def handle_event(self, event, context):
        time.sleep(float(os.environ.get("LOOPAI_TEST_DELAY", "0.05")))
        with _lock, open("events.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps({"event_id": str(event.event_id), "type": event.event_type.value,
                                  "payload": event.payload, "handler": "slow-handler"}) + "\\n")


class Broken(loopai.ValidatorPlugin):
    """Raises on every call."""

    def validate(self, execution, context):
        raise RuntimeError("the broken validator broke")


class CannotStart(loopai.ValidatorPlugin):
    def startup(self, host):
        raise RuntimeError("cannot start")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True)
'''

STANDARD = f"""
autoload = false

[plugins.validators.json-schema-validator]

[plugins.samplers.percentage-sampler]
configuration = {{ seed = 1 }}

[plugins.webhook_handlers.recorder]
factory = "{MODULE}:Recorder"

[tasks."{TASK}"]
name = "sentiment"
sampling_rate = 1.0
output_schema.type = "object"
output_schema.required = ["label"]
output_schema.properties.label.enum = ["positive", "negative"]
"""


def toml_table(settings: dict[str, Any]) -> str:
    """``key = value`` lines (JSON values are valid TOML for strings, numbers, lists of them)."""
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


def standard_config(serve: dict[str, Any] | None = None, extra: str = "", *, recorder: bool = True) -> str:
    """The standard test configuration (json-schema-validator; percentage-sampler, seeded, the task's rate
    1.0; the recorder unless not wanted), ``serve`` as its ``[serve]`` table, then ``extra``."""
    text = (
        STANDARD
        if recorder
        else STANDARD.replace(f'[plugins.webhook_handlers.recorder]\nfactory = "{MODULE}:Recorder"\n', "")
    )
    if serve:
        text += "\n[serve]\n" + toml_table(serve)
    return text + "\n" + extra


def record(task_id: str = TASK, **fields: Any) -> dict[str, Any]:
    """A JSON-ready execution record; ``fields`` override the defaults (a valid positive output)."""
    value: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "program_id": PROGRAM,
        "task_id": task_id,
        "input": {"text": "hello"},
        "output": {"label": "positive"},
        "latency_ms": 12.5,
        "status": "success",
        "executed_at": "2025-03-14T09:00:00Z",
    }
    value.update(fields)
    return value


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One running ``loopai serve``."""

    url: str
    process: subprocess.Popen[bytes]
    home: Path

    @property
    def log(self) -> str:
        """What the process printed so far."""
        return (self.home / "serve.log").read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """What the recorder (and the slow handler) got, in order: their complete lines (a line a
        worker is still writing is left for the next read)."""
        path = self.home / "events.jsonl"
        if not path.exists():
            return []
        *complete, _being_written = path.read_text(encoding="utf-8").split("\n")
        return [json.loads(line) for line in complete if line.strip()]

    def client(self, **options: Any) -> Client:
        return Client(self.url, **options)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process (by its id) and wait for it; its exit status. SIGKILL goes to its whole
        process group: its workers would be left running otherwise (nothing stops them when their
        main process dies that way)."""
        if signum == signal.SIGKILL:
            self._kill_group()
        elif self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout)

    def end(self, timeout: float = 15.0) -> None:
        """Stop it as an operator would (SIGTERM, waiting up to ``timeout`` seconds for a graceful stop,
        workers included), then kill whatever of its process group is still there: nothing it started
        outlives the test."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()
        self.process.wait(timeout)

    def _kill_group(self) -> None:
        """SIGKILL to the process group the server leads (its pid), if any of it is left."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # the group is gone (PermissionError: macOS, a zombie leader)
            pass


def launch(
    home: Path,
    *,
    config: str | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    wait: bool = True,
    port: int | None = None,
) -> Server:
    """Start ``loopai serve`` in ``home`` (config written to ``home/loopai.toml``), ready unless ``wait`` is False."""
    home.mkdir(parents=True, exist_ok=True)
    (home / f"{MODULE}.py").write_text(PLUGINS, encoding="utf-8")
    (home / "loopai.toml").write_text(config if config is not None else standard_config(), encoding="utf-8")
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("LOOPAI_", "PROMETHEUS_"))}
    environ.update(
        PYTHONPATH=os.pathsep.join([str(home), *filter(None, [os.environ.get("PYTHONPATH")])]),
        LOOPAI_OUTBOX=str(home / "outbox.sqlite3"),
        LOOPAI_CACHE_DIR=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
        NO_COLOR="1",
    )
    environ.update(env or {})  # may name another outbox
    port = free_port() if port is None else port
    command = [sys.executable, "-m", "loopai", "serve", "--port", str(port), "--config", "loopai.toml", *args]
    with (home / "serve.log").open("ab") as log:
        process = subprocess.Popen(  # a group of its own: ended with its workers (Server.end)
            command, cwd=home, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, home)
    if wait:
        wait_until_up(server)
    return server


def wait_until_up(server: Server, timeout: float = 30.0) -> None:
    """Until ``/health`` answers; fails with the log when the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"loopai serve exited with {server.process.returncode}:\n{server.log}")
        try:
            if httpx.get(server.url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    pytest.fail(f"loopai serve did not answer within {timeout} s:\n{server.log}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service (standard configuration, no keys) for the tests of a module."""
    running = launch(tmp_path_factory.mktemp("serve"))
    yield running
    running.end()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``launcher(config=..., args=..., env=...)`` starts a server for this test; after it, each is stopped
    (SIGTERM, a wait) and what is left of its process group killed: no worker outlives the test."""
    started: list[Server] = []

    def start(name: str = "home", **options: Any) -> Server:
        running = launch(tmp_path / name, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        running.end()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` seconds (asked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers of this module, for tests (importlib mode cannot import a conftest)."""
    import types

    return types.SimpleNamespace(
        TASK=TASK,
        OTHER_TASK=OTHER_TASK,
        PROGRAM=PROGRAM,
        MODULE=MODULE,
        record=record,
        standard_config=standard_config,
        eventually=eventually,
        free_port=free_port,
        launch=launch,
        wait_until_up=wait_until_up,
    )
