"""Fixtures for the ``loopai`` command line: a project folder of its own, the command in-process or as a process.

Every test runs in a fresh folder (a git repository, so that the upward search for a
configuration stops there) with no ``LOOPAI_*`` variable, and with ``HOME`` and the ``XDG_*``
folders under ``tmp_path``: nothing is read from or written to the real user's folders.
``cli(*args)`` runs ``loopai ARGS`` in-process (``loopai.cli.main``); ``proc(*args)`` runs
``python -m loopai ARGS`` as a process, for what only a process shows (exit status, closed
stdin, a full disk). Test plugins live in a module on ``PYTHONPATH`` (``factory =
"loopai_cli_plugins:Name"``). Helpers are fixtures: with --import-mode=importlib a test cannot
import this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopai.cli import main

TASK_A = "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"
TASK_B = "0b7d4c1e-5a2f-4e3b-8c9d-1a2b3c4d5e6f"

PLUGINS = '''
import json, os
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr

import loopai


class Judge(loopai.ValidatorPlugin):
    """Valid when the output is "ok"; signs with its metadata's label, to tell which validators ran."""

    def validate(self, execution, context):
        label = self.metadata.get("label", self.name)
        return loopai.ValidationResult(is_valid=execution.output == "ok", validator_type=label)


class Always(loopai.SamplerPlugin):
    def should_sample(self, execution, context):
        label = self.metadata.get("label", self.name)
        return loopai.SamplingDecision(should_sample=True, reason="always", sampler_type=label)


class Tuned(loopai.SamplerPlugin):
    """A sampler with settings of every sort, for schemas and settings errors."""

    class Config(BaseModel):
        rate: Annotated[float, Field(ge=0, le=1)] = 0.5
        """Share of executions to sample."""
        label: str = Field("tuned", description="What decisions are labelled with.")
        token: SecretStr | None = None

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False, sampler_type=self.name)


class Raises(loopai.ValidatorPlugin):
    def __init__(self, config=None):
        raise RuntimeError("this validator cannot be built")

    def validate(self, execution, context):
        raise AssertionError("never called")
'''


@dataclass
class Ran:
    """What one ``loopai`` command did."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@dataclass
class Project:
    """The test's working folder and what the command runs with."""

    root: Path
    env: dict[str, str]
    modules: Path

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def records(self, name: str = "records.jsonl", tasks: tuple[str, ...] = (TASK_A,), each: int = 3) -> Path:
        """JSON Lines of execution records: ``each`` per task, outputs "ok"."""
        lines = []
        for task in tasks:
            for _ in range(each):
                record = {
                    "id": str(uuid.uuid4()),
                    "program_id": "00000000-0000-4000-8000-000000000001",
                    "task_id": task,
                    "input": {},
                    "output": "ok",
                    "latency_ms": 5.0,
                    "status": "success",
                    "executed_at": "2025-03-14T09:00:00Z",
                }
                lines.append(json.dumps(record))
        path = self.root / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".git").mkdir()  # a repository root: the configuration search stops here
    home = tmp_path / "home"
    home.mkdir()
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "loopai_cli_plugins.py").write_text(PLUGINS, encoding="utf-8")
    for name in list(os.environ):
        if name.startswith(("LOOPAI_", "XDG_")):
            monkeypatch.delenv(name)
    settings = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "LOOPAI_CACHE_DIR": str(tmp_path / "cache"),
        "NO_COLOR": "1",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.chdir(root)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(modules), os.environ.get("PYTHONPATH", "")])}
    return Project(root, env, modules)


@pytest.fixture
def cli(project: Project, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """``loopai ARGS`` in-process; a usage error's exit status as the command's."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@pytest.fixture
def proc(project: Project) -> Callable[..., Ran]:
    """``python -m loopai ARGS`` as a process in the project folder (``env=``, ``stdin=``, ``input=`` as for
    :func:`subprocess.run`)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, **options: Any) -> Ran:
        done = subprocess.run(
            [sys.executable, "-m", "loopai", *args],
            cwd=cwd or project.root,
            env={**project.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            **options,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def installed(project: Project, tmp_path: Path) -> Callable[..., None]:
    """``installed("loopai-x", "validators", "x", code)``: a distribution declaring plugin ``x`` (its package's
    ``Plugin`` attribute), laid out as pip would in a folder on the commands' ``PYTHONPATH``."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    project.env["PYTHONPATH"] = os.pathsep.join([str(site), project.env["PYTHONPATH"]])

    def install(distribution: str, group: str, plugin: str, code: str) -> None:
        module = distribution.replace("-", "_") + "_" + uuid.uuid4().hex[:6]
        (site / module).mkdir()
        (site / module / "__init__.py").write_text(textwrap.dedent(code), encoding="utf-8")
        info = site / f"{distribution.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[loopai.{group}]\n{plugin} = {module}:Plugin\n", encoding="utf-8")
        (info / "RECORD").write_text("", encoding="utf-8")

    return install


@pytest.fixture
def kit() -> Iterator[Any]:
    import types

    yield types.SimpleNamespace(TASK_A=TASK_A, TASK_B=TASK_B)
