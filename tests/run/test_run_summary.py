"""``loopai run``'s summary: the table on stderr, or JSON with ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopai.run import Histogram

# The tables with --workers 2 (worker processes) are checked on one Python only, as the tests marked processes.
WORKERS = ["1", pytest.param("2", marks=pytest.mark.processes)]


def _records(kit) -> list:
    return [
        *(kit.make_record(kit.TASK_A, output="ok", latency_ms=float(ms)) for ms in range(1, 21)),
        *(kit.make_record(kit.TASK_B, output="no", latency_ms=100.0) for _ in range(5)),
        "not json",
    ]


def _setup(tmp_path: Path, kit, config) -> Path:
    config(validators={"ok": "OutputIsOk"}, samplers={"never": "Never"}, handlers={"rec": "Recorder"})
    (tmp_path / "tasks.toml").write_text(kit.tasks_toml(**{kit.TASK_A: {"name": "alpha"}}), encoding="utf-8")
    return kit.write_lines(tmp_path / "in.jsonl", _records(kit))


def test_the_summary_table(tmp_path: Path, kit, loopai, config) -> None:
    source = _setup(tmp_path, kit, config)

    result = loopai(str(source), "--no-autoload", "--tasks", "tasks.toml")

    assert result.code == 1
    warning, text = result.stderr.split("\n", 1)  # TASK_B is not in the table: said before the summary
    assert warning.startswith(f"warning: 5 record(s) of task {kit.TASK_B} are not in the tasks table")
    assert text.startswith("loopai run: 26 line(s), 25 record(s), 1 malformed")
    tables = {block.split()[0]: block for block in text.split("\n\n")}  # each table by its first column's title
    rows = {line.split()[0]: line.split() for line in tables["TASK"].splitlines()}
    header = ["TASK", "RECORDS", "VALID", "SAMPLED", "EVENTS", "RAISED", "P50", "MS", "P95", "MS", "BREACHES"]
    assert rows["TASK"] == header
    assert rows["alpha"] == ["alpha", "20", "100.0%", "0", "40", "10.0", "19.0", "-"]
    assert rows[kit.TASK_B] == [kit.TASK_B, "5", "0.0%", "0", "10", "100", "100", "-"]
    plugins = {line.split()[0]: line.split() for line in tables["PLUGIN"].splitlines()}
    assert plugins["ok"][:4] == ["ok", "validator", "25", "0"]
    assert plugins["never"][:4] == ["never", "sampler", "25", "0"]
    assert plugins["rec"][:4] == ["rec", "webhook-handler", "50", "0"]
    # Every raised event of a type a handler takes was delivered to it, in the background, before the summary.
    deliveries = [line.split() for line in tables["HANDLER"].splitlines()]
    assert deliveries == [["HANDLER", "DELIVERED", "RETRIED", "PENDING", "DEAD"], ["rec", "50", "0", "0", "0"]]
    assert "EVENTS RAISED: events the records raised" in text
    assert "still pending" not in text and "dead (refused, or retries used up)" not in text
    hooks = {line.split()[0]: line.split() for line in tables["HOST"].splitlines()}
    assert hooks["host.emit"][1] == "50"
    header = next(line for line in text.splitlines() if line.startswith("TASK"))
    alpha = next(line for line in text.splitlines() if line.startswith("alpha"))
    assert header.index("RECORDS") + len("RECORDS") == alpha.index(" 20") + 3  # numbers aligned right


def test_json_summary_goes_to_stdout_when_results_go_to_a_file(tmp_path: Path, kit, loopai, config) -> None:
    source = _setup(tmp_path, kit, config)

    result = loopai(str(source), "--no-autoload", "--tasks", "tasks.toml", "--json", "--output", "out.jsonl")

    summary = json.loads(result.stdout)
    assert (summary["lines"], summary["records"], summary["malformed"]) == (26, 25, 1)
    assert summary["interrupted"] is False
    alpha = next(t for t in summary["tasks"] if t["name"] == "alpha")
    assert alpha["records"] == 20 and alpha["valid_percent"] == 100.0
    assert alpha["latency_ms"] == {"p50": 10.0, "p95": 19.0}
    assert alpha["events_by_type"] == {"program.execution.completed": 20, "validation.completed": 20}
    plugins = {p["name"]: p for p in summary["plugins"]}
    rec = plugins["rec"]
    assert (rec["name"], rec["kind"], rec["calls"], rec["failures"]) == ("rec", "webhook-handler", 50, 0)
    assert rec["seconds"] >= 0  # measured by the host, around each call
    (delivery,) = summary["deliveries"]
    assert (delivery["handler"], delivery["delivered"], delivery["pending"], delivery["dead"]) == ("rec", 50, 0, 0)
    assert summary["undelivered"] == {"pending": 0, "dead": 0, "pending_elsewhere": 0}
    assert summary["deliver_command"] is None and summary["replay_command"] is None
    assert summary["hooks"]["validate"]["calls"] == 25
    assert "TASK" not in result.stderr  # no table with --json


def test_json_summary_goes_to_stderr_when_results_go_to_stdout(tmp_path: Path, kit, loopai, config) -> None:
    source = _setup(tmp_path, kit, config)

    result = loopai(str(source), "--no-autoload", "--json")

    assert len(result.lines) == 26
    assert json.loads(result.stderr)["records"] == 25


@pytest.mark.parametrize("workers", WORKERS)
def test_plugin_failures_are_counted_with_the_first_reason(tmp_path: Path, kit, loopai, plugins, workers: str) -> None:
    name = f"{plugins}_boom"
    (tmp_path / "modules" / f"{name}.py").write_text(
        "import loopai\n"
        "class Boom(loopai.ValidatorPlugin):\n"
        "    def validate(self, execution, context):\n"
        "        raise RuntimeError('nope')\n",
        encoding="utf-8",
    )
    (tmp_path / "loopai.toml").write_text(f'[plugins.validators.boom]\nfactory = "{name}:Boom"\n', encoding="utf-8")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(3)])

    result = loopai(str(source), "--no-autoload", "--json", "-o", "out.jsonl")

    boom = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "boom")
    assert (boom["calls"], boom["failures"]) == (3, 3)
    at = f"(at {tmp_path / 'modules' / name}.py:4)"  # the plugin's own line that raised
    assert boom["first_failure"] == f"validator 'boom' raised RuntimeError: nope {at}"
    # The table counts; the line under it says why.
    table = loopai(str(source), "--no-autoload", "-o", "out.jsonl", "--workers", workers).stderr
    reason = f"FIRST FAILURE of each plugin that failed:\n  validator 'boom' raised RuntimeError: nope {at} (3 of 3"
    assert reason in table


@pytest.mark.parametrize("workers", WORKERS)
def test_the_summary_says_why_the_first_malformed_line_is_not_a_record(
    tmp_path: Path, kit, loopai, workers: str
) -> None:
    cut = json.dumps(kit.make_record())[:40]  # a line cut short inside a string, as a truncated file ends
    lines = [kit.make_record(kit.TASK_B), kit.make_record(), cut, kit.make_record(), "[1]", kit.make_record(kit.TASK_B)]
    source = kit.write_lines(tmp_path / "in.jsonl", lines)
    why = "line 3: invalid JSON: EOF while parsing a string (column 40)"

    as_json = json.loads(loopai(str(source), "--json", "-o", "out.jsonl").stdout)

    assert as_json["malformed"] == 2 and as_json["first_malformed"] == why
    # With workers, each has some of the lines: the first of all is said.
    table = loopai(str(source), "-o", "out.jsonl", "--workers", workers).stderr
    assert f"FIRST MALFORMED LINE (each has an error line in the results):\n  {why}\n" in table
    clean = kit.write_lines(tmp_path / "clean.jsonl", [kit.make_record()])
    assert "MALFORMED" not in loopai(str(clean), "-o", "out.jsonl").stderr
    only_malformed = loopai(
        str(kit.write_lines(tmp_path / "bad.jsonl", ['"text"', '{"id": 1'])), "-o", "out.jsonl"
    ).stderr
    assert "FIRST MALFORMED LINE" in only_malformed  # and no tables of zeros: nothing was judged
    assert "PLUGIN" not in only_malformed and "HOST CALL" not in only_malformed and "HANDLER" not in only_malformed


def test_histogram_quantiles_within_half_a_percent() -> None:
    histogram = Histogram()
    assert histogram.quantile(0.5) is None
    for value in range(1, 100_001):
        histogram.add(value / 10)
    assert len(histogram.counts) <= 4 * 900  # at most 900 keys per decade (0.1 to 10,000: 4 decades)
    assert abs(histogram.quantile(0.5) - 5000) / 5000 < 0.005
    assert abs(histogram.quantile(0.95) - 9500) / 9500 < 0.005
    assert histogram.quantile(1.0) == 10000
