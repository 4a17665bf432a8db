"""What ``loopai run`` says about its input, as a process: each unknown key once, tasks the tasks table
lacks, a byte order mark, a JSON array on stdin. One process and ``--workers`` say the same."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

WORKERS = [
    pytest.param((), id="one-process"),
    pytest.param(("--workers", "2"), id="workers", marks=pytest.mark.processes),
]


def _run(tmp_path: Path, kit, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``loopai run ARGS --no-autoload`` as a process, fed ``stdin`` (else nothing)."""
    done = subprocess.run(
        [*_command(), *args, "--no-autoload"],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
        env=kit.subprocess_env(tmp_path),
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def _command() -> list[str]:
    import sys

    return [sys.executable, "-m", "loopai", "run"]


def _warnings(stderr: str) -> list[str]:
    return [line.removeprefix("warning: ") for line in stderr.splitlines() if line.startswith("warning: ")]


@pytest.mark.parametrize("workers", WORKERS)
def test_each_unknown_key_is_said_once_with_the_field_it_may_mean(tmp_path: Path, kit, workers: Any) -> None:
    records = [kit.make_record(task) for task in (kit.TASK_A, kit.TASK_B, kit.TASK_A, kit.TASK_B, kit.TASK_A)]
    records[0]["trace_id"] = "t-1"  # harmless: it must not hide what comes after
    records[1]["lantecy_ms"] = records[1].pop("latency_ms")
    records[2]["stauts"] = "failed"
    del records[2]["status"]
    records[3]["trace_id"] = "t-2"  # said already
    records[3]["Id"] = records[3]["id"]  # two spellings of one field: the first is read
    records[4]["TaskId"] = kit.TASK_B  # C#'s spelling alone beside nothing else would be read; here task_id is
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    done = _run(tmp_path, kit, str(source), "-o", "out.jsonl", "--json", *workers)

    assert done.returncode == 0, done.stderr
    said = _warnings(done.stderr)  # as they are met (with --workers, as the workers met them: a key
    summed = json.loads(done.stdout)["warnings"]  # a later line met first is said with that line); in line order

    def without_line(warnings: list[str]) -> list[str]:
        return sorted(warning.split(": ", 1)[1] for warning in warnings)

    assert without_line(said) == without_line(summed) and len(summed) == 5  # each key said once
    assert summed[0].startswith("line 1: unknown key 'trace_id' ignored (an execution record has id, program_id")
    assert "did you mean" not in summed[0]  # the record has a task_id: trace_id is not a typo of it
    assert summed[1:] == [
        "line 2: unknown key 'lantecy_ms' ignored; did you mean 'latency_ms'?",
        "line 3: unknown key 'stauts' ignored; did you mean 'status'?",
        "line 4: key 'Id' ignored: the line spells the same field another way, and that is read",
        "line 5: key 'TaskId' ignored: the line spells the same field another way, and that is read",
    ]


@pytest.mark.parametrize("workers", WORKERS)
def test_past_twenty_unknown_keys_the_others_are_counted(tmp_path: Path, kit, workers: Any) -> None:
    records = [kit.make_record(task, **{f"extra{n:02}": n}) for n, task in enumerate([kit.TASK_A, kit.TASK_B] * 13)]
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    done = _run(tmp_path, kit, str(source), "-o", "out.jsonl", "--json", *workers)

    assert done.returncode == 0, done.stderr
    said = _warnings(done.stderr)
    assert len(said) == 21 and len(set(said)) == 21
    assert said[-1].startswith("and 6 more unknown key(s) ignored")
    summed = json.loads(done.stdout)["warnings"]
    assert [text.split(":")[0] for text in summed[:20]] == [f"line {n}" for n in range(1, 21)]
    assert summed[20] == said[-1]


@pytest.mark.parametrize("workers", WORKERS)
def test_records_of_a_task_not_in_the_tasks_table_are_said_once(tmp_path: Path, kit, workers: Any) -> None:
    mistyped = kit.TASK_B[:-1] + "0"
    records = [kit.make_record(task) for task in (kit.TASK_A, mistyped, kit.TASK_A, mistyped, mistyped)]
    source = kit.write_lines(tmp_path / "in.jsonl", records)
    (tmp_path / "tasks.toml").write_text(
        kit.tasks_toml(**{kit.TASK_A: {"name": "alpha", "output_schema": kit.OUTPUT_SCHEMA}}), encoding="utf-8"
    )

    done = _run(tmp_path, kit, str(source), "--tasks", "tasks.toml", "-o", "out.jsonl", "--json", *workers)
    untabled = _run(tmp_path, kit, str(source), "-o", "out2.jsonl", *workers)  # no tasks table: nothing to say

    assert done.returncode == 0, done.stderr
    warning = (
        f"3 record(s) of task {mistyped} are not in the tasks table (--tasks FILE or [tasks] of the "
        "configuration): judged without its schemas, sampling rate and thresholds"
    )
    assert _warnings(done.stderr) == [warning]
    assert json.loads(done.stdout)["warnings"] == [warning]
    assert untabled.returncode == 0 and _warnings(untabled.stderr) == []


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("on_stdin", [False, True], ids=["file", "stdin"])
def test_a_byte_order_mark_at_the_start_is_skipped(tmp_path: Path, kit, workers: Any, on_stdin: bool) -> None:
    records = [kit.make_record(task) for task in (kit.TASK_A, kit.TASK_B, kit.TASK_A)]
    data = b"\xef\xbb\xbf" + "".join(json.dumps(record) + "\n" for record in records).encode()
    (tmp_path / "in.jsonl").write_bytes(data)

    if on_stdin:
        done = _run(tmp_path, kit, "-", "-o", "out.jsonl", *workers, stdin=data)
    else:
        done = _run(tmp_path, kit, "in.jsonl", "-o", "out.jsonl", *workers)

    assert done.returncode == 0, done.stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["execution_id"] for line in written] == [record["id"] for record in records]
    assert all(line["error"] is None for line in written)


@pytest.mark.parametrize("workers", WORKERS)
def test_a_file_of_a_byte_order_mark_alone_is_an_empty_input(tmp_path: Path, kit, workers: Any) -> None:
    (tmp_path / "in.jsonl").write_bytes(b"\xef\xbb\xbf")  # an empty file saved by some Windows editors

    done = _run(tmp_path, kit, "in.jsonl", "-o", "out.jsonl", *workers)

    assert done.returncode == 0, done.stderr  # was 1: "line 1: invalid JSON: EOF while parsing"
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == ""
    assert "malformed" not in done.stderr.split("0 malformed", 1)[-1]


@pytest.mark.parametrize("workers", WORKERS)
def test_a_json_array_on_stdin_is_refused_as_in_a_file(tmp_path: Path, kit, workers: Any) -> None:
    array = json.dumps([kit.make_record(), kit.make_record()]).encode()
    (tmp_path / "a.json").write_bytes(array)

    piped = _run(tmp_path, kit, "-", "-o", "a2.jsonl", *workers, stdin=array)
    filed = _run(tmp_path, kit, "a.json", "-o", "a3.jsonl", *workers)

    assert piped.returncode == filed.returncode == 2, piped.stderr
    assert piped.stderr.count("jq -c '.[]'") == 1 and "stopped early" not in piped.stderr
    assert "standard input: this is a JSON array" in piped.stderr
    left = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(("a2", "a3", "outbox")))
    assert left == []  # neither an output nor an outbox was made
