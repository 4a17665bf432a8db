"""What ``loopai run`` tells at its end, that must hold wherever it is read: the ``loopai events
deliver`` command names the configuration file however it was found (so it works from any folder),
``--workers`` above the CPUs is warned about, and a run the outbox stopped says up to which line the
output has results."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest


def _loopai(tmp_path: Path, kit, *args: str, cwd: Path | None = None, **options) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopai", *args],
        cwd=cwd or tmp_path,
        env=kit.subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


@pytest.mark.processes  # a run, then the command it printed run from another folder
def test_the_deliver_command_names_a_configuration_found_by_the_search(tmp_path: Path, kit, config, events) -> None:
    found = config(handlers={"rec": "SlowRecorder"}, extra="[delivery]\ndrain_timeout = 0\n")  # ./loopai.toml
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(2)])

    run = _loopai(tmp_path, kit, "run", str(source), "--no-autoload", "-o", "out.jsonl", "--json")

    assert run.returncode == 0, run.stderr
    command = json.loads(run.stdout)["deliver_command"]
    assert f"--config {found}" in command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    delivered = _loopai(tmp_path, kit, *shlex.split(command)[1:], cwd=elsewhere)
    assert delivered.returncode == 0, delivered.stderr  # nothing left pending
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(events()) == sum(len(json.loads(line)["events"]) for line in lines)


@pytest.mark.processes
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_more_workers_than_cpus_is_warned_about_once(tmp_path: Path, kit) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(3)])
    one_cpu = sorted(os.sched_getaffinity(0))[:1]

    run = _loopai(
        tmp_path,
        kit,
        "run",
        str(source),
        "--workers",
        "2",
        "-o",
        "out.jsonl",
        preexec_fn=lambda: os.sched_setaffinity(0, one_cpu),
    )
    auto = _loopai(
        tmp_path,
        kit,
        "run",
        str(source),
        "--workers",
        "auto",
        "-o",
        "out.jsonl",
        preexec_fn=lambda: os.sched_setaffinity(0, one_cpu),
    )

    assert run.returncode == 0, run.stderr
    assert run.stderr.count("warning: --workers 2: more than the 1 CPU(s) this process may use") == 1
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 3  # it went on
    assert auto.returncode == 0 and "more than the" not in auto.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_run_the_outbox_stops_says_how_far_the_output_goes(tmp_path: Path, kit, config) -> None:
    import resource

    config(handlers={"rec": "SlowRecorder"}, extra="[delivery]\ndrain_timeout = 0\n")  # the outbox grows
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(input={"text": "x" * 2000}) for _ in range(4000)])
    limit = 2_000_000  # the outbox reaches it first: its events are larger than the result lines

    run = _loopai(
        tmp_path,
        kit,
        "run",
        str(source),
        "--no-autoload",
        "-o",
        "out.jsonl",
        "--json",
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )

    assert run.returncode == 2, run.stderr
    summary = json.loads(run.stdout)
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert 0 < len(written) < summary["lines"]
    last = json.loads(written[-1])["line"]
    assert f"out.jsonl has the results of the input's lines 1-{last:,}" in summary["stopped_by"]
    assert f"run the rest again from line {last + 1:,}" in summary["stopped_by"]
