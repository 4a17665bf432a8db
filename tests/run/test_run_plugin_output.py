"""What plugins print never reaches ``loopai run``'s stdout: stdout carries only the result lines
(or the ``--json`` summary, with ``--output``), and what a plugin prints (at import, when built,
in ``startup``, in its hooks, in ``shutdown``) goes to stderr: inline or isolated in worker
processes (``isolation = "process"``), in one process or on ``--workers 2``.

Each test runs ``loopai run`` as a process (and most start worker processes): marked ``processes``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.processes

NOISY = '''
import sys
import loopai

print("noisy: imported")


class Noisy(loopai.ValidatorPlugin):
    """Prints at every step of its life; valid."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        print("noisy: built")

    def startup(self, host):
        print("noisy: started")

    def validate(self, execution, context):
        print("noisy: validated", execution.id)
        sys.stdout.write("noisy: written without a newline ")
        return loopai.ValidationResult(is_valid=True, validator_type="noisy")

    def shutdown(self):
        print("noisy: stopped")
'''

RECORDS = 6


def _run(tmp_path: Path, kit: Any, isolation: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``loopai run`` of :data:`RECORDS` records of two tasks through the printing validator."""
    kit.validator_module(tmp_path, NOISY, "noisy", "Noisy", isolation=isolation)
    records = [kit.make_record(kit.TASK_A if n % 2 else kit.TASK_B) for n in range(RECORDS)]
    source = kit.write_lines(tmp_path / "in.jsonl", records)
    return kit.run_process(tmp_path, str(source), "--no-autoload", *flags)


def _printed_on_stderr(stderr: str) -> None:
    """Every step printed, on stderr (those of an isolated plugin in its worker process)."""
    for step in ("imported", "built", "started", "stopped"):
        assert f"noisy: {step}" in stderr, stderr
    assert stderr.count("noisy: validated") == RECORDS, stderr
    assert "noisy: written without a newline" in stderr


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_what_a_plugin_prints_goes_to_stderr_and_the_results_to_stdout(
    tmp_path: Path, kit: Any, isolation: str, workers: str
) -> None:
    done = _run(tmp_path, kit, isolation, "--workers", workers)

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # every line is a result
    assert [line["line"] for line in lines] == list(range(1, RECORDS + 1))
    assert all(line["validation"]["is_valid"] for line in lines)
    assert "noisy:" not in done.stdout
    _printed_on_stderr(done.stderr)


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_the_json_summary_on_stdout_is_not_corrupted_by_what_plugins_print(
    tmp_path: Path, kit: Any, isolation: str, workers: str
) -> None:
    done = _run(tmp_path, kit, isolation, "--workers", workers, "-o", "out.jsonl", "--json")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # the whole of stdout is the summary
    assert summary["lines"] == RECORDS and summary["records"] == RECORDS
    results = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert len([json.loads(line) for line in results.splitlines()]) == RECORDS
    assert "noisy:" not in results
    _printed_on_stderr(done.stderr)


def test_output_dash_is_stdout_and_carries_only_results(tmp_path: Path, kit: Any) -> None:
    done = _run(tmp_path, kit, "inline", "-o", "-")

    assert done.returncode == 0, done.stderr
    assert len([json.loads(line) for line in done.stdout.splitlines()]) == RECORDS
    _printed_on_stderr(done.stderr)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path: Path, kit: Any, workers: str) -> None:
    """``loopai run ... | head -1`` with a printing plugin: no traceback, no complaint about the pipe."""
    kit.validator_module(tmp_path, NOISY, "noisy", "Noisy", isolation="inline")
    many = [kit.make_record() for _ in range(3000)]
    source = kit.write_lines(tmp_path / "in.jsonl", many)
    command = [sys.executable, "-m", "loopai", "run", str(source), "--no-autoload", "--workers", workers]
    with subprocess.Popen(
        command, cwd=tmp_path, env=kit.subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # as head does once it has its line
        stderr = process.stderr.read().decode()
        process.wait(timeout=120)

    assert json.loads(first)["line"] == 1
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "Broken pipe" not in stderr
