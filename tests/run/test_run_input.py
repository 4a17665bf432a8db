"""What ``loopai run`` makes of the lines it is fed: hostile lines, C# records, unknown keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HOSTILE = {
    "nested 100,000 deep": '{"task_id": "%s", "program_id": "%s", "output": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5,000-digit integer": '{"task_id": "%s", "program_id": "%s", "output": ' + "7" * 5_000 + "}",
    "half a surrogate pair": '{"task_id": "%s", "program_id": "%s", "output": "bad \\ud800 text"}',
}


def test_hostile_lines_are_each_their_own_error_and_the_run_goes_on(tmp_path: Path, kit, loopai, config, events):
    config(validators={"ok": "OutputIsOk"}, handlers={"rec": "Recorder"})
    hostile = [text % (kit.TASK_A, kit.make_record()["program_id"]) for text in HOSTILE.values()]
    good = [kit.make_record(output="ok") for _ in range(3)]
    source = kit.write_lines(tmp_path / "in.jsonl", [good[0], *hostile, good[1], good[2]])

    result = loopai(str(source), "--no-autoload")

    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.lines
    assert [line["line"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [line["error"] is None for line in lines] == [True, False, False, False, True, True]
    assert lines[1]["error"].startswith("line 2: invalid JSON: recursion limit exceeded")
    assert lines[2]["error"].startswith("line 3: invalid JSON: number out of range")
    assert lines[3]["error"].startswith("line 4: invalid JSON: ") and "surrogate" in lines[3]["error"]
    assert sorted({event["line"] for event in events()}) == [1, 5, 6]  # every event could be written
    assert "3 malformed" in result.stderr


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e999", "true", '"12"', "[]"])
def test_a_latency_that_is_not_a_finite_number_is_refused_naming_the_field(tmp_path: Path, kit, loopai, value):
    record = json.dumps(kit.make_record()).replace('"latency_ms": 10.0', f'"latency_ms": {value}')
    source = kit.write_lines(tmp_path / "in.jsonl", [record, kit.make_record()])

    result = loopai(str(source))

    assert result.code == 1
    first, second = result.lines
    assert first["error"].startswith("line 1: latency_ms: ")
    assert second["error"] is None


def test_records_written_by_csharp_are_read_with_their_ids_and_statuses(tmp_path: Path, kit, loopai) -> None:
    ids = [kit.make_record()["id"] for _ in range(5)]
    pascal = {"Id": ids[0], "ProgramId": kit.make_record()["program_id"], "TaskId": kit.TASK_A}
    camel = {"id": ids[1], "programId": pascal["ProgramId"], "taskId": kit.TASK_A}
    source = kit.write_lines(
        tmp_path / "in.jsonl",
        [
            {**pascal, "Status": "Error", "ErrorMessage": "boom", "LatencyMs": 12.5, "Output": None},
            {**camel, "status": "Timeout", "latencyMs": 3},
            {**pascal, "Id": ids[2], "Status": 0, "Output": {"label": "positive"}},
            {**pascal, "Id": ids[3], "Status": 1},
            {**pascal, "Id": ids[4], "Status": 2},
        ],
    )

    result = loopai(str(source))

    assert result.code == 0, result.stderr
    assert "unknown key" not in result.stderr
    assert [line["execution_id"] for line in result.lines] == ids
    assert [line["events"][0] for line in result.lines] == [
        "program.execution.failed",
        "program.execution.timeout",
        "program.execution.completed",
        "program.execution.failed",
        "program.execution.timeout",
    ]


def test_unknown_keys_are_ignored_and_each_said_once(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record() for _ in range(4)]
    records[1]["Metadata"] = {"source": "c#"}
    records[2]["extra_field"] = 1
    records[3]["Metadata"] = {}
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    result = loopai(str(source), "--json", "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "unknown key" in line]
    assert len(warnings) == 2  # each key once, with the first line it was on
    assert warnings[0].startswith("warning: line 2: unknown key 'Metadata' ignored")
    assert warnings[1].startswith("warning: line 3: unknown key 'extra_field' ignored")
    assert json.loads(result.stdout)["warnings"] == [warning.removeprefix("warning: ") for warning in warnings]
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["execution_id"] for line in written] == [r["id"] for r in records]
    assert all(line["error"] is None for line in written)


@pytest.mark.processes
def test_unknown_keys_are_said_once_with_workers_too(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record(task, Surprise=True) for task in (kit.TASK_A, kit.TASK_B) * 3]
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    result = loopai(str(source), "--workers", "2")

    assert result.code == 0, result.stderr
    assert sum("unknown key 'Surprise'" in line for line in result.stderr.splitlines()) == 1


def test_a_plugin_message_that_is_not_valid_unicode_is_written_escaped(tmp_path: Path, kit, loopai, plugins) -> None:
    module = tmp_path / "modules" / "odd_messages.py"
    module.write_text(
        "import loopai\n\n"
        "class Odd(loopai.ValidatorPlugin):\n"
        "    def validate(self, execution, context):\n"
        "        errors = {'$': ['half \\ud800']}\n"
        "        return loopai.ValidationResult(is_valid=False, validator_type='odd', errors=errors)\n",
        encoding="utf-8",
    )
    (tmp_path / "loopai.toml").write_text('[plugins.validators.odd]\nfactory = "odd_messages:Odd"\n', encoding="utf-8")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(), kit.make_record()])

    result = loopai(str(source), "--no-autoload", "-o", "out.jsonl")

    assert result.code == 0, result.stderr
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()  # valid UTF-8 throughout
    errors = [json.loads(line)["validation"]["results"][0]["errors"] for line in written]
    assert errors == [{"$": ["half \ud800"]}] * 2
