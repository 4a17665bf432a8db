"""Every endpoint of a real ``loopai serve``, through the real client and plain HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx
import pytest

from loopai.client import LoopaiAPIError

pytestmark = pytest.mark.serve


def test_health_answers_with_the_installed_version(server):
    import loopai

    assert httpx.get(server.url + "/health").json() == {"status": "ok", "version": loopai.__version__}
    assert httpx.get(server.url + "/api/v1/health/live").json() == {"status": "ok"}


def test_ready_once_plugins_started_and_the_outbox_and_state_answer(server):
    with server.client() as client:
        ready = client.ready()
    assert ready.status == "ready"
    assert ready.checks == {"plugins": "ok", "outbox": "ok", "state": "ok", "delivery": "ok"}


def test_plugins_are_the_objects_loopai_plugins_list_json_prints(server):
    listed = httpx.get(server.url + "/api/v1/plugins").json()
    env = {**_clean_env(), "LOOPAI_CACHE_DIR": str(server.home / "cache"), "PYTHONPATH": str(server.home)}
    printed = subprocess.run(
        [sys.executable, "-m", "loopai", "plugins", "list", "--json", "--load", "--config", "loopai.toml"],
        cwd=server.home,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed == json.loads(printed.stdout)
    assert {(p["name"], p["status"]) for p in listed} >= {
        ("json-schema-validator", "ok"),
        ("percentage-sampler", "ok"),
    }
    with server.client() as client:
        only = client.plugins(kind="sampler")
    assert [p.name for p in only] == ["percentage-sampler"]


def _clean_env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("LOOPAI_")}


def test_validate_uses_the_tasks_schemas_and_names_what_is_wrong(server, kit):
    with server.client() as client:
        good = client.validate(kit.record(output={"label": "positive"}))
        bad = client.validate(kit.record(output={"label": "maybe"}))
    assert good.is_valid and good.results[0].validator_type == "json-schema-validator"
    assert not bad.is_valid
    assert any("label" in where for where in bad.results[0].errors), bad.results[0].errors


def test_validate_with_a_context_of_the_callers_own(server, kit):
    context = {"task_id": kit.OTHER_TASK, "output_schema": {"type": "object", "required": ["score"]}}
    body = {"execution": kit.record(task_id=kit.OTHER_TASK, output={"label": "x"}), "context": context}
    answer = httpx.post(server.url + "/api/v1/validate", json=body)
    assert answer.status_code == 200
    assert answer.json()["is_valid"] is False  # no score: the given schema, not the table's, judged it


def test_sample_counts_the_task_and_applies_its_rate(server, kit):
    with server.client() as client:
        decisions = [client.sample(kit.record()) for _ in range(3)]
        elsewhere = client.sample(kit.record(task_id=kit.OTHER_TASK))
    assert all(d.should_sample and d.sampler_type == "percentage-sampler" for d in decisions)  # rate 1.0
    assert elsewhere.reason  # the sampler's own rate (0.1) decided, and said why


def test_an_event_is_acknowledged_202_once_stored_and_reaches_the_handler(server, kit):
    event_id = str(uuid.uuid4())
    answer = httpx.post(
        server.url + "/api/v1/events",
        json={"event_id": event_id, "event_type": "task.created", "payload": {"name": "new task"}},
    )
    assert answer.status_code == 202
    assert answer.json() == {"event_id": event_id, "handlers": ["recorder"]}
    assert kit.eventually(lambda: any(e["event_id"] == event_id for e in server.events()))
    with server.client() as client:
        again = client.emit({"event_id": event_id, "event_type": "task.created"})
    assert again.handlers == []  # delivered before: not again
    assert sum(e["event_id"] == event_id for e in server.events()) == 1


def test_batch_validate_answers_with_upstreams_dto_and_the_tasks_schemas(server, kit):
    items = [
        {"id": "a", "input": {"q": 1}, "output": {"label": "positive"}},
        {"id": "b", "input": {"q": 2}, "output": {"label": "nope"}},
        {"id": "c", "input": {"q": 3}, "output": {"label": "negative"}, "expected_output": {"label": "negative"}},
    ]
    answer = httpx.post(server.url + "/api/v1/batch/validate", json={"task_id": kit.TASK, "items": items}).json()
    assert set(answer) == {
        "batch_id",
        "task_id",
        "total_items",
        "valid_count",
        "invalid_count",
        "accuracy_rate",
        "results",
        "total_duration_ms",
    }
    assert (answer["task_id"], answer["total_items"], answer["valid_count"], answer["invalid_count"]) == (
        kit.TASK,
        3,
        2,
        1,
    )
    assert answer["accuracy_rate"] == pytest.approx(2 / 3)
    assert [(r["id"], r["is_valid"]) for r in answer["results"]] == [("a", True), ("b", False), ("c", True)]
    assert set(answer["results"][0]) == {"id", "is_valid", "message", "confidence_score"}
    assert "label" in answer["results"][1]["message"]  # where the output is wrong


def test_batch_validate_of_a_task_that_is_not_in_the_table_is_404(server, kit):
    with pytest.raises(LoopaiAPIError) as refused:
        with server.client() as client:
            client.batch_validate(kit.OTHER_TASK, [{"id": "a", "output": {}}])
    assert (refused.value.status, refused.value.code) == (404, "TASK_NOT_FOUND")


def test_batch_run_results_are_loopai_runs_output_lines_with_the_items_id(server, tmp_path, kit):
    records = [
        kit.record(),
        kit.record(output={"label": "maybe"}),
        kit.record(status="error", output=None, error_message="x"),
    ]
    items = [{"id": f"item-{n}", "execution": r} for n, r in enumerate(records)]
    answer = httpx.post(server.url + "/api/v1/batch/run", json={"items": items, "max_concurrency": 2}).json()
    results = answer["results"]
    assert [r["id"] for r in results] == ["item-0", "item-1", "item-2"]
    assert [r["line"] for r in results] == [1, 2, 3]
    lines = _loopai_run(server, tmp_path, records)
    for ours, theirs in zip(results, lines, strict=True):
        ours = {k: v for k, v in ours.items() if k != "id"}
        assert set(ours) == set(theirs)
        for field in ("execution_id", "task_id", "validation", "events", "error"):
            assert ours[field] == theirs[field], field
        assert ours["sampling"]["should_sample"] == theirs["sampling"]["should_sample"]
    summary = answer["summary"]
    assert (summary["items"], summary["completed"], summary["valid"], summary["invalid"]) == (3, 3, 1, 2)
    assert summary["tasks"][0]["name"] == "sentiment" and summary["tasks"][0]["records"] == 3


def _loopai_run(server, tmp_path, records):
    source = tmp_path / "records.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    env = {
        **_clean_env(),
        "LOOPAI_OUTBOX": str(tmp_path / "outbox.sqlite3"),
        "LOOPAI_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(server.home),
        "LOOPAI_TEST_EVENTS": str(tmp_path / "events.jsonl"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "loopai", "run", str(source), "--config", str(server.home / "loopai.toml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_batch_run_with_a_concurrency_outside_1_to_100_is_refused_as_upstream_does(server, kit):
    for value in (0, 101):
        body = {"items": [{"execution": kit.record()}], "max_concurrency": value}
        answer = httpx.post(server.url + "/api/v1/batch/run", json=body)
        assert answer.status_code == 400 and answer.json()["code"] == "INVALID_CONCURRENCY"
        streamed = httpx.post(
            server.url + "/api/v1/batch/run",
            params={"max_concurrency": value},
            content=json.dumps(kit.record()).encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert streamed.status_code == 400 and streamed.json()["code"] == "INVALID_CONCURRENCY"


def test_stop_on_first_error_takes_no_item_after_the_first_failure(server, kit):
    records = [kit.record(), kit.record(output={"label": "maybe"})] + [kit.record() for _ in range(50)]
    items = [{"id": str(n), "execution": r} for n, r in enumerate(records)]
    body = {"items": items, "max_concurrency": 1, "stop_on_first_error": True}
    answer = httpx.post(server.url + "/api/v1/batch/run", json=body).json()
    assert [r["id"] for r in answer["results"]] == ["0", "1"]
    assert answer["summary"]["stopped_by"].startswith("stop_on_first_error: item 2")
    assert answer["summary"]["completed"] == 2


def test_a_bad_ndjson_line_is_an_error_result_and_the_others_go_on(server, kit):
    lines = [
        json.dumps(kit.record()),
        "{not json",
        json.dumps({"execution": kit.record(), "surprise": 1}),
        json.dumps(kit.record()),
    ]
    with server.client() as client:
        results = list(client.stream_batch_run(lines))
    assert [r.line for r in results] == [1, 2, 3, 4]
    assert results[0].error is None and results[3].error is None
    assert "invalid JSON" in results[1].error or "JSON" in results[1].error
    assert "surprise" in results[2].error
    assert results[1].validation is None and results[1].id is None


def test_unknown_program_ids_and_tasks_are_judged_with_plain_contexts(server, kit):
    with server.client() as client:
        answer = client.validate(kit.record(task_id=kit.OTHER_TASK, program_id=str(uuid.uuid4()), output={"any": 1}))
    assert answer.is_valid  # no schema for a task outside the table: the run status alone is checked


def test_program_is_required_in_an_execution_record(server, kit):
    broken = kit.record()
    del broken["program_id"]
    answer = httpx.post(server.url + "/api/v1/validate", json={"execution": broken})
    assert answer.status_code == 422
    assert answer.json()["details"]["errors"][0]["field"] == "execution.program_id"
    assert kit.PROGRAM not in answer.text
