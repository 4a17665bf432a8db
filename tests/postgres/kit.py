"""Helpers for the PostgreSQL state tests (the ``pg`` fixture): records, ``loopai`` as real processes.

Loaded by ``conftest.py`` (tests import no module of tests/). The server and a fresh database per
test come from ``tests/conftest.py`` (``postgres_url``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

TASK = "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"
PROGRAM = "00000000-0000-4000-8000-000000000001"
START = datetime(2025, 3, 14, 9, 0, tzinfo=timezone.utc)
OUTPUT_SCHEMA = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["positive", "negative"]}}}


def record(n: int, *, valid: bool = True, at: datetime = START, latency_ms: float = 10.0) -> dict[str, Any]:
    """Execution record number ``n`` of TASK, executed at ``at``; an invalid one breaks the output schema."""
    return {
        "id": str(uuid.UUID(int=n, version=4)),
        "program_id": PROGRAM,
        "task_id": TASK,
        "input": {"n": n},
        "output": {"label": "positive" if valid else "unknown"},
        "latency_ms": latency_ms,
        "status": "success",
        "executed_at": at.isoformat().replace("+00:00", "Z"),
    }


def lines(records: Iterable[Mapping[str, Any]]) -> str:
    """JSON Lines of ``records``."""
    return "".join(json.dumps(r) + "\n" for r in records)


@dataclass
class Loopai:
    """The ``loopai`` command as real processes, in ``workdir`` with its loopai.toml and tasks.json."""

    workdir: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "loopai", *args]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``loopai ARGS`` to the end."""
        return subprocess.run(
            self.command(*args), input=stdin, capture_output=True, text=True, env=self.env, cwd=self.workdir,
            timeout=timeout, check=False,
        )  # fmt: skip

    def start(self, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
        """Start ``loopai ARGS`` (stdout and stderr piped)."""
        return subprocess.Popen(
            self.command(*args), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=self.env, cwd=self.workdir,
        )  # fmt: skip

    def run_many(self, count: int, *args: str) -> list[tuple[int, list[dict[str, Any]], str]]:
        """``count`` processes of ``loopai run ARGS`` at once: each one's exit status, result lines, stderr."""
        started = [self.start("run", *args) for _ in range(count)]
        finished = []
        for process in started:
            out, err = process.communicate(timeout=180)
            finished.append((process.returncode, [json.loads(line) for line in out.splitlines()], err))
        return finished

    def configure(self, *, interval: str = "1s", window: int = 20, accuracy_threshold: float | None = None) -> None:
        """A loopai.toml (the time-based sampler's interval) and tasks.json (TASK's schema and thresholds)."""
        (self.workdir / "loopai.toml").write_text(
            f'[plugins.samplers.time-based-sampler]\nconfiguration = {{ interval = "{interval}" }}\n', encoding="utf-8"
        )
        task: dict[str, Any] = {"output_schema": OUTPUT_SCHEMA, "window": window}
        if accuracy_threshold is not None:
            task["accuracy_threshold"] = accuracy_threshold
        (self.workdir / "tasks.json").write_text(json.dumps({TASK: task}), encoding="utf-8")


RUN = ("--plugins", "json-schema-validator,time-based-sampler", "--tasks", "tasks.json")
"""`loopai run` arguments shared by the tests: the validator and the time-based sampler only."""


def sampled(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The result lines whose record was sampled."""
    return [r for r in results if (r["sampling"] or {}).get("should_sample")]


def breaches(results: Sequence[dict[str, Any]]) -> int:
    """How many accuracy.threshold.breached events the result lines list."""
    return sum(r["events"].count("accuracy.threshold.breached") for r in results)


def spaced(count: int, step: timedelta, *, valid: bool = True, first: int = 0) -> list[dict[str, Any]]:
    """``count`` records ``step`` apart from START."""
    return [record(first + n, valid=valid, at=START + n * step) for n in range(count)]
