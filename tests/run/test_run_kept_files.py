"""``loopai run -o FILE`` never writes its results over a file the run reads or keeps: the input, the
``--tasks`` file, the configuration file (named, found by the search or by ``LOOPAI_CONFIG``) or the
outbox. Refused with exit 2 before anything is written, naming both roles.

Each test runs ``loopai run`` as a process: marked ``processes``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes


def _run(kit, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    process = kit.loopai_process(
        list(args),
        cwd=tmp_path,
        env=kit.subprocess_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def source(tmp_path: Path, kit) -> Path:
    return kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(3)])


def test_an_output_that_is_the_tasks_file_is_refused(tmp_path: Path, kit, source: Path) -> None:
    tasks = tmp_path / "mytasks.toml"
    tasks.write_text(kit.tasks_toml(**{kit.TASK_A: {"sampling_rate": 0.5}}), encoding="utf-8")
    before = tasks.read_bytes()

    result = _run(kit, tmp_path, str(source), "--tasks", "mytasks.toml", "-o", "mytasks.toml")

    assert result.returncode == 2, result.stderr
    assert "--output mytasks.toml is the tasks file (--tasks) mytasks.toml" in result.stderr
    assert tasks.read_bytes() == before
    assert not (tmp_path / "outbox.sqlite3").exists()  # nothing was opened


def test_an_output_that_links_to_the_tasks_file_is_refused(tmp_path: Path, kit, source: Path) -> None:
    tasks = tmp_path / "mytasks.toml"
    tasks.write_text(kit.tasks_toml(**{kit.TASK_A: {"sampling_rate": 0.5}}), encoding="utf-8")
    (tmp_path / "link.toml").symlink_to(tasks)
    before = tasks.read_bytes()

    result = _run(kit, tmp_path, str(source), "--tasks", "mytasks.toml", "-o", "link.toml")

    assert result.returncode == 2
    assert "is the tasks file (--tasks)" in result.stderr
    assert tasks.read_bytes() == before


@pytest.mark.parametrize("how", ["named", "found", "LOOPAI_CONFIG"])
def test_an_output_that_is_the_configuration_file_is_refused(tmp_path: Path, kit, source: Path, how: str) -> None:
    config = tmp_path / "loopai.toml"
    config.write_text("[delivery]\ndrain_timeout = 1\n", encoding="utf-8")
    before = config.read_bytes()
    flags = ["--config", "loopai.toml"] if how == "named" else []
    env = {"LOOPAI_CONFIG": str(config)} if how == "LOOPAI_CONFIG" else {}

    result = _run(kit, tmp_path, str(source), *flags, "-o", "loopai.toml", **env)

    assert result.returncode == 2, result.stderr
    assert f"--output loopai.toml is the configuration file {config}" in result.stderr
    assert config.read_bytes() == before


def test_an_output_that_is_the_outbox_is_refused(tmp_path: Path, kit, source: Path) -> None:
    same = tmp_path / "same.jsonl"

    result = _run(kit, tmp_path, str(source), "-o", "same.jsonl", LOOPAI_OUTBOX=str(same))

    assert result.returncode == 2, result.stderr
    assert f"--output same.jsonl is the outbox {same}" in result.stderr
    assert not same.exists()  # neither results nor a database


def test_an_output_that_is_an_existing_outbox_is_refused(tmp_path: Path, kit, source: Path) -> None:
    outbox = tmp_path / "outbox.sqlite3"  # the tests' LOOPAI_OUTBOX
    assert _run(kit, tmp_path, str(source), "-o", "first.jsonl").returncode == 0
    before = outbox.read_bytes()

    result = _run(kit, tmp_path, str(source), "-o", os.path.relpath(outbox, tmp_path))

    assert result.returncode == 2
    assert "is the outbox" in result.stderr
    assert outbox.read_bytes() == before


def test_other_outputs_still_run(tmp_path: Path, kit, source: Path) -> None:
    tasks = tmp_path / "mytasks.toml"
    tasks.write_text(kit.tasks_toml(**{kit.TASK_A: {"sampling_rate": 0.5}}), encoding="utf-8")
    (tmp_path / "loopai.toml").write_text("", encoding="utf-8")

    result = _run(kit, tmp_path, str(source), "--tasks", "mytasks.toml", "-o", "out.jsonl")

    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 3
