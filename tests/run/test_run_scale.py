"""``loopai run`` at scale: async plugins overlap and keep order, memory does not grow, Ctrl-C stops cleanly."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sqlite3
import subprocess
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai.config import TaskSettings
from loopai.run import Input, Runner, RunOptions


def test_async_plugins_overlap_and_the_output_keeps_input_order(tmp_path: Path, kit, loopai, config) -> None:
    config(validators={"slow": "SlowAsync"}, samplers={"never": "Never"})
    records = [kit.make_record() for _ in range(20)]
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    result = loopai(str(source), "--no-autoload", "--concurrency", "10", "--json", "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["seconds"] < 0.5, summary  # one after the other: 20 x 0.05 s = 1 s
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["execution_id"] for line in written] == [r["id"] for r in records]
    assert all(line["validation"]["results"][0]["validator_type"] == "slow-async" for line in written)


def test_sync_plugins_on_the_async_path(tmp_path: Path, kit, loopai, config) -> None:
    config(validators={"ok": "OutputIsOk"}, samplers={"never": "Never"})
    records = [kit.make_record(output="ok" if i % 3 else "no") for i in range(30)]
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    serial = loopai(str(source), "--no-autoload")
    overlapped = loopai(str(source), "--no-autoload", "--concurrency", "7")

    assert serial.lines == overlapped.lines


class _Valid(loopai.ValidatorPlugin):
    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=execution.output == "ok", validator_type="valid")


class _Half(loopai.SamplerPlugin):
    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(should_sample=execution.id.int % 2 == 0, reason="half", sampler_type="half")


def _generate(path: Path, count: int, tasks: list[str]) -> Path:
    template = (
        '{{"id": "{id}", "program_id": "00000000-0000-4000-8000-000000000001", "task_id": "{task}", '
        '"input": {{"text": "record {n}"}}, "output": "{output}", "latency_ms": {ms}, "status": "success"}}\n'
    )
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            out.write(
                template.format(
                    id=uuid.uuid4(), task=tasks[n % len(tasks)], n=n, output="ok" if n % 7 else "no", ms=10 + n % 90
                )
            )
    return path


def _peak(tmp_path: Path, count: int, concurrency: int) -> int:
    tasks = [str(uuid.uuid4()) for _ in range(3)]
    settings = {uuid.UUID(t): TaskSettings(accuracy_threshold=0.9, latency_threshold_ms=95) for t in tasks}
    source = Input(str(_generate(tmp_path / f"in-{count}.jsonl", count, tasks)))
    host = loopai.Host(plugins=[_Valid(), _Half()], outbox=False)
    with open(tmp_path / f"out-{count}.jsonl", "w", encoding="utf-8") as output, host:
        runner = Runner(host, settings, output, RunOptions(concurrency=concurrency))
        tracemalloc.start()
        try:
            summary = runner.run(source)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            source.close()
    assert summary.records == count
    return peak


@pytest.mark.parametrize("concurrency", [1, 16])
def test_memory_does_not_grow_with_the_input(tmp_path: Path, concurrency: int) -> None:
    small = _peak(tmp_path, 2_000, concurrency)
    large = _peak(tmp_path, 20_000, concurrency)

    assert large < small * 1.5 + 64_000, (small, large)


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_ctrl_c_stops_cleanly(tmp_path: Path, kit, config, events, concurrency: str) -> None:
    config(validators={"slow": "SlowSync"}, samplers={"never": "Never"}, handlers={"rec": "Recorder"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(1000)])
    output = tmp_path / "out.jsonl"
    with _running(
        kit, tmp_path, str(source), "--no-autoload", "--concurrency", concurrency, "-o", str(output)
    ) as process:
        _wait_until(lambda: len(events()) >= 20 or process.poll() is not None)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    assert "INTERRUPTED" in stderr
    text = output.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]  # every line whole
    assert 10 <= len(lines) < 1000
    assert [line["line"] for line in lines] == list(range(1, len(lines) + 1))
    with contextlib.closing(sqlite3.connect(tmp_path / "outbox.sqlite3")) as db:
        stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert stored == 2 * len(lines) == len(events())  # what was emitted is kept, and delivered


@pytest.mark.parametrize("isolation", ["inline", pytest.param("process", marks=pytest.mark.processes)])
def test_ctrl_c_says_what_it_waits_for_and_a_second_one_stops_now(
    tmp_path: Path, kit, config, plugins: str, isolation: str
) -> None:
    config(extra=f'[plugins.validators.stuck]\nfactory = "{plugins}:Stuck"\nisolation = "{isolation}"\n')
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(3)])
    with _running(kit, tmp_path, str(source), "--no-autoload", "-o", str(tmp_path / "out.jsonl")) as process:
        _wait_until((tmp_path / "stuck.started").exists)  # the run is inside the plugin
        process.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(1)  # the record in flight is waited for
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert "stopping once the records in flight are done (Ctrl-C again stops now)" in stderr
    last = stderr.rstrip().splitlines()[-1]  # which plugin held the run up, and what to do about it
    assert last.startswith("interrupted while validator 'stuck' was running; if it hangs, give it a timeout")


@contextlib.contextmanager
def _running(kit: Any, tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``loopai run ARGS`` as a process with its output piped; killed at the end if still running."""
    process = kit.loopai_process(
        list(args), cwd=tmp_path, env=kit.subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_progress_line_on_a_terminal(tmp_path: Path, kit) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    source = Input(str(kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(3)])))
    terminal = Terminal()
    with loopai.Host(plugins=[_Valid()], outbox=False) as host:
        Runner(host, {}, io.StringIO(), RunOptions(progress=terminal)).run(source)
    source.close()

    drawn = terminal.getvalue()
    assert drawn.startswith("\r[") and "100.0%" not in drawn[:5]
    assert drawn.endswith("\r\x1b[K")  # erased at the end


@pytest.mark.processes
def test_with_slow_plugins_results_are_written_as_records_finish(tmp_path: Path, kit, config) -> None:
    config(validators={"pauses": "Pauses"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output="pause") for _ in range(8)])
    output = tmp_path / "out.jsonl"
    env = kit.subprocess_env(tmp_path, LOOPAI_TEST_PAUSE="0.4")
    process = kit.loopai_process(
        [str(source), "--no-autoload", "-o", str(output)], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    try:
        _wait_until(lambda: (output.exists() and output.stat().st_size > 0) or process.poll() is not None)
        running = process.poll() is None
        written = output.read_text(encoding="utf-8")
    finally:
        process.communicate(timeout=60)

    assert running, "the run ended before any result was written"
    # The first results are there well before the run ends (it takes 8 x 0.4 s): whole lines, in order.
    assert written.endswith("\n") and 1 <= len(written.splitlines()) < 8
    assert [json.loads(line)["line"] for line in written.splitlines()] == list(range(1, len(written.splitlines()) + 1))
    assert process.returncode == 0
    assert len(output.read_text(encoding="utf-8").splitlines()) == 8
