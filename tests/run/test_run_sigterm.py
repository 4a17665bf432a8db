"""SIGTERM (``timeout``, systemd, Kubernetes, a scheduler) ends ``loopai run`` as a Ctrl-C does: reading
stops, the records in flight finish, the summary is printed with the command that finishes the
deliveries, and the exit status is 143; a second SIGTERM stops at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def _running(kit: Any, tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``loopai run ARGS`` as a process (a session of its own) with its output piped; killed at the end."""
    process = kit.loopai_process(
        list(args),
        cwd=tmp_path,
        env=kit.subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def _wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_sigterm_stops_cleanly_with_the_summary_and_exit_143(tmp_path: Path, kit, config, events, workers: str) -> None:
    config(validators={"slow": "SlowSync"}, samplers={"never": "Never"}, handlers={"rec": "Recorder"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(2000)])
    output = tmp_path / "out.jsonl"
    with _running(kit, tmp_path, str(source), "--no-autoload", "--workers", workers, "-o", str(output)) as process:
        _wait_until(lambda: len(events()) >= 20 or process.poll() is not None)
        process.send_signal(signal.SIGTERM)  # to the parent only, as Kubernetes and `kill PID` do
        _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stderr
    assert "INTERRUPTED: reading stopped, the records read were finished" in stderr
    assert "Traceback" not in stderr
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert 10 <= len(lines) < 2000
    assert [line["line"] for line in lines] == list(range(1, len(lines) + 1))
    assert all(line["error"] is None for line in lines)  # every line read was finished


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_sigterm_to_the_process_and_its_group_at_once_is_one_stop(
    tmp_path: Path, kit, config, events, workers: str
) -> None:
    """``timeout`` signals the command, then its process group (the workers with it): one stop, not a
    second one, and no worker killed under the run."""
    config(validators={"slow": "SlowSync"}, samplers={"never": "Never"}, handlers={"rec": "Recorder"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(2000)])
    output = tmp_path / "out.jsonl"
    with _running(kit, tmp_path, str(source), "--no-autoload", "--workers", workers, "-o", str(output)) as process:
        _wait_until(lambda: len(events()) >= 20 or process.poll() is not None)
        process.send_signal(signal.SIGTERM)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stderr
    assert "INTERRUPTED" in stderr  # the summary: not stopped at once
    assert "killed by" not in stderr and "no result" not in stderr
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert lines and all(line["error"] is None for line in lines)  # every line read was finished


def test_a_stop_finishes_the_record_in_flight_and_no_line_after_it(tmp_path: Path, kit, config) -> None:
    """The engine reads a file's lines ahead of their records: a stop leaves those out, and the
    summary counts only the lines that got a result."""
    config(validators={"third": "SlowOnTheThird"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(200)])
    with _running(kit, tmp_path, str(source), "--no-autoload", "-o", "out.jsonl") as process:
        _wait_until((tmp_path / "third.started").exists)  # the third record is in flight
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["line"] for line in written] == [1, 2, 3]
    assert "loopai run: 3 line(s), 3 record(s), 0 malformed" in stderr


def test_a_second_sigterm_stops_now(tmp_path: Path, kit, config, plugins: str) -> None:
    config(extra=f'[plugins.validators.stuck]\nfactory = "{plugins}:Stuck"\n')
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(3)])
    with _running(kit, tmp_path, str(source), "--no-autoload", "-o", "out.jsonl") as process:
        _wait_until((tmp_path / "stuck.started").exists)  # the run is inside the plugin
        process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(1.5)  # the record in flight is waited for
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 143
    assert "stopping once the records in flight are done" in stderr
    last = stderr.rstrip().splitlines()[-1]
    assert last.startswith("interrupted by SIGTERM while validator 'stuck' was running"), last


def test_sigterm_while_waiting_for_deliveries_ends_the_wait_with_the_deliver_command(
    tmp_path: Path, kit, config
) -> None:
    config(handlers={"rec": "SlowRecorder"}, extra="[delivery]\ndrain_timeout = 30\n")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(4)])
    with _running(kit, tmp_path, str(source), "--no-autoload", "-o", "out.jsonl") as process:
        assert process.stderr is not None
        said = [process.stderr.readline()]
        while said[-1] and "waiting up to 30 s" not in said[-1]:
            said.append(process.stderr.readline())
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 143, stderr
    assert "deliveries are still pending: deliver with  loopai events deliver" in stderr


def test_help_names_exit_status_143() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopai", "run", "--help"], capture_output=True, text=True, check=True
    )

    assert "143 stopped by SIGTERM" in result.stdout
