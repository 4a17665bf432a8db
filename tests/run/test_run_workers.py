"""``loopai run --workers N``: the same output, summary and events as one process; Ctrl-C and a killed worker.

Each test starts real worker processes (and most a real ``loopai`` process), so they are marked
``processes``: nox runs them on one Python only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from loopai.run._input import InputError
from loopai.run._route import Router, looked, shared, task_key

pytestmark = pytest.mark.processes

TASKS = [str(uuid.UUID(int=n + 1, version=4)) for n in range(5)]


def _records(kit, count: int) -> list[Any]:
    """Records of five tasks, interleaved unevenly; some fail their check, some are malformed."""
    lines: list[Any] = []
    for n in range(count):
        task = TASKS[(n * n + n // 3) % len(TASKS)]
        lines.append(kit.make_record(task, output="ok" if n % 9 else "no", latency_ms=5.0 + n % 40))
        if n % 37 == 5:
            lines.append(f'{{"task_id": "{task}", "oops"')  # malformed: its error line, in its place
    return lines


def _setup(tmp_path: Path, kit, config, count: int = 150) -> Path:
    config(
        validators={"ok": "OutputIsOk"},
        handlers={"rec": "Recorder"},
        extra="[plugins.samplers.percentage-sampler]\nconfiguration = { seed = 3, sampling_rate = 0.3 }\n",
    )
    tasks = {task: {"accuracy_threshold": 0.95, "window": 10} for task in TASKS}
    (tmp_path / "tasks.toml").write_text(kit.tasks_toml(**tasks), encoding="utf-8")
    return kit.write_lines(tmp_path / "in.jsonl", _records(kit, count))


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A JSON summary without what differs from run to run (times, the output file's name)."""
    left = {key: value for key, value in summary.items() if key not in ("seconds", "records_per_second", "output")}
    left["hooks"] = {hook: counts["calls"] for hook, counts in summary["hooks"].items()}
    left["plugins"] = [{k: v for k, v in plugin.items() if k != "seconds"} for plugin in summary["plugins"]]
    return left


def _run_and_read(loopai, events, source: Path, *flags: str) -> tuple[int, str, dict[str, Any], list[Any]]:
    before = len(events())
    result = loopai(str(source), "--tasks", "tasks.toml", "--plugins", "ok,percentage-sampler,rec", "--json", *flags)
    output = Path(flags[flags.index("-o") + 1]).read_text(encoding="utf-8")
    delivered = sorted((e["line"], e["type"], e["execution_id"]) for e in events()[before:])
    return result.code, output, json.loads(result.stdout), delivered


def test_two_workers_write_what_one_process_writes(tmp_path: Path, kit, loopai, config, events) -> None:
    source = _setup(tmp_path, kit, config)

    one = _run_and_read(loopai, events, source, "-o", "one.jsonl")
    two = _run_and_read(loopai, events, source, "-o", "two.jsonl", "--workers", "2")
    three = _run_and_read(loopai, events, source, "-o", "three.jsonl", "--workers", "3", "--concurrency", "4")

    assert one[0] == two[0] == three[0] == 1  # the malformed lines
    assert one[1] == two[1] == three[1]  # every output line, byte for byte, in input order
    assert _comparable(one[2]) == _comparable(two[2]) == _comparable(three[2])
    assert one[3] == two[3] == three[3]  # the same events delivered (in another order)
    assert any("breached" in event[1] for event in one[3])  # thresholds were crossed: exactly as in one process


def test_each_task_is_handled_by_one_worker_and_workers_share_the_tasks(
    tmp_path: Path, kit, loopai, config, events, monkeypatch
) -> None:
    source = _setup(tmp_path, kit, config, count=100)
    validated = tmp_path / "validated.txt"
    monkeypatch.setenv("LOOPAI_TEST_VALIDATED", str(validated))

    code, _, summary, delivered = _run_and_read(loopai, events, source, "-o", "out.jsonl", "--workers", "2")

    assert code == 1 and summary["records"] == 100
    workers_of: dict[str, set[str]] = {}
    for line in validated.read_text(encoding="utf-8").splitlines():
        task, pid = line.split()
        workers_of.setdefault(task, set()).add(pid)
    assert sorted(workers_of) == sorted(TASKS)
    assert all(len(pids) == 1 for pids in workers_of.values()), workers_of
    assert len(set().union(*workers_of.values())) == 2  # five tasks, spread over both workers
    # One worker delivers for the run, as one process does (a handler's max_in_flight, its order and
    # a console's alert limits hold for the run), after every worker recorded its events: each once.
    assert len(delivered) == len(set(delivered)) == sum(row["delivered"] for row in summary["deliveries"])
    assert len({event["pid"] for event in events()}) == 1
    assert sum(row["pending"] for row in summary["deliveries"]) == 0


def test_fail_fast_with_workers_stops_where_one_process_stops(tmp_path: Path, kit, loopai, config, events) -> None:
    source = _setup(tmp_path, kit, config)

    one = _run_and_read(loopai, events, source, "-o", "one.jsonl", "--fail-fast")
    two = _run_and_read(loopai, events, source, "-o", "two.jsonl", "--fail-fast", "--workers", "2")

    assert one[1] == two[1] and one[1].count("\n") == 7  # lines 1-6, then the malformed line 7
    assert one[3] == two[3]


def _slow_records(kit, count: int) -> list[Any]:
    return [kit.make_record(TASKS[n % len(TASKS)]) for n in range(count)]


def _whole_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]  # every line whole
    assert [line["line"] for line in lines] == list(range(1, len(lines) + 1))  # in order, none missing
    return lines


def _outbox_events(tmp_path: Path) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "outbox.sqlite3")) as db:
        rows = db.execute("SELECT body FROM events").fetchall()
    return sorted((json.loads(body)["payload"]["line"], json.loads(body)["event_type"]) for (body,) in rows)


def test_ctrl_c_at_a_terminal_stops_every_worker_cleanly(tmp_path: Path, kit, workers_run, events) -> None:
    process = workers_run(_slow_records(kit, 2000), start_new_session=True)
    try:
        kit.wait_for(lambda: len(events()) >= 40, process)
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    assert process.returncode == 130, stderr
    assert "INTERRUPTED" in stderr and "Traceback" not in stderr
    lines = _whole_lines(tmp_path / "out.jsonl")
    assert 20 <= len(lines) < 2000 and all(line["error"] is None for line in lines)
    delivered = sorted((event["line"], event["type"]) for event in events())
    assert _outbox_events(tmp_path) == delivered  # what was emitted is kept, and delivered
    assert len(delivered) == 2 * len(lines)


def test_a_killed_worker_leaves_whole_lines_and_loses_no_event(tmp_path: Path, kit, workers_run, events) -> None:
    process = workers_run(_slow_records(kit, 2000))
    victim, stderr = kit.kill_a_worker(process, events)

    assert process.returncode == 1, stderr
    assert f"(pid {victim}) was killed by SIGKILL" in stderr and "Traceback" not in stderr
    lines = _whole_lines(tmp_path / "out.jsonl")
    lost = [line for line in lines if line["error"] is not None]
    assert lost
    assert all(f"(pid {victim}) was killed by SIGKILL" in line["error"] for line in lost)
    assert all(line["task_id"] is None for line in lost)
    stored = _outbox_events(tmp_path)
    assert set((event["line"], event["type"]) for event in events()) <= set(stored)

    # What the killed worker had emitted but not delivered is delivered by the next run.
    empty = kit.write_lines(tmp_path / "empty.jsonl", [])
    again = kit.loopai_process(
        [str(empty), "--no-autoload"], cwd=tmp_path, env=kit.subprocess_env(tmp_path), stderr=subprocess.PIPE
    )
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert set((event["line"], event["type"]) for event in events()) == set(stored)


def test_when_the_worker_that_delivers_is_killed_the_summary_says_what_is_left_pending(
    tmp_path: Path, kit, workers_run, events
) -> None:
    process = workers_run(_slow_records(kit, 2000))
    victim, stderr = kit.kill_a_worker(process, events, victim=lambda: kit.worker_pids(process.pid)[0])

    assert process.returncode == 1, stderr
    assert f"(pid {victim}) was killed by SIGKILL" in stderr and "Traceback" not in stderr
    assert f"worker 1 (pid {victim}) delivered the run's events: the deliveries it made are not counted" in stderr
    assert "still pending: deliver with  loopai events deliver" in stderr
    stored = _outbox_events(tmp_path)
    assert set((event["line"], event["type"]) for event in events()) < set(stored)  # not all delivered yet


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_bad_worker_count_is_exit_2(tmp_path: Path, kit, loopai, value: str) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record()])
    with pytest.raises(SystemExit) as stopped:
        loopai(str(source), "--workers", value)
    assert stopped.value.code == 2


def test_workers_auto_uses_the_cpus_available(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(task) for task in TASKS])

    result = loopai(str(source), "--workers", "auto")

    assert result.code == 0, result.stderr
    assert [line["task_id"] for line in result.lines] == TASKS


def test_a_worker_that_cannot_build_its_host_is_exit_2(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record()])

    result = loopai(str(source), "--workers", "2", "--seed", "1", "--disable-plugins", "percentage-sampler")

    assert result.code == 2
    assert result.stderr.count("--seed: no enabled sampler takes a seed") == 1
    assert result.stdout == ""


# -- routing, without processes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"task_id": "6F1C2A9E-0D4B-4A8E-9B8E-2F0C1D3E4A5B", "output": 1}',
        '{"TaskId": "{6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b}"}',
        '{"taskId": "urn:uuid:6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"}',
        '{"execution": {"task_id": "6f1c2a9e0d4b4a8e9b8e2f0c1d3e4a5b"}, "expected_output": {"task_id": "x"}}',
        '{"input": {"task_id": "00000000-0000-4000-8000-000000000000"}, '
        '"task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"}',
        '{"task\\u005fid": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b", "output": {"task_id": "0000"}}',
        '{"task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b", "input": {"text": "a task, and a mask"}}',
        '{"input": "ask the task", "TaskId": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"}',
        '{"TaskId": "00000000-0000-4000-8000-000000000000", "task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"}',
        '{"task_id": "00000000-0000-4000-8000-000000000000", "t\\u0061sk_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"}',
        '{"task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b", "input": "a \\"quoted\\" task\\n"}',
    ],
)
def test_a_line_goes_to_its_task_however_the_task_id_is_written(line: str) -> None:
    assert task_key(line.encode()) == "6f1c2a9e0d4b4a8e9b8e2f0c1d3e4a5b"


@pytest.mark.parametrize("line", ["[1]", "{oops", '{"task_id": 7}', '{"task_id": "not a uuid"}'])
def test_a_line_without_a_readable_task_id_has_no_task(line: str) -> None:
    assert task_key(line.encode()) is None


def test_the_first_lines_share_the_tasks_out_by_their_records() -> None:
    # The task with the most lines first, each to the worker with the fewest so far: the last of
    # them on a tie (the first worker also delivers the run's events).
    tasks = ["a"] * 6 + ["b"] * 3 + [None] * 4 + ["c"] * 2 + ["d"]
    assert shared(tasks, 2) == {"a": 1, "b": 0, "c": 0, "d": 0}
    assert shared(["a"] * 5 + ["b"] * 4 + ["c"] * 4 + ["d"] * 3, 3) == {"a": 2, "b": 1, "c": 0, "d": 1}


def test_the_lines_looked_at_come_back_and_a_pause_ends_the_look() -> None:
    lines = [f'{{"task_id": "{TASKS[n % 3]}"}}\n'.encode() for n in range(5)]
    later = f'{{"task_id": "{TASKS[4]}"}}\n'.encode()

    shares, again = looked(iter([*lines, b"\n", None, later]), Router(), 2)

    assert list(again) == [*lines, b"\n", None, later]
    assert set(shares) == {task_key(line) for line in lines[:3]}  # not the task met after the pause


def test_an_input_cut_short_while_looked_at_gives_its_lines_first() -> None:
    line = f'{{"task_id": "{TASKS[0]}"}}\n'.encode()

    def cut() -> Any:
        yield line
        raise InputError("in.jsonl: cannot be read to the end")

    shares, again = looked(cut(), Router(), 2)

    assert next(again) == line and list(shares) == [task_key(line)]
    with pytest.raises(InputError):
        next(again)


def test_a_worker_killed_while_it_waits_for_lines_stops_the_run_saying_so(
    tmp_path: Path, kit, workers_run, events
) -> None:
    # Its task's few records are done: no line of it is lost, but the input is read no further.
    records = [kit.make_record(TASKS[0]) for _ in range(5)] + [kit.make_record(TASKS[1]) for _ in range(2000)]
    process = workers_run(records)
    idle, stderr = kit.kill_a_worker(
        process,
        events,
        ready=lambda: {e["line"] for e in events()} >= {1, 2, 3, 4, 5, 6},
        victim=lambda: next(event["pid"] for event in events() if event["line"] == 1),
    )

    assert process.returncode == 1, stderr  # was 0, the input silently cut short
    head = next(line for line in stderr.splitlines() if line.startswith("loopai run: "))
    assert f"stopped early: worker 1 (pid {idle}) was killed by SIGKILL: the input was not read after line" in head
    lines = _whole_lines(tmp_path / "out.jsonl")
    assert 6 <= len(lines) < len(records) and all(line["error"] is None for line in lines)
