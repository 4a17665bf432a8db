"""``loopai run``: one output line per input line, in order, with its fields; malformed lines; inputs."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest


def _tasks(tmp_path: Path, kit, **settings) -> Path:
    path = tmp_path / "tasks.toml"
    path.write_text(kit.tasks_toml(**{kit.TASK_A: {"output_schema": kit.OUTPUT_SCHEMA, **settings}}), encoding="utf-8")
    return path


def test_one_line_per_record_in_input_order_with_every_field(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record(kit.TASK_A if i % 2 else kit.TASK_B) for i in range(30)]
    records[7]["output"] = {"label": "maybe"}  # breaks the task's output schema
    source = kit.write_lines(tmp_path / "in.jsonl", records)

    result = loopai(str(source), "--tasks", str(_tasks(tmp_path, kit)))

    assert result.code == 0, result.stderr
    lines = result.lines
    assert [line["line"] for line in lines] == list(range(1, 31))
    assert [line["execution_id"] for line in lines] == [r["id"] for r in records]
    assert [line["task_id"] for line in lines] == [r["task_id"] for r in records]
    for line in lines:
        assert set(line) == {"line", "execution_id", "task_id", "validation", "sampling", "events", "error"}
        assert line["error"] is None
        assert set(line["sampling"]) == {"should_sample", "reason", "sampler_type"}
        assert line["events"][0] == "program.execution.completed"
    broken = lines[7]["validation"]
    assert broken["is_valid"] is False
    schema_result = next(r for r in broken["results"] if r["validator_type"] == "json-schema-validator")
    assert "$.output.label" in schema_result["errors"]
    assert lines[7]["events"] == ["program.execution.completed", "validation.failed"]
    assert lines[6]["validation"]["is_valid"] is True
    assert lines[6]["events"] == ["program.execution.completed", "validation.completed"]


def test_expected_output_travels_with_the_record(tmp_path: Path, kit, loopai) -> None:
    same = kit.make_record(output={"label": "positive"})
    other = kit.make_record(output={"label": "positive"})
    source = kit.write_lines(
        tmp_path / "in.jsonl",
        [
            {"execution": same, "expected_output": {"label": "positive"}},
            {"execution": other, "expected_output": {"label": "negative"}},
        ],
    )

    result = loopai(str(source), "--tasks", str(_tasks(tmp_path, kit)))

    assert result.code == 0, result.stderr
    first, second = result.lines
    assert first["execution_id"] == same["id"] and first["validation"]["is_valid"] is True
    assert second["execution_id"] == other["id"] and second["validation"]["is_valid"] is False
    (errors,) = [r["errors"] for r in second["validation"]["results"] if r["validator_type"] == "json-schema-validator"]
    assert "$.output.label" in errors


def test_malformed_lines_are_reported_with_line_and_field_and_the_run_goes_on(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(
        tmp_path / "in.jsonl",
        [
            kit.make_record(),
            '{"id": "not closed"',
            kit.make_record(latency_ms="fast"),
            "",  # blank lines are skipped, not reported
            "  \t ",  # and so are lines of white space only
            "[1, 2, 3]",
            {"execution": kit.make_record(status="exploded")},
            {key: value for key, value in kit.make_record().items() if key != "task_id"},
            kit.make_record(),
            kit.make_record(status="sucess"),
        ],
    )

    result = loopai(str(source))

    assert result.code == 1
    lines = result.lines
    assert [line["line"] for line in lines] == [1, 2, 3, 6, 7, 8, 9, 10]
    errors = {line["line"]: line["error"] for line in lines}
    assert errors[1] is None and errors[9] is None
    assert errors[2].startswith("line 2: invalid JSON")
    assert errors[3].startswith("line 3: latency_ms:") and "'fast'" in errors[3]
    assert errors[6] == "line 6: expected a JSON object (an execution record), got an array"
    assert errors[7].startswith("line 7: execution.status:")
    assert errors[8] == "line 8: task_id: is required"
    assert errors[10].startswith("line 10: status: input should be 'success',")
    assert errors[10].endswith(" (got 'sucess'); did you mean 'success'?")
    for line in lines:
        if line["error"] is not None:
            assert line["validation"] is None and line["sampling"] is None and line["events"] == []
    assert "6 malformed" in result.stderr


def test_fail_fast_stops_at_the_first_malformed_line(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(), "{oops", kit.make_record(), kit.make_record()])

    result = loopai(str(source), "--fail-fast")

    assert result.code == 1
    assert [line["line"] for line in result.lines] == [1, 2]
    assert result.lines[1]["error"].startswith("line 2: invalid JSON")
    assert "--fail-fast" in result.stderr


def test_fail_fast_with_concurrency_still_writes_the_records_before(tmp_path: Path, kit, loopai) -> None:
    lines = [kit.make_record() for _ in range(5)] + ["nope"] + [kit.make_record() for _ in range(5)]
    source = kit.write_lines(tmp_path / "in.jsonl", lines)

    result = loopai(str(source), "--fail-fast", "--concurrency", "4")

    assert result.code == 1
    assert [line["line"] for line in result.lines] == [1, 2, 3, 4, 5, 6]


def test_records_of_a_task_not_in_the_table_use_plain_contexts(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(kit.TASK_B, output={"anything": True})])

    result = loopai(str(source), "--tasks", str(_tasks(tmp_path, kit)))

    assert result.code == 0
    assert result.lines[0]["validation"]["is_valid"] is True
    assert kit.TASK_B in result.stderr  # the summary names the task by id


def test_gzip_input_and_an_output_file(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record() for _ in range(12)]
    source = tmp_path / "in.jsonl.gz"
    with gzip.open(source, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
    target = tmp_path / "out.jsonl"

    result = loopai(str(source), "--output", str(target))

    assert result.code == 0, result.stderr
    assert result.stdout == ""
    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["execution_id"] for line in written] == [r["id"] for r in records]


def test_stdin_input(tmp_path: Path, kit) -> None:
    records = [kit.make_record() for _ in range(5)]
    text = "".join(json.dumps(record) + "\n" for record in records)

    done = subprocess.run(
        [*_command(), "-"], input=text, capture_output=True, text=True, timeout=60, env=kit.subprocess_env(tmp_path)
    )

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["execution_id"] for line in lines] == [r["id"] for r in records]


def test_gzip_is_recognised_by_its_first_bytes_not_its_name(tmp_path: Path, kit, loopai) -> None:
    records = [kit.make_record() for _ in range(4)]
    compressed = gzip.compress("".join(json.dumps(record) + "\n" for record in records).encode())
    (tmp_path / "in.jsonl").write_bytes(compressed)

    result = loopai(str(tmp_path / "in.jsonl"))

    assert result.code == 0, result.stderr
    assert [line["execution_id"] for line in result.lines] == [r["id"] for r in records]

    piped = subprocess.run(
        [*_command(), "-"], input=compressed, capture_output=True, timeout=60, env=kit.subprocess_env(tmp_path)
    )

    assert piped.returncode == 0, piped.stderr.decode()
    lines = [json.loads(line) for line in piped.stdout.decode().splitlines()]
    assert [line["execution_id"] for line in lines] == [r["id"] for r in records]


def test_a_json_array_or_records_over_many_lines_are_refused_with_how_to_convert_them(
    tmp_path: Path, kit, loopai
) -> None:
    records = [kit.make_record() for _ in range(3)]
    (tmp_path / "pretty.json").write_text("\ufeff\n  " + json.dumps(records, indent=2), encoding="utf-8")
    (tmp_path / "packed.json.gz").write_bytes(gzip.compress(json.dumps(records).encode()))
    (tmp_path / "spread.jsonl").write_text("".join(json.dumps(r, indent=2) + "\n" for r in records), encoding="utf-8")

    pretty = loopai(str(tmp_path / "pretty.json"), "-o", str(tmp_path / "out.jsonl"))
    spread = loopai(str(tmp_path / "spread.jsonl"))
    packed = loopai(str(tmp_path / "packed.json.gz"))
    piped = subprocess.run(
        [*_command(), "-"],
        input=json.dumps(records),
        capture_output=True,
        text=True,
        timeout=60,
        env=kit.subprocess_env(tmp_path),
    )

    assert pretty.code == packed.code == spread.code == 2
    assert pretty.stderr == (
        f"{tmp_path / 'pretty.json'}: this is a JSON array, and loopai run reads JSON Lines (one whole record "
        f"on each line): convert it first, e.g. jq -c '.[]' {tmp_path / 'pretty.json'} > records.jsonl\n"
    )
    assert "this is JSON written over many lines, and loopai run reads JSON Lines" in spread.stderr
    assert f"e.g. jq -c . {tmp_path / 'spread.jsonl'} > records.jsonl" in spread.stderr
    assert not (tmp_path / "out.jsonl").exists()  # refused before anything was written
    assert f"e.g. gunzip -c {tmp_path / 'packed.json.gz'} | jq -c '.[]' > records.jsonl" in packed.stderr
    assert piped.returncode != 0 and piped.stdout == ""
    assert "standard input: this is a JSON array" in piped.stderr


@pytest.mark.parametrize("first", ["[1, 2]", "[" * 100_000 + "]" * 100_000, '["a", {"b": 1}]'])
def test_a_first_line_that_is_another_array_is_that_lines_error_not_the_files(
    tmp_path: Path, kit, loopai, first: str
) -> None:
    # Only an array of records is a whole document to convert; any other array on line 1 is a
    # malformed line, as on line 2: the run goes on (exit 1).
    source = kit.write_lines(tmp_path / "in.jsonl", [first, kit.make_record(), kit.make_record()])

    result = loopai(str(source), "-o", str(tmp_path / "out.jsonl"))

    assert result.code == 1, result.stderr
    assert "jq" not in result.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3]
    assert lines[0]["error"].startswith("line 1: ") and lines[1]["error"] is None


def test_a_gz_file_that_is_not_gzip_is_a_usage_error(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl.gz", [kit.make_record(), kit.make_record()])

    result = loopai(str(source))

    assert result.code == 2
    assert f"{source}: named .gz but not gzip data" in result.stderr
    assert result.stdout == ""


def test_an_empty_gz_file_is_an_empty_input(tmp_path: Path, loopai) -> None:
    (tmp_path / "in.jsonl.gz").write_bytes(b"")

    result = loopai(str(tmp_path / "in.jsonl.gz"))

    assert result.code == 0, result.stderr
    assert result.stdout == ""


def test_a_wrapped_line_refuses_keys_it_does_not_know(tmp_path: Path, kit, loopai) -> None:
    """The wrapper is loopai run's own format: an unknown key is a typo that would drop the expected
    output. An execution record itself ignores unknown fields (newer producers may add some)."""
    newer = {**kit.make_record(), "cost_usd": 0.002}
    source = kit.write_lines(
        tmp_path / "in.jsonl",
        [
            {"execution": kit.make_record(), "expected_output": {"label": "positive"}, "foo": 1},
            {"execution": kit.make_record(), "expected": {"label": "positive"}},
            {"execution": kit.make_record(), "expected_output": None},
            newer,
        ],
    )

    result = loopai(str(source))

    assert result.code == 1
    errors = [line["error"] for line in result.lines]
    allowed = "(allowed: execution, expected_output)"
    assert errors == [
        f"line 1: unknown key 'foo' next to 'execution' {allowed}",
        f"line 2: unknown key 'expected' next to 'execution' {allowed}",
        None,
        None,
    ]
    assert result.lines[3]["execution_id"] == newer["id"]


def test_a_missing_input_file_is_a_usage_error(tmp_path: Path, loopai) -> None:
    result = loopai(str(tmp_path / "nowhere.jsonl"))

    assert result.code == 2
    assert "nowhere.jsonl: cannot be read" in result.stderr


def _command() -> list[str]:
    import sys

    return [sys.executable, "-m", "loopai", "run"]


def test_a_sampler_that_went_wrong_is_named_in_the_line_of_its_record(tmp_path: Path, kit, config, loopai) -> None:
    config(samplers={"dict-on-bad": "DictOnBad"})
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output=o) for o in ("ok", "bad", "ok")])

    result = loopai(str(source), "--no-autoload")

    assert result.code == 0, result.stderr
    fine, bad, _ = (line["sampling"] for line in result.lines)
    assert "failures" not in fine
    assert bad["should_sample"] is False
    [failure] = bad["failures"]
    assert failure["plugin"] == "dict-on-bad" and failure["hook"] == "should_sample"
    assert failure["problem"] == "wrong-type"
    assert failure["message"].startswith("sampler 'dict-on-bad' returned dict, but should_sample must return")
