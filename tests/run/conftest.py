"""Fixtures for ``loopai run``: records and tasks files in tmp_path, the command in-process or as a process.

``make_record(**fields)`` builds an ExecutionRecord as a JSON-ready dict; ``write_lines`` writes
JSON Lines (dicts, or raw strings for malformed lines). ``loopai(*args)`` runs the command
in-process and returns its exit code, output lines (parsed) and stderr. ``plugins`` is the name
of a module of test plugins (importable in-process and, via ``env``, in subprocesses), for
``factory = "<module>:Name"`` entries in a loopai.toml written by ``config(...)``. ``workers_run``
starts a long ``loopai run --workers 2`` process to interrupt, or to kill a worker of
(``kit.kill_a_worker``); ``kit.validator_module`` and ``kit.run_process`` run a plugin of a test's
own through a ``loopai run`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopai.cli import main

TASK_A = "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"
TASK_B = "0b7d4c1e-5a2f-4e3b-8c9d-1a2b3c4d5e6f"
PROGRAM = "00000000-0000-4000-8000-000000000001"

OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"enum": ["positive", "negative"]}},
}

PLUGINS = '''
import asyncio, json, os, random, threading, time
import loopai


class Recorder(loopai.WebhookHandlerPlugin):
    """Appends every event it gets to the file named by LOOPAI_TEST_EVENTS, one delivery at a time
    (max_in_flight = 1: in the order they were emitted)."""

    _lock = threading.Lock()
    max_in_flight = 1

    def handle_event(self, event, context):
        line = json.dumps({"type": event.event_type.value, "line": event.payload.get("line"),
                           "payload": event.payload, "dry": context.is_dry_run,
                           "execution_id": str(event.execution_id), "pid": os.getpid()})
        with self._lock, open(os.environ["LOOPAI_TEST_EVENTS"], "a", encoding="utf-8") as out:
            out.write(line + "\\n")


class SlowRecorder(Recorder):
    """A Recorder that takes a second per delivery: the run's wait for deliveries at its end lasts."""

    def handle_event(self, event, context):
        time.sleep(1)
        super().handle_event(event, context)


class OutputIsOk(loopai.ValidatorPlugin):
    """Valid when the output is the string "ok"."""

    def validate(self, execution, context):
        if os.environ.get("LOOPAI_TEST_VALIDATED"):  # which process validated which task
            with open(os.environ["LOOPAI_TEST_VALIDATED"], "a", encoding="utf-8") as out:
                out.write(f"{execution.task_id} {os.getpid()}\\n")
        return loopai.ValidationResult(is_valid=execution.output == "ok", validator_type="output-is-ok")


class SlowAsync(loopai.ValidatorPlugin):
    """An async validator that sleeps 0.05 s, give or take, so that records finish out of order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._random = random.Random(7)

    async def validate(self, execution, context):
        await asyncio.sleep(0.03 + 0.04 * self._random.random())
        return loopai.ValidationResult(is_valid=True, validator_type="slow-async")


class Pauses(loopai.ValidatorPlugin):
    """Takes LOOPAI_TEST_PAUSE seconds (default 1.5) on records whose output is "pause"; valid."""

    def validate(self, execution, context):
        if execution.output == "pause":
            time.sleep(float(os.environ.get("LOOPAI_TEST_PAUSE", "1.5")))
        return loopai.ValidationResult(is_valid=True, validator_type="pauses")


class SlowStart(Pauses):
    """A Pauses whose startup takes LOOPAI_TEST_PAUSE seconds (default 1.5)."""

    def startup(self, host):
        time.sleep(float(os.environ.get("LOOPAI_TEST_PAUSE", "1.5")))


class SlowSync(loopai.ValidatorPlugin):
    """Takes 20 ms per record: a run long enough to interrupt."""

    def validate(self, execution, context):
        time.sleep(0.02)
        return loopai.ValidationResult(is_valid=True, validator_type="slow-sync")


class Stuck(loopai.ValidatorPlugin):
    """Hangs on every record (for a minute): a run that only a second Ctrl-C ends. Touches
    ``stuck.started`` in the working folder when it starts hanging."""

    def validate(self, execution, context):
        open("stuck.started", "w").close()
        time.sleep(60)
        return loopai.ValidationResult(is_valid=True, validator_type="stuck")


class SlowOnTheThird(loopai.ValidatorPlugin):
    """Takes 3 s on the third record it gets, touching ``third.started`` in the working folder as it
    starts; the others pass at once."""

    calls = 0

    def validate(self, execution, context):
        self.calls += 1
        if self.calls == 3:
            open("third.started", "w").close()
            time.sleep(3)
        return loopai.ValidationResult(is_valid=True, validator_type="slow-on-the-third")


class FailsToStart(loopai.ValidatorPlugin):
    """Its startup raises: the host turns it off."""

    def startup(self, host):
        raise ConnectionError("rules service unreachable")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=False, validator_type=self.name)


class Never(loopai.SamplerPlugin):
    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False, reason="never", sampler_type="never")


class DictOnBad(loopai.SamplerPlugin):
    """Returns a dict (the wrong type) for records whose output is "bad", else "no"."""

    def should_sample(self, execution, context):
        if execution.output == "bad":
            return {"should_sample": True, "reason": "bad"}
        return loopai.SamplingDecision(should_sample=False, reason="fine", sampler_type="dict-on-bad")
'''


def make_record(task_id: str = TASK_A, **fields: Any) -> dict[str, Any]:
    """A JSON-ready execution record of ``task_id``; ``fields`` override the defaults."""
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "program_id": PROGRAM,
        "task_id": task_id,
        "input": {"text": "hello"},
        "output": {"label": "positive"},
        "latency_ms": 10.0,
        "status": "success",
        "executed_at": "2025-03-14T09:00:00Z",
    }
    record.update(fields)
    return record


def write_lines(path: Path, lines: Iterable[dict[str, Any] | str]) -> Path:
    """Write JSON Lines: dicts are dumped, strings written as they are."""
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def tasks_toml(**tasks: dict[str, Any]) -> str:
    """A tasks file keyed by task id (use TASK_A=..., TASK_B=... via ``**{TASK_A: {...}}``)."""
    return "".join(f"[tasks.{json.dumps(task_id)}]\n{_toml_table(settings)}\n" for task_id, settings in tasks.items())


def _toml_table(settings: dict[str, Any]) -> str:
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in settings.items())


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


@dataclass
class Result:
    """What one ``loopai run`` did."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[dict[str, Any]]:
        """stdout parsed as JSON Lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outbox, discovery cache, state and events file under tmp_path; no stray configuration."""
    monkeypatch.setenv("LOOPAI_OUTBOX", str(tmp_path / "outbox.sqlite3"))
    monkeypatch.setenv("LOOPAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("LOOPAI_TEST_EVENTS", str(tmp_path / "events.jsonl"))
    monkeypatch.setenv("NO_COLOR", "1")
    for name in (
        "LOOPAI_CONFIG",
        "LOOPAI_STRICT_PLUGINS",
        "LOOPAI_TRACE",
        "LOOPAI_PLUGINS",
        "LOOPAI_DISABLE_PLUGINS",
        "LOOPAI_DISABLE_PLUGIN_AUTOLOAD",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a fresh module holding the test plugins above."""
    name = f"loopai_run_plugins_{uuid.uuid4().hex[:8]}"
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{name}.py").write_text(PLUGINS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(modules))
    return name


@pytest.fixture
def config(tmp_path: Path, plugins: str) -> Callable[..., Path]:
    """``config(validators={"ok": "OutputIsOk"}, handlers={"rec": "Recorder"}, extra="...")`` writes
    loopai.toml registering test plugins by factory; returns its path."""

    def write(
        validators: dict[str, str] | None = None,
        samplers: dict[str, str] | None = None,
        handlers: dict[str, str] | None = None,
        extra: str = "",
    ) -> Path:
        text = ""
        for kind, entries in (("validators", validators), ("samplers", samplers), ("webhook_handlers", handlers)):
            for name, attribute in (entries or {}).items():
                text += f'[plugins.{kind}.{name}]\nfactory = "{plugins}:{attribute}"\n\n'
        path = tmp_path / "loopai.toml"
        path.write_text(text + extra, encoding="utf-8")
        return path

    return write


@pytest.fixture
def loopai(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``loopai run ARGS...`` in-process."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(["run", *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def events(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    """The events the Recorder handler got so far: its complete lines. A line still being written
    (by another process, while the run goes on) is left for the next read."""

    def read() -> list[dict[str, Any]]:
        path = tmp_path / "events.jsonl"
        if not path.exists():
            return []
        *complete, _being_written = path.read_text(encoding="utf-8").split("\n")
        return [json.loads(line) for line in complete]

    return read


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a ``loopai`` subprocess: the test's isolation, and the test plugins importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "modules"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def loopai_process(args: Sequence[str], **options: Any) -> subprocess.Popen[str]:
    """``python -m loopai run ARGS...`` as a process (text mode)."""
    return subprocess.Popen([sys.executable, "-m", "loopai", "run", *args], text=True, **options)


def run_process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m loopai run ARGS...`` as a process in tmp_path, run to its end: exit status, stdout, stderr."""
    return subprocess.run(
        [sys.executable, "-m", "loopai", "run", *args],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def validator_module(tmp_path: Path, code: str, name: str, attribute: str, **settings: str) -> str:
    """Write ``code`` as a fresh module in tmp_path/modules (importable by ``loopai`` processes, see
    :func:`subprocess_env`) and a loopai.toml registering its ``attribute`` as validator ``name``,
    with ``settings`` (e.g. ``isolation="process"``); the module's name."""
    module = f"loopai_{name}_{uuid.uuid4().hex[:8]}"
    modules = tmp_path / "modules"
    modules.mkdir(exist_ok=True)
    (modules / f"{module}.py").write_text(code, encoding="utf-8")
    entry = f'[plugins.validators.{name}]\nfactory = "{module}:{attribute}"\n'
    entry += "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (tmp_path / "loopai.toml").write_text(entry, encoding="utf-8")
    return module


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[Any], seconds: float = 60) -> None:
    """Wait until ``condition()`` holds (checked every 50 ms), ``process`` ends or ``seconds`` pass;
    fail unless it holds."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert condition(), "the run never got that far"


def kill_a_worker(
    process: subprocess.Popen[str],
    events: Callable[[], list[dict[str, Any]]],
    ready: Callable[[], bool] | None = None,
    victim: Callable[[], int] | None = None,
) -> tuple[int, str]:
    """Once the ``--workers 2`` run ``process`` (see ``workers_run``) is ``ready`` (by default: both its
    workers are up and 40 events were delivered), SIGKILL the worker ``victim()`` names (by default
    its second, one that records and does not deliver) and wait for the run to end: the worker's pid
    and the run's stderr. The run is killed if it does not end."""
    try:
        wait_for(ready or (lambda: len(events()) >= 40 and len(worker_pids(process.pid)) == 2), process)
        pid = victim() if victim is not None else worker_pids(process.pid)[1]
        os.kill(pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return pid, stderr


@pytest.fixture
def workers_run(tmp_path: Path, config: Callable[..., Path]) -> Callable[..., subprocess.Popen[str]]:
    """``workers_run(lines, *flags, **popen)``: ``loopai run`` of ``lines`` (written to in.jsonl) as a
    process on ``--workers 2``, results in out.jsonl, stdout and stderr piped; each record takes 20 ms
    (SlowSync), none is sampled and the Recorder gets every event: a run long enough to interrupt, or
    to kill a worker of. ``flags`` are added to the command, ``popen`` passed to :class:`subprocess.Popen`."""

    def start(lines: Iterable[dict[str, Any] | str], *flags: str, **popen: Any) -> subprocess.Popen[str]:
        config(validators={"slow": "SlowSync"}, samplers={"never": "Never"}, handlers={"rec": "Recorder"})
        source = write_lines(tmp_path / "in.jsonl", lines)
        return loopai_process(
            [str(source), "--no-autoload", "--workers", "2", "-o", "out.jsonl", *flags],
            cwd=tmp_path,
            env=subprocess_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **popen,
        )

    return start


def worker_pids(parent: int) -> list[int]:
    """The ``--workers`` processes of the run whose pid is ``parent`` (its children started by
    multiprocessing's spawn; not its resource tracker), in the order they were started. Linux (/proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == parent and b"spawn_main" in command:
            found.append((int(fields[19]), int(stat.parent.name)))  # by start time
    return [pid for _, pid in sorted(found)]


@pytest.fixture
def kit() -> Any:
    """The helpers of this module, for tests (importlib mode cannot import a conftest)."""
    import types

    return types.SimpleNamespace(
        TASK_A=TASK_A,
        TASK_B=TASK_B,
        OUTPUT_SCHEMA=OUTPUT_SCHEMA,
        make_record=make_record,
        write_lines=write_lines,
        tasks_toml=tasks_toml,
        subprocess_env=subprocess_env,
        loopai_process=loopai_process,
        run_process=run_process,
        validator_module=validator_module,
        wait_for=wait_for,
        kill_a_worker=kill_a_worker,
        worker_pids=worker_pids,
    )
