"""How ``loopai run`` ends: the wait for deliveries is said and a Ctrl-C ends it with the summary
still printed; ``--fail-fast`` is a stop, not an interruption, with one process or several."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

WAITING = (
    "loopai run: waiting up to 30 s for the deliveries still due "
    "(Ctrl-C stops waiting; what is left stays in the outbox)"
)


def _ctrl_c_once_waiting(tmp_path: Path, kit, config, *flags: str) -> tuple[int, str, str, float]:
    """``loopai run`` whose wait for deliveries at the end lasts (a second a delivery, drain_timeout
    30 s), and a terminal's Ctrl-C (every process of the run) once it says it waits: exit status,
    stdout, stderr, and the seconds from the Ctrl-C to the end."""
    config(handlers={"rec": "SlowRecorder"}, extra="[delivery]\ndrain_timeout = 30\n")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(4)])
    process = kit.loopai_process(
        [str(source), "--no-autoload", "-o", "out.jsonl", *flags],
        cwd=tmp_path,
        env=kit.subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        said = [process.stderr.readline()]
        while said[-1] and WAITING not in said[-1]:
            said.append(process.stderr.readline())
        assert WAITING in said[-1], said
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        return process.returncode, stdout, stderr, time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_ctrl_c_while_the_run_waits_for_deliveries_ends_the_wait_and_prints_the_summary(
    tmp_path: Path, kit, config, events, workers: str
) -> None:
    code, stdout, stderr, took = _ctrl_c_once_waiting(tmp_path, kit, config, "--workers", workers, "--json")

    assert code == 130, stderr
    assert took < 3  # not the seconds the deliveries left would have taken
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert (summary["interrupted"], summary["stopped_waiting"]) == (False, True)  # every line was read
    assert summary["records"] == 4
    emitted = sum(len(json.loads(line)["events"]) for line in (tmp_path / "out.jsonl").read_text().splitlines())
    (row,) = summary["deliveries"]
    assert row["delivered"] == len(events()) < emitted
    assert row["pending"] == emitted - row["delivered"]  # nothing lost: what was not delivered stays pending
    assert summary["deliver_command"].startswith("loopai events deliver")


def test_the_summary_says_a_ctrl_c_ended_the_wait(tmp_path: Path, kit, config) -> None:
    code, _, stderr, _ = _ctrl_c_once_waiting(tmp_path, kit, config)

    assert code == 130
    assert "Ctrl-C ended the wait for deliveries: they stay pending in the outbox" in stderr
    assert "deliveries are still pending: deliver with  loopai events deliver" in stderr


def test_a_quick_end_says_nothing_of_waiting(tmp_path: Path, kit, config, loopai) -> None:
    config(handlers={"rec": "Recorder"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(4)])

    result = loopai(str(source), "--no-autoload", "-o", "out.jsonl")

    assert result.code == 0
    assert "waiting up to" not in result.stderr


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_fail_fast_is_a_stop_not_an_interruption(tmp_path: Path, kit, config, loopai, workers: str) -> None:
    config(validators={"ok": "OutputIsOk"})
    lines = [kit.make_record(output="ok") for _ in range(5)] + ["{bad"] + [kit.make_record(output="ok")] * 50
    source = kit.write_lines(tmp_path / "in.jsonl", lines)

    result = loopai(str(source), "--no-autoload", "--workers", workers, "--fail-fast", "-o", "out.jsonl")

    assert result.code == 1
    assert "stopped early: --fail-fast: line 6 is malformed" in result.stderr
    assert "INTERRUPTED" not in result.stderr


def test_fail_fast_leaves_out_the_lines_after_the_malformed_one(tmp_path: Path, kit, config, loopai) -> None:
    """Not processed, not counted, nothing said of them (here: an unknown key), though the engine
    read them ahead of the records."""
    config(validators={"ok": "OutputIsOk"})
    after = kit.make_record(output="ok")
    after["colour"] = "blue"
    lines = [kit.make_record(output="ok"), "{bad", after, kit.make_record(output="ok")]
    source = kit.write_lines(tmp_path / "in.jsonl", lines)

    result = loopai(str(source), "--no-autoload", "--fail-fast", "-o", "out.jsonl")

    assert result.code == 1
    assert "loopai run: 2 line(s), 1 record(s), 1 malformed" in result.stderr
    assert "colour" not in result.stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["line"] for line in written] == [1, 2]
