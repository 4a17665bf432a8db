"""API keys, where the service may listen, body and batch limits, refusals that name the field, and
secrets that never leave the process."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from loopai.client import LoopaiAPIError

pytestmark = pytest.mark.serve

KEY = "k3y-for-tests-0001"
OTHER_KEY = "second-key-0002"
HOOK_SECRET = "inbound-s3cret-xyz"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, kit):
    """A service with two API keys (one from the configuration, one through ${VAR}), small limits."""
    config = kit.standard_config(
        serve={
            "api_keys": [KEY, "${SECOND_KEY}"],
            "inbound_secret": HOOK_SECRET,
            "max_body_mb": 0.01,
            "max_batch_items": 5,
        }
    )
    server = kit.launch(tmp_path_factory.mktemp("guarded"), config=config, env={"SECOND_KEY": OTHER_KEY})
    yield server
    server.stop()


def test_every_api_route_needs_a_key_and_a_refusal_says_nothing_about_why(guarded, kit):
    body = {"execution": kit.record()}
    missing = httpx.post(guarded.url + "/api/v1/validate", json=body)
    wrong = httpx.post(guarded.url + "/api/v1/validate", json=body, headers={"Authorization": "Bearer nope"})
    unknown_path = httpx.get(guarded.url + "/api/v1/no-such-thing")
    for refused in (missing, wrong, unknown_path):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert {k: v for k, v in refused.json().items() if k not in ("trace_id", "timestamp")} == {
            "code": "UNAUTHORIZED",
            "message": "authentication required: send Authorization: Bearer <key> or X-Api-Key: <key>",
            "details": None,
        }
    for path in ("/api/v1/plugins", "/api/v1/batch/run", "/api/v1/events", "/api/v1/sample"):
        assert httpx.post(guarded.url + path, json={}).status_code in (401, 405)


def test_a_key_is_accepted_as_bearer_or_x_api_key_from_the_file_or_a_variable(guarded, kit):
    body = {"execution": kit.record()}
    by_bearer = httpx.post(guarded.url + "/api/v1/validate", json=body, headers={"Authorization": f"Bearer {KEY}"})
    by_header = httpx.post(guarded.url + "/api/v1/validate", json=body, headers={"X-Api-Key": OTHER_KEY})
    assert by_bearer.status_code == by_header.status_code == 200
    with guarded.client(api_key=KEY) as client:
        assert client.validate(kit.record()).is_valid


def test_health_and_metrics_need_no_key(guarded):
    assert httpx.get(guarded.url + "/health").status_code == 200
    assert httpx.get(guarded.url + "/api/v1/health/ready").status_code == 200
    assert httpx.get(guarded.url + "/metrics").status_code == 200


def test_the_client_raises_the_services_code(guarded, kit):
    with guarded.client(api_key="wrong") as client, pytest.raises(LoopaiAPIError) as refused:
        client.validate(kit.record())
    with guarded.client(environ={}) as client, pytest.raises(LoopaiAPIError) as keyless:
        client.validate(kit.record())
    assert (refused.value.status, refused.value.code) == (401, "UNAUTHORIZED")
    assert refused.value.trace_id
    assert refused.value.message.endswith("(the key given was refused: check Client(api_key=...) or LOOPAI_API_KEY)")
    assert keyless.value.message.endswith("(no key was given: pass Client(api_key=...) or set LOOPAI_API_KEY)")


def test_a_body_over_max_body_mb_is_413_declared_or_chunked(guarded, kit):
    big = {"execution": kit.record(output={"label": "positive", "pad": "x" * 20_000})}
    headers = {"Authorization": f"Bearer {KEY}"}
    declared = httpx.post(guarded.url + "/api/v1/validate", json=big, headers=headers)
    assert declared.status_code == 413 and declared.json()["code"] == "PAYLOAD_TOO_LARGE"
    # max_body_mb = 0.01: said in bytes, not as 0.00999928 MB
    assert declared.json()["message"] == "the request body is larger than 10,485 bytes (max_body_mb)"

    def chunks():
        data = json.dumps(big).encode()
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    chunked = httpx.post(
        guarded.url + "/api/v1/validate",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_a_json_batch_over_max_batch_items_is_413_but_an_ndjson_upload_has_no_such_limit(guarded, kit):
    headers = {"Authorization": f"Bearer {KEY}"}
    items = [{"execution": {"program_id": kit.PROGRAM, "task_id": kit.TASK}} for _ in range(6)]
    too_many = httpx.post(guarded.url + "/api/v1/batch/run", json={"items": items}, headers=headers)
    assert too_many.status_code == 413 and too_many.json()["code"] == "BATCH_TOO_LARGE"
    upstream = {"task_id": kit.TASK, "items": [{"id": str(n), "output": {}} for n in range(6)]}
    assert httpx.post(guarded.url + "/api/v1/batch/validate", json=upstream, headers=headers).status_code == 413
    with guarded.client(api_key=KEY) as client:
        results = list(client.stream_batch_run({"execution": kit.record()} for _ in range(50)))
    assert len(results) == 50  # streamed line by line: beyond max_batch_items and max_body_mb (10 KB) in all


def test_malformed_json_and_wrong_fields_are_422_naming_the_field(guarded, kit):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    malformed = httpx.post(guarded.url + "/api/v1/validate", content=b'{"execution": ', headers=headers)
    assert malformed.status_code == 422 and malformed.json()["code"] == "VALIDATION_ERROR"
    assert "malformed JSON" in malformed.json()["message"]
    wrong = httpx.post(
        guarded.url + "/api/v1/validate", json={"execution": kit.record(task_id="not-a-uuid")}, headers=headers
    )
    assert wrong.status_code == 422
    assert wrong.json()["details"]["errors"][0]["field"] == "execution.task_id"
    assert wrong.json()["message"].startswith("execution.task_id:")
    typo = httpx.post(guarded.url + "/api/v1/validate", json={"execution": kit.record(), "contxt": {}}, headers=headers)
    assert typo.status_code == 422 and typo.json()["details"]["errors"][0]["field"] == "contxt"


def test_a_wrong_path_method_or_choice_says_what_was_meant(guarded):
    headers = {"Authorization": f"Bearer {KEY}"}
    typo = httpx.post(guarded.url + "/api/v1/valdate", json={}, headers=headers)
    nowhere = httpx.get(guarded.url + "/api/v1/nothing", headers=headers)
    method = httpx.get(guarded.url + "/api/v1/validate", headers=headers)
    event = httpx.post(guarded.url + "/api/v1/events", json={"event_type": "validation.faild"}, headers=headers)
    kind = httpx.get(guarded.url + "/api/v1/plugins", params={"kind": "validators"}, headers=headers)

    assert (typo.status_code, typo.json()["code"]) == (404, "NOT_FOUND")
    assert (
        typo.json()["message"] == "no such resource; did you mean '/api/v1/validate'? (every endpoint: /openapi.json)"
    )
    assert nowhere.json()["message"] == "no such resource (every endpoint: /openapi.json)"
    assert (method.status_code, method.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
    assert method.json()["message"] == "GET is not allowed on /api/v1/validate: use POST"
    assert event.status_code == 422 and "; did you mean 'validation.failed' or" in event.json()["message"]
    assert kind.status_code == 422 and kind.json()["message"].endswith("; did you mean 'validator'?")


def test_a_422_says_how_to_fix_the_common_mistakes(guarded, kit):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    bare = httpx.post(guarded.url + "/api/v1/sample", json=kit.record(), headers=headers)
    assert bare.status_code == 422
    assert 'send them inside it, as {"execution": {...}}' in bare.json()["message"]
    misspelt = httpx.post(guarded.url + "/api/v1/validate", json={"executoin": kit.record()}, headers=headers)
    assert misspelt.status_code == 422
    assert "'executoin' is not a field; did you mean 'execution'?" in misspelt.json()["message"]
    optional = httpx.post(  # an optional field misspelt: nothing is missing, the key is unknown
        guarded.url + "/api/v1/validate", json={"execution": kit.record(), "contxt": {}}, headers=headers
    )
    assert optional.status_code == 422
    assert optional.json()["message"].endswith("('contxt' is not a field; did you mean 'context'?)")
    nested = httpx.post(
        guarded.url + "/api/v1/batch/run",
        json={"items": [{"execution": kit.record(), "expected_outpt": 1}]},
        headers=headers,
    )
    assert nested.json()["message"].endswith("('expected_outpt' is not a field; did you mean 'expected_output'?)")
    bare_item = httpx.post(
        guarded.url + "/api/v1/batch/run", json={"items": [{"execution": kit.record()}, kit.record()]}, headers=headers
    )
    assert bare_item.status_code == 422
    assert bare_item.json()["message"].startswith("items[1].execution: Field required")
    assert 'are not fields of items[1]: send them inside it, as {"execution": {...}}' in bare_item.json()["message"]
    lines = "\n".join(json.dumps({"execution": kit.record()}) for _ in range(2))
    ndjson = {**headers, "Content-Type": "application/x-ndjson"}
    wrong_endpoint = httpx.post(guarded.url + "/api/v1/validate", content=lines, headers=ndjson)
    assert wrong_endpoint.status_code == 422
    assert "JSON Lines are read by /api/v1/batch/run" in wrong_endpoint.json()["message"]


def test_a_failing_plugin_is_a_report_not_a_traceback(launcher, kit):
    config = kit.standard_config(extra=f'[plugins.validators.broken]\nfactory = "{kit.MODULE}:Broken"\n')
    server = launcher(config=config)
    answer = httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()})
    assert answer.status_code == 200
    assert answer.json()["is_valid"] is False
    assert answer.json()["failures"][0]["plugin"] == "broken"
    assert "Traceback" not in answer.text and 'File "' not in answer.text


def test_secrets_appear_in_no_answer_and_no_log_line(guarded, kit):
    answers = [
        httpx.get(guarded.url + "/api/v1/plugins", headers={"X-Api-Key": KEY}),
        httpx.get(guarded.url + "/metrics"),
        httpx.get(guarded.url + "/openapi.json"),
        httpx.post(guarded.url + "/api/v1/validate", json={}, headers={"X-Api-Key": KEY}),
        httpx.post(guarded.url + "/api/v1/webhooks/receive", content=b"{}", headers={"X-Loopai-Signature": "sha256=0"}),
    ]
    text = "".join(answer.text for answer in answers) + guarded.log
    for secret in (KEY, OTHER_KEY, HOOK_SECRET):
        assert secret not in text


def test_without_keys_only_loopback_may_be_bound(tmp_path, kit):
    (tmp_path / "loopai.toml").write_text(kit.standard_config(), encoding="utf-8")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LOOPAI_")}
    env["LOOPAI_CACHE_DIR"] = str(tmp_path / "cache")
    refused = subprocess.run(
        [sys.executable, "-m", "loopai", "serve", "--host", "0.0.0.0", "--port", str(kit.free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "without API keys" in refused.stderr and "--insecure-no-auth" in refused.stderr


def test_strict_mode_refuses_to_start_with_a_broken_plugin(tmp_path, kit):
    config = kit.standard_config(extra=f'[plugins.validators.cannot-start]\nfactory = "{kit.MODULE}:CannotStart"\n')
    server = kit.launch(tmp_path / "strict", config=config, args=("--strict",), wait=False)
    assert server.process.wait(60) != 0
    assert "cannot start" in server.log


def test_a_batch_of_an_unknown_media_type_is_told_what_it_sent_and_ndjson_names_are_accepted(guarded, kit):
    headers = {"Authorization": f"Bearer {KEY}"}
    line = json.dumps(kit.record()) + "\n"

    refused = httpx.post(
        guarded.url + "/api/v1/batch/run", content=line, headers={**headers, "Content-Type": "text/csv"}
    )
    accepted = httpx.post(
        guarded.url + "/api/v1/batch/run", content=line, headers={**headers, "Content-Type": "application/ndjson"}
    )

    assert refused.status_code == 415, refused.text
    assert refused.json()["message"] == "got text/csv: send application/json or application/x-ndjson (one item a line)"
    assert accepted.status_code == 200, accepted.text
