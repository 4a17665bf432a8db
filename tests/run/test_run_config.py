"""``loopai run``: the tasks table from a file or the configuration, and exit 2 for every usage error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopai import ConfigError
from loopai.config import load_tasks, parse_config, parse_tasks


def _source(tmp_path: Path, kit) -> Path:
    return kit.write_lines(tmp_path / "in.jsonl", [kit.make_record(output={"label": "nope"})])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[tasks."{a}"]\nsampling_rate = 1.5\n', "tasks.toml:2: {a}.sampling_rate: must be <= 1 (got 1.5)"),
        ('[tasks."{a}"]\naccuracy_threshold = -0.1\n', "tasks.toml:2: {a}.accuracy_threshold: must be >= 0"),
        ('[tasks."{a}"]\nlatency_threshold_ms = 0\n', "tasks.toml:2: {a}.latency_threshold_ms: must be > 0"),
        ('[tasks."{a}"]\nwindow = 0\n', "tasks.toml:2: {a}.window: must be >= 1"),
        ('[tasks."{a}"]\nsampling_rate = "high"\n', "tasks.toml:2: {a}.sampling_rate: "),
        ('[tasks."{a}"]\noutput_schema = 3\n', "tasks.toml:2: {a}.output_schema: "),
        (
            '[tasks."{a}"]\nsamplng_rate = 0.5\n',
            "tasks.toml:2: {a}.samplng_rate: is not a known setting; did you mean 'sampling_rate'?",
        ),
        (
            '[tasks."{a}"]\nrate = 0.5\n',
            "tasks.toml:2: {a}.rate: is not a known setting; did you mean 'sampling_rate'?",
        ),
        ("[tasks.sentiment]\nsampling_rate = 0.5\n", "tasks.toml:1: sentiment: a task id must be a UUID"),
        ('[tasks]\n"{a}" = 5\n', "tasks.toml:2: {a}: must be a table (an object in JSON) (got 5)"),
        ("[tasks\n", "tasks.toml:1:7: invalid TOML: Expected"),
    ],
)
def test_a_bad_tasks_file_is_exit_2_naming_file_and_field(
    tmp_path: Path, kit, loopai, text: str, expected: str
) -> None:
    (tmp_path / "tasks.toml").write_text(text.format(a=kit.TASK_A), encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)), "--tasks", "tasks.toml")

    assert result.code == 2
    assert expected.format(a=kit.TASK_A) in result.stderr
    assert result.stdout == ""


def test_a_tasks_files_problems_are_said_in_the_files_order(tmp_path: Path, kit, loopai) -> None:
    text = f'[tasks."{kit.TASK_A}"]\nwindow = 0\nsampling_rate = 2\n[tasks."{kit.TASK_B}"]\nwindow = -1\n'
    (tmp_path / "tasks.toml").write_text(text, encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)), "--tasks", "tasks.toml")

    assert [line.split(": ")[0] for line in result.stderr.splitlines()] == [
        "tasks.toml:2",
        "tasks.toml:3",
        "tasks.toml:5",
    ]


def test_a_json_tasks_file_in_either_shape(tmp_path: Path, kit) -> None:
    settings = {"name": "a", "sampling_rate": 0.5}
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({kit.TASK_A: settings}), encoding="utf-8")
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([{"task_id": kit.TASK_A, **settings}]), encoding="utf-8")

    assert load_tasks(keyed) == load_tasks(listed)
    (task,) = load_tasks(keyed).values()
    assert task.name == "a" and task.sampling_rate == 0.5 and task.window == 50


def test_one_task_written_twice_in_two_cases_is_refused_naming_both(tmp_path: Path, kit) -> None:
    # UUIDs are read whatever their case: the second entry would silently replace the first.
    twice = tmp_path / "tasks.toml"
    twice.write_text(
        f'[tasks."{kit.TASK_A}"]\nname = "a"\n\n[tasks."{kit.TASK_A.upper()}"]\nname = "b"\n', encoding="utf-8"
    )

    with pytest.raises(ConfigError) as refused:
        load_tasks(twice)

    (problem,) = refused.value.problems
    assert problem == (
        f"{twice}:1: tasks: {kit.TASK_A} and {kit.TASK_A.upper()} are the same task id (a UUID, whatever its "
        "case): keep one entry"
    )
    with pytest.raises(ConfigError, match="are the same task id"):
        parse_config({"tasks": {kit.TASK_A: {}, kit.TASK_A.upper(): {}}})


def test_a_tasks_file_that_starts_with_a_byte_order_mark_is_read(tmp_path: Path, kit) -> None:
    marked = tmp_path / "tasks.toml"  # as some Windows editors save UTF-8
    marked.write_bytes(b"\xef\xbb\xbf" + f'[tasks."{kit.TASK_A}"]\nname = "a"\n'.encode())

    (task,) = load_tasks(marked).values()

    assert task.name == "a"


def test_bad_json_tasks_name_the_place(tmp_path: Path) -> None:
    broken = tmp_path / "tasks.json"
    broken.write_text('{"a": ', encoding="utf-8")

    with pytest.raises(ConfigError, match=r"tasks.json:1:7: invalid JSON"):
        load_tasks(broken)
    with pytest.raises(ConfigError, match=r"\[0\]: each task needs a task_id"):
        parse_tasks([{"name": "x"}], "t.json")
    with pytest.raises(ConfigError, match="must be a table keyed by task_id"):
        parse_tasks("x", "t.json")


def test_a_missing_tasks_file_is_exit_2(tmp_path: Path, kit, loopai) -> None:
    result = loopai(str(_source(tmp_path, kit)), "--tasks", "absent.toml")

    assert result.code == 2
    assert "absent.toml: cannot be read" in result.stderr


def test_the_tasks_section_of_the_configuration(tmp_path: Path, kit, loopai) -> None:
    config = tmp_path / "loopai.toml"
    config.write_text(kit.tasks_toml(**{kit.TASK_A: {"output_schema": kit.OUTPUT_SCHEMA}}), encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)))

    assert result.code == 0, result.stderr
    assert result.lines[0]["validation"]["is_valid"] is False  # the schema came from loopai.toml


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_a_task_schema_that_is_not_a_json_schema_is_said_at_start(tmp_path: Path, kit, loopai, workers) -> None:
    broken = {"type": "strin"}
    (tmp_path / "tasks.toml").write_text(
        kit.tasks_toml(**{kit.TASK_A: {"name": "alpha", "output_schema": broken}}), encoding="utf-8"
    )

    result = loopai(str(_source(tmp_path, kit)), "--tasks", "tasks.toml", "--workers", workers)

    warning = f"json-schema-validator: task 'alpha' ({kit.TASK_A}): output_schema is not a valid JSON Schema ("
    assert result.stderr.count(warning) == 1, result.stderr  # once, whatever the number of workers
    assert result.stderr.index(warning) < result.stderr.index("loopai run:")  # said at start-up
    assert "every record of the task is judged invalid until it is fixed" in result.stderr
    assert result.lines[0]["validation"]["is_valid"] is False


def test_a_task_schema_whose_remote_ref_will_not_be_fetched_is_said_at_start(tmp_path: Path, kit, loopai) -> None:
    remote = {
        "$id": "https://schemas.example.com/answer.json",  # its own id: a $ref to it is no fetch
        "type": "object",
        "properties": {
            "label": {"$ref": "https://elsewhere.example/label.json#/defs/label"},
            "again": {"$ref": "https://schemas.example.com/answer.json"},
        },
    }
    (tmp_path / "tasks.toml").write_text(
        kit.tasks_toml(**{kit.TASK_A: {"name": "alpha", "output_schema": remote}}), encoding="utf-8"
    )

    result = loopai(str(_source(tmp_path, kit)), "--tasks", "tasks.toml")

    warning = (
        f"json-schema-validator: task 'alpha' ({kit.TASK_A}): output_schema cannot be applied: remote $ref "
        "https://elsewhere.example/label.json not fetched: remote refs are off"
    )
    assert result.stderr.count(warning) == 1, result.stderr
    assert result.stderr.index(warning) < result.stderr.index("loopai run:")  # said at start-up
    assert "answer.json not fetched" not in result.stderr


def test_a_task_schema_that_refers_to_a_file_is_said_at_start_with_what_works(tmp_path: Path, kit, loopai) -> None:
    (tmp_path / "label.json").write_text('{"type": "object"}', encoding="utf-8")  # never read
    (tmp_path / "tasks.toml").write_text(
        kit.tasks_toml(**{kit.TASK_A: {"name": "alpha", "output_schema": {"$ref": "label.json"}}}), encoding="utf-8"
    )

    result = loopai(str(_source(tmp_path, kit)), "--tasks", "tasks.toml")

    why = (
        "$ref label.json not followed: only http(s) documents are fetched, never files; put the schema it names "
        'under "$defs" and refer to it as "#/$defs/NAME", or inline it'
    )
    said = f"json-schema-validator: task 'alpha' ({kit.TASK_A}): output_schema cannot be applied: {why}"
    assert result.stderr.count(said) == 1, result.stderr
    assert result.stderr.index(said) < result.stderr.index("loopai run:")  # said at start-up
    assert "remote refs are off" not in result.stderr + result.stdout  # no advice that cannot work


def test_a_tasks_file_wins_over_the_configuration(tmp_path: Path, kit, loopai) -> None:
    (tmp_path / "loopai.toml").write_text(
        kit.tasks_toml(**{kit.TASK_A: {"output_schema": kit.OUTPUT_SCHEMA}}), encoding="utf-8"
    )
    (tmp_path / "tasks.toml").write_text(kit.tasks_toml(**{kit.TASK_A: {"name": "loose"}}), encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)), "--tasks", "tasks.toml")

    assert result.lines[0]["validation"]["is_valid"] is True
    assert "loose" in result.stderr


def test_a_bad_tasks_section_in_the_configuration_is_exit_2(tmp_path: Path, kit, loopai) -> None:
    (tmp_path / "loopai.toml").write_text(f'[tasks."{kit.TASK_A}"]\nsampling_rate = 2\n', encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)))

    assert result.code == 2
    assert f"loopai.toml:2: tasks.{kit.TASK_A}.sampling_rate: must be <= 1 (got 2)" in result.stderr


def test_a_bad_configuration_is_exit_2(tmp_path: Path, kit, loopai) -> None:
    (tmp_path / "bad.toml").write_text("[plugins.samplers.percentage-sampler]\npriority = 'high'\n", encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)), "--config", "bad.toml")

    assert result.code == 2
    assert "bad.toml:2: samplers.percentage-sampler.priority" in result.stderr


def test_a_refused_configuration_says_every_error_at_once_plugin_settings_too(tmp_path: Path, kit, loopai) -> None:
    """As ``loopai config check`` does: one round of fixes, not one per error kind."""
    (tmp_path / "loopai.toml").write_text(
        'strict = "yes"\n'
        "[plugins.samplers.percentage-sampler.configuration]\n"
        "sampling_rate = 1.5\n"
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        'url = "ftp://x"\n'
        'secret = "${LOOPAI_TEST_UNSET_SECRET}"\n',
        encoding="utf-8",
    )

    result = loopai(str(_source(tmp_path, kit)), "-o", "out.jsonl")

    assert (result.code, result.stdout) == (2, "")
    assert [line.split(": ")[:2] for line in result.stderr.splitlines()] == [
        ["loopai.toml:1", "strict"],
        ["loopai.toml:3", "samplers.percentage-sampler.sampling_rate"],
        ["loopai.toml:5", "webhook_handlers.http-webhook-handler.url"],
        ["loopai.toml:6", "webhook_handlers.http-webhook-handler.configuration.secret"],
    ]
    assert "LOOPAI_TEST_UNSET_SECRET is not set" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_broken_plugin_the_configuration_names_is_exit_2_strict_or_not(tmp_path: Path, kit, loopai) -> None:
    (tmp_path / "loopai.toml").write_text(
        '[plugins.validators.ghost]\nfactory = "no_such_module_for_loopai:Ghost"\n', encoding="utf-8"
    )

    strict = loopai(str(_source(tmp_path, kit)), "--strict")
    lenient = loopai(str(_source(tmp_path, kit)))

    assert strict.code == 2 and "no_such_module_for_loopai" in strict.stderr
    assert (lenient.code, lenient.stdout) == (2, "")  # named in the file: a configuration error, nothing processed
    assert "loopai.toml:2: validators.ghost.factory: cannot import 'no_such_module_for_loopai:Ghost'" in lenient.stderr
    assert "nothing was processed" in lenient.stderr


@pytest.mark.parametrize("flags", [(), ("--strict",), pytest.param(("--workers", "2"), marks=pytest.mark.processes)])
def test_a_plugin_the_configuration_names_whose_startup_fails_is_exit_2_said_once(
    tmp_path: Path, kit, config, loopai, flags: tuple[str, ...]
) -> None:
    config(validators={"rules": "FailsToStart"})
    (tmp_path / "out.jsonl").write_text("an earlier run's results\n", encoding="utf-8")

    result = loopai(str(_source(tmp_path, kit)), "--no-autoload", "-o", "out.jsonl", *flags)

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr.count("ConnectionError: rules service unreachable") == 1, result.stderr
    if "--strict" not in flags:  # strict mode refuses any problem as StartupError says it
        assert "loopai.toml:1: validators.rules: plugin 'rules' failed to start and was disabled" in result.stderr
        assert "loopai run: nothing was processed" in result.stderr
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "an earlier run's results\n"  # left alone


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_concurrency_is_exit_2(tmp_path: Path, kit, loopai, value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        loopai(str(_source(tmp_path, kit)), "--concurrency", value)
    assert stopped.value.code == 2


def _sampling(result) -> list[tuple[bool, str]]:
    return [(line["sampling"]["should_sample"], line["sampling"]["reason"]) for line in result.lines]


def test_a_seed_makes_the_sampling_reproducible(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(200)])

    first = loopai(str(source), "--seed", "7")
    again = loopai(str(source), "--seed", "7", "--concurrency", "4")
    other = loopai(str(source), "--seed", "8")

    assert first.code == again.code == other.code == 0, first.stderr
    assert _sampling(first) == _sampling(again)
    assert _sampling(first) != _sampling(other)
    chosen = [line["sampling"]["sampler_type"] for line in first.lines]
    assert 5 <= chosen.count("percentage-sampler") <= 40  # the default rate: 0.1 of 200


def test_the_seed_wins_over_the_configuration(tmp_path: Path, kit, loopai) -> None:
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(50)])
    (tmp_path / "loopai.toml").write_text(
        "[plugins.samplers.percentage-sampler.configuration]\nseed = 1\nsampling_rate = 0.5\n", encoding="utf-8"
    )

    configured = loopai(str(source))
    seeded = loopai(str(source), "--seed", "2")
    (tmp_path / "loopai.toml").write_text(
        "[plugins.samplers.percentage-sampler.configuration]\nseed = 2\nsampling_rate = 0.5\n", encoding="utf-8"
    )

    assert _sampling(seeded) != _sampling(configured)
    assert _sampling(seeded) == _sampling(loopai(str(source)))
    by_percentage = [reason for sampled, reason in _sampling(seeded) if "random value" in reason]
    assert by_percentage and all("sampling rate 0.5" in reason for reason in by_percentage)  # other settings kept


def test_a_seed_without_a_sampler_that_takes_one_is_exit_2(tmp_path: Path, kit, loopai) -> None:
    result = loopai(str(_source(tmp_path, kit)), "--seed", "7", "--disable-plugins", "percentage-sampler")

    assert result.code == 2
    assert "--seed: no enabled sampler takes a seed" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["many", "1.5"])
def test_a_bad_seed_is_exit_2(tmp_path: Path, kit, loopai, value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        loopai(str(_source(tmp_path, kit)), "--seed", value)
    assert stopped.value.code == 2


@pytest.mark.parametrize("outbox", ["configured", "next to the output"])
def test_an_output_that_cannot_be_written_is_exit_2(
    tmp_path: Path, kit, loopai, monkeypatch: pytest.MonkeyPatch, outbox: str
) -> None:
    if outbox != "configured":
        monkeypatch.delenv("LOOPAI_OUTBOX")  # then the outbox would go next to the output: the output is named
    output = tmp_path / "no" / "such" / "dir" / "out.jsonl"

    result = loopai(str(_source(tmp_path, kit)), "--output", str(output))

    assert result.code == 2
    assert result.stderr == f"{output}: cannot be written: its folder {output.parent} does not exist; create it first\n"
    assert not (tmp_path / "no").exists()


def test_a_tasks_file_takes_boolean_schemas(tmp_path) -> None:
    path = tmp_path / "tasks.toml"
    path.write_text(
        '[tasks."6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"]\ninput_schema = true\noutput_schema = false\n', encoding="utf-8"
    )
    [settings] = load_tasks(path).values()
    assert (settings.input_schema, settings.output_schema) == (True, False)
    path.write_text('[tasks."6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"]\noutput_schema = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="output_schema"):
        load_tasks(path)


@pytest.mark.parametrize("how", ["--plugins", "LOOPAI_PLUGINS"])
def test_a_misspelt_allow_list_is_refused_with_the_closest_name(
    tmp_path: Path, kit, loopai, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # It turned every plugin off: every record valid, exit 0.
    source = _source(tmp_path, kit)
    if how == "--plugins":
        result = loopai(str(source), "-o", "out.jsonl", "--plugins", "json-schema-validatr,percentage-sampler")
    else:
        monkeypatch.setenv("LOOPAI_PLUGINS", "json-schema-validatr")
        result = loopai(str(source), "-o", "out.jsonl")

    assert result.code == 2, result.stderr
    assert (
        f"{how}: 'json-schema-validatr' matches no installed or configured plugin; did you mean "
        "'json-schema-validator'?\nloopai run: nothing was processed\n"
    ) in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
