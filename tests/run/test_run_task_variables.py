"""``LOOPAI_TASKS__<ID>__<KEY>`` variables apply over a ``--tasks`` file as over the configuration's
``[tasks]`` (the precedence README states: flags, then variables, then files); the file still
replaces the configuration's ``[tasks]``.

Each test runs ``loopai run`` as a process: marked ``processes`` (tests/cli/test_config_sources.py reads
``LOOPAI_TASKS__`` variables on every Python)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes


def test_task_variables_apply_over_a_tasks_file(tmp_path: Path, kit) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        kit.tasks_toml(**{kit.TASK_A: {"name": "from-file", "output_schema": kit.OUTPUT_SCHEMA}}), encoding="utf-8"
    )
    (tmp_path / "loopai.toml").write_text(
        f'[tasks."{kit.TASK_B}"]\nname = "from-config"\n', encoding="utf-8"
    )  # replaced by --tasks, as documented
    source = kit.write_lines(
        tmp_path / "in.jsonl",
        [kit.make_record(output={"label": "neutral"}), kit.make_record(kit.TASK_B), kit.make_record(kit.TASK_B)],
    )
    variable = "LOOPAI_TASKS__" + kit.TASK_A.upper().replace("-", "_")
    env = kit.subprocess_env(tmp_path, **{f"{variable}__NAME": "from-env", f"{variable}__SAMPLING_RATE": "1.0"})

    process = subprocess.run(
        _command(source, tasks),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert process.returncode == 0, process.stderr
    names = {task["name"] for task in json.loads(process.stdout)["tasks"]}
    assert "from-env" in names  # the variable, over the file
    assert "from-file" not in names and "from-config" not in names
    first = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["validation"]["is_valid"] is False  # the file's output_schema still applies


def test_a_task_variable_for_a_task_the_file_does_not_name_adds_it(tmp_path: Path, kit) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(kit.tasks_toml(**{kit.TASK_A: {"name": "a"}}), encoding="utf-8")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(), kit.make_record(kit.TASK_B)])
    variable = "LOOPAI_TASKS__" + kit.TASK_B.replace("-", "_") + "__NAME"

    process = subprocess.run(
        _command(source, tasks),
        cwd=tmp_path,
        env=kit.subprocess_env(tmp_path, **{variable: "b"}),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert process.returncode == 0, process.stderr
    assert {task["name"] for task in json.loads(process.stdout)["tasks"]} == {"a", "b"}


def _command(source: Path, tasks: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "loopai", "run", str(source), "--tasks", str(tasks), "-o", "out.jsonl", "--json"]
