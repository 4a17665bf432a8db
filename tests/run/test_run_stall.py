"""``loopai run`` names the plugin call that holds it up, and says what to do, instead of going silent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("workers", "concurrency"), [("1", "1"), pytest.param("2", "1", marks=pytest.mark.processes), ("1", "4")]
)
def test_a_plugin_call_that_holds_the_run_up_is_named_with_its_line(
    tmp_path: Path, kit, config, loopai, workers: str, concurrency: str
) -> None:
    config(validators={"pauses": "Pauses"}, extra="[dispatch]\nstall_notice = 0.2\n")
    outputs = ["ok", "ok", "pause", "ok"]
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output=output) for output in outputs])

    result = loopai(str(source), "--no-autoload", "--workers", workers, "--concurrency", concurrency, "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    where = "line 3" if concurrency == "1" else "a record"  # records in flight at once: which one is not known
    said = [line for line in result.stderr.splitlines() if "validator 'pauses'" in line]
    first = rf"loopai run: {where} has waited 0\.[2-9] s for validator 'pauses'; if it hangs, give it a timeout \("
    assert re.match(first, said[0]), said
    assert said[0].endswith("; Ctrl-C stops the run")
    assert len(said) >= 3 and all(line.startswith(f"loopai run: {where} still waits for") for line in said[1:])
    assert len(said) <= 5  # again each time the wait doubles: 0.2, 0.4, 0.8 s...
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["line"] for line in written] == [1, 2, 3, 4]


def test_a_plugin_slow_on_every_call_is_named_once(
    tmp_path: Path, kit, config, loopai, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPAI_TEST_PAUSE", "0.3")  # each call: past the notice, short of twice it
    config(validators={"pauses": "Pauses"}, extra="[dispatch]\nstall_notice = 0.2\n")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output="pause") for _ in range(4)])

    result = loopai(str(source), "--no-autoload", "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "validator 'pauses'" in line]
    assert len(said) == 1, said


@pytest.mark.processes  # the plugin in a worker process of its own
def test_a_plugin_with_a_timeout_is_named_with_it(
    tmp_path: Path, kit, config, loopai, plugins: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "modules"))  # for its worker process
    # Isolated in a process of its own, the plugin is named as inline ones are (an inline plugin
    # with a timeout is waited for in the host's thread, which ends it at its timeout: not named).
    isolated = f'[plugins.validators.pauses]\nfactory = "{plugins}:Pauses"\nisolation = "process"\ntimeout = 30\n'
    config(extra=f"[dispatch]\nstall_notice = 0.2\n\n{isolated}")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output="pause")])

    result = loopai(str(source), "--no-autoload", "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "validator 'pauses'" in line]
    assert "; its timeout ends the call after 30 s; Ctrl-C stops the run" in said[0], said


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_a_startup_hook_that_holds_the_run_up_is_named(tmp_path: Path, kit, config, loopai, workers: str) -> None:
    config(validators={"slow-start": "SlowStart"}, extra="[dispatch]\nstall_notice = 0.2\n")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output="ok")])

    result = loopai(str(source), "--no-autoload", "--workers", workers, "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "validator 'slow-start'" in line]
    first = r"loopai run: validator 'slow-start' has taken 0\.[2-9] s to start \(its startup hook\); if it hangs, give"
    assert re.match(first, said[0]), said
    assert said[1].startswith("loopai run: validator 'slow-start' is still starting ("), said


def test_quiet_runs_and_stall_notice_0_say_nothing(tmp_path: Path, kit, config, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output="pause")])
    config(validators={"pauses": "Pauses"}, extra="[dispatch]\nstall_notice = 0\n")
    assert "validator 'pauses'" not in loopai(str(source), "--no-autoload", "-o", "out.jsonl").stderr
    config(validators={"pauses": "Pauses"}, extra="[dispatch]\nstall_notice = 0.2\n")
    assert "validator 'pauses'" not in loopai(str(source), "--no-autoload", "-o", "out.jsonl", "-q").stderr
