"""``loopai run``: which events each record raises, what they carry, and threshold breaches once per crossing."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from loopai.config import TaskSettings
from loopai.state import Rolling


def _run_with_recorder(tmp_path: Path, kit, loopai, config, records, *extra: str, tasks: dict | None = None):
    config(validators={"ok": "OutputIsOk"}, samplers={"never": "Never"}, handlers={"rec": "Recorder"})
    source = kit.write_lines(tmp_path / "in.jsonl", records)
    args = [str(source), "--no-autoload", *extra]
    if tasks is not None:
        (tmp_path / "tasks.toml").write_text(kit.tasks_toml(**{kit.TASK_A: tasks}), encoding="utf-8")
        args += ["--tasks", "tasks.toml"]
    return loopai(*args)


def test_events_follow_the_run_status_and_the_validation(tmp_path: Path, kit, loopai, config, events) -> None:
    records = [
        kit.make_record(output="ok"),
        kit.make_record(output="not ok"),
        kit.make_record(output=None, status="error", error_message="boom"),
        kit.make_record(output=None, status="timeout", latency_ms=5000.0),
    ]

    result = _run_with_recorder(tmp_path, kit, loopai, config, records)

    assert result.code == 0, result.stderr
    assert [line["events"] for line in result.lines] == [
        ["program.execution.completed", "validation.completed"],
        ["program.execution.completed", "validation.failed"],
        ["program.execution.failed", "validation.failed"],
        ["program.execution.timeout", "validation.failed"],
    ]
    got = events()
    assert [(e["line"], e["type"]) for e in got] == [
        (line["line"], event_type) for line in result.lines for event_type in line["events"]
    ]
    failed = next(e for e in got if e["type"] == "program.execution.failed")
    assert failed["execution_id"] == records[2]["id"]
    assert failed["payload"]["status"] == "error" and failed["payload"]["error_message"] == "boom"
    invalid = next(e for e in got if e["type"] == "validation.failed")
    assert invalid["payload"]["is_valid"] is False
    assert invalid["payload"]["results"][0]["validator_type"] == "output-is-ok"
    assert not any(e["dry"] for e in got)


def test_emitted_events_stay_in_the_outbox(tmp_path: Path, kit, loopai, config, events) -> None:
    result = _run_with_recorder(tmp_path, kit, loopai, config, [kit.make_record(output="ok") for _ in range(3)])

    assert result.code == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "outbox.sqlite3")) as db:
        stored = db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
    assert stored == [("delivered", 6)]
    assert str(tmp_path / "outbox.sqlite3") in result.stderr


def test_without_a_handler_nothing_is_written_to_the_outbox(tmp_path: Path, kit, loopai, config) -> None:
    config(validators={"ok": "OutputIsOk"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output="ok")])

    result = loopai(str(source), "--no-autoload")

    assert result.lines[0]["events"] == ["program.execution.completed", "validation.completed"]
    if (tmp_path / "outbox.sqlite3").exists():
        with contextlib.closing(sqlite3.connect(tmp_path / "outbox.sqlite3")) as db:
            assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_dry_run_events(tmp_path: Path, kit, loopai, config, events, workers: str) -> None:
    result = _run_with_recorder(
        tmp_path, kit, loopai, config, [kit.make_record(output="ok")], "--dry-run-events", "--workers", workers
    )

    assert result.code == 0
    assert [e["dry"] for e in events()] == [True, True]
    assert "dry run: each handler was called with is_dry_run = true; no event was sent or kept" in result.stderr
    assert "events are kept in the outbox" not in result.stderr and "HANDLER" not in result.stderr
    assert not list(tmp_path.glob("*.sqlite3"))  # a rehearsal keeps nothing, and makes no file


V, X = "ok", "wrong"


def test_threshold_breaches_are_raised_once_per_crossing(tmp_path: Path, kit, loopai, config, events) -> None:
    # window 4: accuracy (share valid) must stay >= 0.75; p95 latency (the max, with 4 values) <= 100 ms.
    outputs = [V, V, V, V, X, X, X, V, V, V, X, X]
    latencies = [10, 10, 10, 10, 200, 10, 10, 10, 10, 300, 10, 10]
    records = [kit.make_record(output=o, latency_ms=ms) for o, ms in zip(outputs, latencies, strict=True)]
    tasks = {"name": "watched", "window": 4, "accuracy_threshold": 0.75, "latency_threshold_ms": 100}

    result = _run_with_recorder(tmp_path, kit, loopai, config, records, tasks=tasks)

    assert result.code == 0, result.stderr
    accuracy = [line["line"] for line in result.lines if "accuracy.threshold.breached" in line["events"]]
    latency = [line["line"] for line in result.lines if "latency.threshold.breached" in line["events"]]
    assert accuracy == [6, 12]
    assert latency == [5, 10]
    breach = next(e for e in events() if e["type"] == "accuracy.threshold.breached")
    assert breach["payload"] == {
        "line": 6,
        "task": "watched",
        "metric": "accuracy",
        "statistic": "share of valid records",
        "value": 0.5,
        "threshold": 0.75,
        "window": 4,
    }
    slow = next(e for e in events() if e["type"] == "latency.threshold.breached")
    assert slow["payload"]["value"] == 200.0 and slow["payload"]["threshold"] == 100.0
    assert "accuracy x2, latency x2" in result.stderr


def test_breaches_do_not_depend_on_concurrency(tmp_path: Path, kit, loopai, config) -> None:
    outputs = [V, V, V, V, X, X, X, V, V, V, X, X] * 3
    records = [kit.make_record(output=o) for o in outputs]
    tasks = {"window": 4, "accuracy_threshold": 0.75}

    serial = _run_with_recorder(tmp_path, kit, loopai, config, records, tasks=tasks)
    overlapped = _run_with_recorder(tmp_path, kit, loopai, config, records, "--concurrency", "8", tasks=tasks)

    assert [line["events"] for line in serial.lines] == [line["events"] for line in overlapped.lines]


def test_rolling_windows_judge_only_when_full() -> None:
    rolling = Rolling(TaskSettings(window=3, accuracy_threshold=0.9, latency_threshold_ms=50))

    assert rolling.add(False, 500.0) == []  # one record of three: not judged yet
    assert rolling.add(False, 500.0) == []
    crossed = rolling.add(True, 10.0)
    assert [(c.metric, round(c.value, 3), c.threshold, c.in_window) for c in crossed] == [
        ("accuracy", 0.333, 0.9, 3),
        ("latency", 500.0, 50.0, 3),
    ]
    assert rolling.add(True, None) == []  # still below and still slow: no new crossing


@pytest.mark.parametrize("window", [1, 20, 50])
def test_rolling_keeps_only_the_last_window(window: int) -> None:
    rolling = Rolling(TaskSettings(window=window, latency_threshold_ms=1e9))
    for value in range(1, 1000):
        rolling.add(True, float(value))
    assert rolling.sorted_latencies == [float(v) for v in range(1000 - window, 1000)]


def test_rolling_p95_is_the_nearest_rank() -> None:
    rolling = Rolling(TaskSettings(window=20, latency_threshold_ms=18.5))
    crossed = [c for value in range(1, 21) for c in rolling.add(True, float(value))]
    assert [c.value for c in crossed] == [19.0]  # the 19th of 20 values: ceil(0.95 * 20)


def test_the_console_handler_on_defaults_keeps_stdout_for_results(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record(), kit.make_record(output=None, status="error", error_message="kaput")]
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    result = loopai(str(source))

    assert result.code == 0
    assert len(result.lines) == 2  # stdout is JSON Lines only
    assert "program.execution.failed" in result.stderr and "kaput" in result.stderr
    assert "validation.failed" not in result.stderr and "program.execution.completed" not in result.stderr


def test_the_console_handler_on_defaults_keeps_stdout_for_the_json_summary(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record(output=None, status="timeout", error_message="too slow")]
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    result = loopai(str(source), "--json", "--output", "out.jsonl")

    assert json.loads(result.stdout)["records"] == 1  # stdout holds the summary and nothing else
    assert "program.execution.timeout" in result.stderr


def test_a_configured_console_handler_is_left_as_configured(tmp_path: Path, kit, loopai) -> None:
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.console-webhook-handler]\nconfiguration = { stream = 'stderr' }\n",
        encoding="utf-8",
    )
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record()])

    result = loopai(str(source))

    assert result.code == 0
    assert len(result.lines) == 1
    assert "program.execution.completed" in result.stderr and "validation.completed" in result.stderr


def test_the_console_handler_on_defaults_does_not_flood(tmp_path: Path, kit, loopai) -> None:
    failed = [kit.make_record(output=None, status="error", error_message=f"boom {n}") for n in range(200)]
    source = kit.write_lines(tmp_path / "in.jsonl", failed)
    (tmp_path / "tasks.toml").write_text(kit.tasks_toml(**{kit.TASK_A: {"name": "invoice-extraction"}}))

    result = loopai(str(source), "--tasks", "tasks.toml")

    assert result.code == 0, result.stderr
    assert result.stderr.count("+- program.execution.failed ") == 10  # at most 10 a minute per type and task
    assert "\n190 more program.execution.failed alerts for invoice-extraction\n" in result.stderr
    assert [line for line in result.stderr.splitlines() if "more program" in line] == [
        "190 more program.execution.failed alerts for invoice-extraction"
    ]
    table = next(block for block in result.stderr.split("\n\n") if block.startswith("HANDLER"))
    assert table.splitlines()[1].split() == ["console-webhook-handler", "200", "0", "0", "0"]  # shown or counted
