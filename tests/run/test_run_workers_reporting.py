"""``loopai run --workers``: what the summary says when a worker dies, and a pipe that pauses.

Each test starts a real ``loopai`` process and its workers: marked ``processes``.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.processes

TASKS = [str(uuid.UUID(int=n + 1, version=4)) for n in range(5)]
NAMES = [f"task-{n}" for n in range(5)]


def test_a_dead_workers_tasks_are_named_and_the_counts_match_the_output(
    tmp_path: Path, kit, workers_run, events
) -> None:
    tasks = {task: {"name": name} for task, name in zip(TASKS, NAMES, strict=True)}
    (tmp_path / "tasks.toml").write_text(kit.tasks_toml(**tasks), encoding="utf-8")
    lines: list[Any] = []
    for n in range(2000):
        lines.append(kit.make_record(TASKS[n % len(TASKS)]))
        if n % 50 == 7:
            lines.append(f'{{"task_id": "{TASKS[n % len(TASKS)]}", "oops"')  # malformed
    process = workers_run(lines, "--tasks", "tasks.toml")
    victim, stderr = kit.kill_a_worker(process, events)

    assert process.returncode == 1, stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    records = sum(line["error"] is None for line in written)
    lost = sum(line["error"] is not None and "no result" in line["error"] for line in written)
    malformed = len(written) - records - lost
    head = re.match(
        r"loopai run: ([\d,]+) line\(s\), ([\d,]+) record\(s\), ([\d,]+) malformed, ([\d,]+) without", stderr
    )
    assert head is not None, stderr
    assert [int(count.replace(",", "")) for count in head.groups()] == [len(written), records, malformed, lost]
    assert lost > 0
    # The tasks the dead worker had are named; those in the table are the others.
    missing = stderr.split("MISSING FROM THIS SUMMARY:\n", 1)[1].split("\n\n", 1)[0]
    assert f"(pid {victim}) was killed by SIGKILL" in missing
    named = set(re.findall(r"task-\d", missing))
    table = stderr.split("\nTASK ", 1)[1].split("\n\n", 1)[0]
    shown = set(re.findall(r"^task-\d", table, re.MULTILINE))
    assert named and shown and named | shown == set(NAMES) and not named & shown


def test_lines_from_a_pipe_that_pauses_are_processed_at_once(tmp_path: Path, kit) -> None:
    records = [kit.make_record(TASKS[n % 4]) for n in range(40)]
    process = kit.loopai_process(
        ["-", "--no-autoload", "--workers", "2", "-o", "out.jsonl"],
        cwd=tmp_path,
        env=kit.subprocess_env(tmp_path),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    target = tmp_path / "out.jsonl"

    def written() -> int:
        return target.read_text(encoding="utf-8").count("\n") if target.exists() else 0

    try:
        assert process.stdin is not None
        process.stdin.write("".join(json.dumps(record) + "\n" for record in records))
        process.stdin.flush()  # and the pipe stays open: the producer pauses
        kit.wait_for(lambda: written() == 40, process)
        _, stderr = process.communicate(timeout=60)  # closes its stdin: the input ends
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["execution_id"] for line in lines] == [record["id"] for record in records]
