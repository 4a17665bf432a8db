"""Running the service: Prometheus metrics (one process and several workers), SIGTERM drain, and the
client's configuration and retries."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loopai.client import Client, LoopaiAPIError, RetryPolicy

pytestmark = pytest.mark.serve


def scrape(server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by name and labels."""
    text = httpx.get(server.url + "/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_what_the_host_and_the_http_layer_did(launcher, kit):
    server = launcher()
    with server.client() as client:
        for _ in range(3):
            client.validate(kit.record())
        client.validate(kit.record(output={"label": "maybe"}))
        client.sample(kit.record())
        client.emit({"event_type": "task.created"})
    httpx.get(server.url + "/openapi.json")
    httpx.get(server.url + "/no/such/path")
    samples = scrape(server)
    task = ("task_id", kit.TASK)
    assert samples[("loopai_validations_total", (("result", "valid"), task))] == 3
    assert samples[("loopai_validations_total", (("result", "invalid"), task))] == 1
    assert samples[("loopai_sampling_decisions_total", (("sampled", "true"), task))] == 1
    calls = (
        "loopai_plugin_calls_total",
        (("kind", "validator"), ("outcome", "ok"), ("plugin", "json-schema-validator")),
    )
    assert samples[calls] == 4
    assert samples[("loopai_plugin_call_seconds_count", (("plugin", "json-schema-validator"),))] == 4
    delivered = ("loopai_webhook_deliveries_total", (("handler", "recorder"), ("status", "delivered")))
    assert samples[delivered] == 1
    assert samples[("loopai_outbox_pending", ())] == 0
    route = (("method", "POST"), ("route", "/api/v1/validate"), ("status", "200"))
    assert samples[("loopai_http_requests_total", route)] == 4
    document = (("method", "GET"), ("route", "/openapi.json"), ("status", "200"))  # a plain route: its path
    assert samples[("loopai_http_requests_total", document)] == 1
    nowhere = [key for key in samples if key[0] == "loopai_http_requests_total" and ("method", "GET") in key[1]]
    assert {dict(key[1])["route"] for key in nowhere} == {
        "/health",
        "/openapi.json",
        "unmatched",
    }  # never the path asked


@pytest.mark.parametrize("recorder", [False, True], ids=["items-one-at-a-time", "items-concurrently"])
def test_metrics_count_every_item_of_streamed_batches(launcher, kit, recorder):
    server = launcher(config=kit.standard_config(recorder=recorder))
    with server.client() as client:
        for _ in range(2):  # counted per batch as results go out: the second adds to the first
            items = [kit.record(), kit.record(output={"label": "maybe"}), *(kit.record() for _ in range(4))]
            assert len(list(client.stream_batch_run(items))) == 6
    samples = scrape(server)
    task = ("task_id", kit.TASK)
    assert samples[("loopai_validations_total", (("result", "valid"), task))] == 10
    assert samples[("loopai_validations_total", (("result", "invalid"), task))] == 2
    assert samples[("loopai_sampling_decisions_total", (("sampled", "true"), task))] == 12  # the task's rate is 1.0


def test_with_several_workers_every_scrape_adds_up_all_of_them(launcher, kit):
    server = launcher(config=kit.standard_config(recorder=False), args=("--workers", "2"))
    sent = 40
    for _ in range(sent):  # a new connection each: the workers share the socket and take turns
        assert httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()}).status_code == 200
    key = ("loopai_validations_total", (("result", "valid"), ("task_id", kit.TASK)))
    route = ("loopai_http_requests_total", (("method", "POST"), ("route", "/api/v1/validate"), ("status", "200")))
    for _ in range(4):  # whichever worker answers the scrape
        samples = scrape(server)
        assert samples[key] == sent
        assert samples[route] == sent
    assert server.stop() == 0


def test_with_several_workers_a_plugin_problem_is_logged_once_not_once_per_worker(launcher, kit):
    extra = (  # two validators that each want to run before the other: a warning, and they run by priority
        f'[plugins.validators.first]\nfactory = "{kit.MODULE}:Slow"\nrun_before = ["second"]\n'
        f'[plugins.validators.second]\nfactory = "{kit.MODULE}:Slow"\nrun_before = ["first"]\n'
    )
    server = launcher(config=kit.standard_config(recorder=False, extra=extra), args=("--workers", "2"))
    assert httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()}).status_code == 200
    assert server.stop() == 0
    assert server.log.count("validators 'first', 'second' are in a cycle") == 1, server.log


def test_the_console_handler_on_defaults_prints_only_alerts(launcher, kit):
    """As in ``loopai run``: loaded but not configured, the console handler would print a box for
    every event of every request; it keeps to alerts (on stderr, here in the service's log)."""
    server = launcher(config=kit.standard_config({"api_keys": ["k-1"]}).replace("autoload = false\n", ""))
    with server.client(api_key="k-1") as client:
        quiet = client.emit({"event_type": "task.created", "payload": {"name": "quiet"}})
        loud = client.emit({"event_type": "program.execution.failed", "payload": {"name": "loud"}})
    assert "console-webhook-handler" in quiet.handlers + loud.handlers  # loaded and listening
    assert kit.eventually(lambda: "program.execution.failed" in server.log), server.log
    assert "task.created" not in server.log
    reloaded = httpx.post(server.url + "/api/v1/admin/reload", headers={"X-Api-Key": "k-1"}).json()
    assert reloaded["reloaded"] is True and reloaded["reconfigured"] == []  # still to alerts, as before
    with server.client(api_key="k-1") as client:
        client.emit({"event_type": "task.updated", "payload": {"name": "quiet"}})
        client.emit({"event_type": "program.execution.timeout", "payload": {"name": "loud"}})
    assert kit.eventually(lambda: "program.execution.timeout" in server.log), server.log
    assert "task.updated" not in server.log
    # The HTTP and Slack handlers, installed but given no URL, stay off without a word (as in loopai run).
    assert "WARNING" not in server.log and "setting is required" not in server.log, server.log


def test_sigterm_lets_requests_in_flight_finish_then_stops_cleanly(launcher, kit):
    extra = (
        f'[plugins.validators.slow]\nfactory = "{kit.MODULE}:Slow"\n\n'
        f'[plugins.webhook_handlers.slow-handler]\nfactory = "{kit.MODULE}:SlowHandler"\n'
    )
    server = launcher(config=kit.standard_config(extra=extra, recorder=False), env={"LOOPAI_TEST_DELAY": "1.5"})
    answers: dict[str, httpx.Response] = {}
    event_id = str(uuid.uuid4())

    def call(name: str, path: str, body: dict) -> None:
        answers[name] = httpx.post(server.url + path, json=body, timeout=30)

    callers = [
        threading.Thread(target=call, args=("validate", "/api/v1/validate", {"execution": kit.record()})),
        threading.Thread(
            target=call, args=("emit", "/api/v1/events", {"event_id": event_id, "event_type": "task.created"})
        ),
    ]
    for caller in callers:
        caller.start()
    time.sleep(0.5)  # both are in flight
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):  # no new connection is taken
        httpx.get(server.url + "/health", timeout=2)
    for caller in callers:
        caller.join(30)
    assert answers["validate"].status_code == 200 and answers["validate"].json()["is_valid"]
    assert answers["emit"].status_code == 202
    assert server.process.wait(30) == 0
    assert [e["event_id"] for e in server.events()] == [event_id]  # delivered before the process ended
    from loopai.delivery import SqliteOutbox

    outbox = SqliteOutbox(server.home / "outbox.sqlite3")
    try:
        assert [(d.handler, d.status) for d in outbox.deliveries(event_ids=[event_id])] == [
            ("slow-handler", "delivered")
        ]
    finally:
        outbox.close()


@pytest.mark.parametrize("answer", ["sse", "json"])
def test_a_batch_running_at_sigterm_ends_with_its_summary_within_the_shutdown_timeout(launcher, kit, answer):
    """It used to be cut when the timeout ran out (a truncated body, no done event, a traceback logged)."""
    extra = f'[plugins.validators.slow]\nfactory = "{kit.MODULE}:Slow"\n'  # 0.05 s an item, 10 at a time
    config = kit.standard_config(serve={"shutdown_timeout": 3}, extra=extra, recorder=False)
    server = launcher(config=config, env={"LOOPAI_TEST_DELAY": "0.05"})
    items = [kit.record() for _ in range(2000)]  # about 10 s of work
    stopped: list[float] = []

    def stop_once() -> None:
        if not stopped:
            stopped.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)

    if answer == "sse":
        with server.client() as client:
            stream = client.stream_batch_run(items)
            results = []
            for result in stream:
                results.append(result)
                stop_once()
        summary = stream.summary
        assert summary is not None  # the done event came
        completed, stopped_by = summary.completed, summary.stopped_by
    else:
        body = "".join(json.dumps(item) + "\n" for item in items).encode()
        headers = {"Content-Type": "application/x-ndjson"}
        timer = threading.Timer(1.0, stop_once)
        timer.start()
        document = httpx.post(server.url + "/api/v1/batch/run", content=body, headers=headers, timeout=30).json()
        timer.join()
        results, summary = document["results"], document["summary"]  # a whole JSON document
        completed, stopped_by = summary["completed"], summary["stopped_by"]
    ended = time.monotonic()
    assert stopped_by.startswith("the service is shutting down: items after item ")
    assert 0 < completed == len(results) < len(items)
    assert ended - stopped[0] < 3  # within [serve] shutdown_timeout
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.log and "timeout graceful shutdown exceeded" not in server.log, server.log


@pytest.mark.parametrize("answer", ["client", "json", "stalled"])
def test_sigterm_while_an_ndjson_upload_is_arriving_answers_the_items_that_came(launcher, kit, answer):
    """The answer waited for the end of the upload: past the shutdown timeout the client got a 500 and
    the server logged a traceback. Now the items that came are answered, with the summary saying the
    service is shutting down and from which item to send again, and the server exits in time. The
    client reads the answer when its sending is cut off (``stalled``: it sends nothing for a while)."""
    server = launcher(config=kit.standard_config(serve={"shutdown_timeout": 4}, recorder=False))
    sent: list[int] = []
    signalled: list[float] = []
    exited: list[float] = []

    def items():
        for n in range(1, 301):  # a minute at five a second: far longer than the shutdown timeout
            sent.append(n)
            yield {"id": str(n), "execution": kit.record()}
            if n == 5:
                signalled.append(time.monotonic())
                server.process.send_signal(signal.SIGTERM)
            time.sleep(10 if answer == "stalled" and n >= 8 else 0.2)  # paused 6 s past the stop: a busy machine too

    def watch() -> None:
        server.process.wait(30)
        exited.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    if answer == "client":
        with server.client(timeout=30) as client:
            stream = client.stream_batch_run(items())
            ids = [result.id for result in stream]
        assert stream.summary is not None  # the done event came
        completed, stopped_by = stream.summary.completed, stream.summary.stopped_by
    else:
        response = httpx.post(
            server.url + "/api/v1/batch/run",
            content=(json.dumps(item).encode() + b"\n" for item in items()),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        document = response.json()  # a whole JSON document
        ids = [result["id"] for result in document["results"]]
        completed, stopped_by = document["summary"]["completed"], document["summary"]["stopped_by"]
    watcher.join(30)

    assert stopped_by == f"the service is shutting down: items after item {completed} were not taken (send them again)"
    assert ids == [str(n) for n in range(1, completed + 1)]
    assert 5 <= completed < len(sent)
    if answer == "stalled":
        assert completed == 8  # every item sent before the client paused
    assert exited[0] - signalled[0] < 4  # within [serve] shutdown_timeout
    assert server.process.returncode == 0
    assert "Traceback" not in server.log and "timeout graceful shutdown exceeded" not in server.log, server.log


@pytest.mark.parametrize("upload", ["ndjson", "stalled-json"])
def test_sigterm_while_a_body_read_whole_is_arriving_refuses_it_cleanly_in_time(launcher, kit, upload):
    """``batch/validate`` reads its body whole: nothing of it can be done before it has come. It waited
    past the shutdown timeout, then the client got a 500 and the server logged a traceback. Now it is
    503 NOT_READY in the error format, saying to send it elsewhere, and the server exits in time."""
    server = launcher(config=kit.standard_config(serve={"shutdown_timeout": 4}, recorder=False))
    signalled: list[float] = []
    exited: list[float] = []

    def body():
        if upload != "ndjson":
            yield f'{{"task_id": "{kit.TASK}", "items": ['.encode()
        for n in range(1, 301):  # a minute at five a second: far longer than the shutdown timeout
            item = {"id": str(n), "input": {"text": "hello"}, "output": {"label": "positive"}}
            yield json.dumps(item).encode() + (b"\n" if upload == "ndjson" else b",")
            if n == 5:
                signalled.append(time.monotonic())
                server.process.send_signal(signal.SIGTERM)
            time.sleep(6 if upload == "stalled-json" and n >= 8 else 0.2)

    def watch() -> None:
        server.process.wait(30)
        exited.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    kind = "application/x-ndjson" if upload == "ndjson" else "application/json"
    response = httpx.post(
        server.url + "/api/v1/batch/validate", content=body(), headers={"Content-Type": kind}, timeout=30
    )
    watcher.join(30)

    assert response.status_code == 503, response.text
    error = response.json()
    assert set(error) == {"code", "message", "details", "trace_id", "timestamp"}
    assert error["code"] == "NOT_READY" and response.headers["retry-after"] == "1"
    assert error["message"].startswith("the service is shutting down: send the request to another instance")
    assert exited[0] - signalled[0] < 4  # within [serve] shutdown_timeout
    assert server.process.returncode == 0
    assert "Traceback" not in server.log and "timeout graceful shutdown exceeded" not in server.log, server.log


def test_the_client_reads_its_url_and_key_from_the_environment(launcher, kit):
    server = launcher(config=kit.standard_config(serve={"api_keys": ["env-key-123"]}))
    environ = {"LOOPAI_URL": server.url, "LOOPAI_API_KEY": "env-key-123"}
    with Client(environ=environ) as client:
        assert client.validate(kit.record()).is_valid


def test_the_client_retries_until_the_service_is_up(tmp_path, kit):
    port = kit.free_port()
    result: dict[str, object] = {}

    def ask() -> None:
        policy = RetryPolicy(retries=12, backoff=0.25, max_backoff=1.0)
        with Client(f"http://127.0.0.1:{port}", retry=policy) as client:
            try:
                result["report"] = client.validate(kit.record())
            except LoopaiAPIError as exc:
                result["error"] = exc

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(0.5)  # the first tries find nobody listening
    server = kit.launch(tmp_path / "late", port=port)
    try:
        asking.join(30)
        assert "error" not in result, result.get("error")
        assert result["report"].is_valid
    finally:
        server.stop()


def test_the_client_gives_up_with_one_error_type_when_nobody_answers(kit):
    with Client(f"http://127.0.0.1:{kit.free_port()}", retry=RetryPolicy(retries=2, backoff=0.01)) as client:
        with pytest.raises(LoopaiAPIError) as failed:
            client.validate(kit.record())
    assert failed.value.code == "CONNECTION_FAILED" and failed.value.status is None


def test_sighup_reloads_the_configuration_without_stopping_the_service(launcher, kit):
    server = launcher()
    assert {p["name"] for p in httpx.get(server.url + "/api/v1/plugins").json()} >= {"percentage-sampler"}
    changed = kit.standard_config().replace(
        "[plugins.samplers.percentage-sampler]\nconfiguration = { seed = 1 }", "[plugins.samplers.time-based-sampler]"
    )
    assert changed != kit.standard_config()
    (server.home / "loopai.toml").write_text(changed, encoding="utf-8")

    server.process.send_signal(signal.SIGHUP)

    def names() -> set[str]:
        return {p["name"] for p in httpx.get(server.url + "/api/v1/plugins").json() if p["loaded"]}

    assert kit.eventually(lambda: "time-based-sampler" in names()), server.log
    assert "percentage-sampler" not in names()
    assert server.process.poll() is None
    with server.client() as client:
        assert client.sample(kit.record()).should_sample  # the new sampler answers: first of its task
    reloads = scrape(server)[("loopai_reloads_total", (("result", "ok"),))]
    assert reloads == 1


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ("this is not = = toml\n", "loopai.toml:20:6: invalid TOML: Expected '=' after a key"),
        ("seed = 1, sampling_rate = 1.5", "loopai.toml:7: samplers.percentage-sampler.sampling_rate: must be <= 1"),
    ],
    ids=["invalid-toml", "bad-value"],
)
def test_sighup_with_a_broken_configuration_fails_cleanly_and_the_service_keeps_answering(
    launcher, kit, workers, broken, said
):
    """With --workers N each new worker died on the file with a traceback; now the main process checks
    the file first and the reload fails as with one process: one line naming the file, the line and
    what to fix, the plugins as they were. A sound file is then reloaded (the workers restarted)."""
    server = launcher(args=("--workers", str(workers)))
    assert kit.eventually(lambda: server.log.count("Application startup complete.") == workers), server.log
    config = server.home / "loopai.toml"
    if "toml" in broken:
        config.write_text(kit.standard_config() + "\n" + broken, encoding="utf-8")
    else:
        config.write_text(kit.standard_config().replace("seed = 1", broken), encoding="utf-8")

    server.process.send_signal(signal.SIGHUP)

    assert kit.eventually(lambda: "reload failed, nothing changed: " in server.log), server.log
    failure = next(line for line in server.log.splitlines() if "reload failed" in line)
    assert failure.startswith("WARNING:") and said in server.log, server.log

    def loaded() -> set[str]:
        try:
            answer = httpx.get(server.url + "/api/v1/plugins")
        except httpx.TransportError:  # a connection a worker took as uvicorn retired it: closed unanswered
            return set()
        if answer.status_code == 503:  # a worker being retired by a restart, still accepting for a moment
            return set()
        assert answer.status_code == 200, answer.text
        return {p["name"] for p in answer.json() if p["loaded"]}

    for _ in range(4):  # whichever worker answers
        verdict = httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()})
        assert verdict.status_code == 200 and verdict.json()["is_valid"]
        assert "percentage-sampler" in loaded()
    assert server.log.count("Started server process") == workers  # no worker was started to die on the file
    assert "Traceback" not in server.log, server.log

    changed = kit.standard_config().replace(
        "[plugins.samplers.percentage-sampler]\nconfiguration = { seed = 1 }", "[plugins.samplers.time-based-sampler]"
    )
    config.write_text(changed, encoding="utf-8")
    server.process.send_signal(signal.SIGHUP)
    assert kit.eventually(lambda: all("time-based-sampler" in loaded() for _ in range(4)), timeout=30), server.log
    assert server.process.poll() is None and "Traceback" not in server.log, server.log


def test_a_reload_puts_the_configurations_new_tasks_table_in_effect_and_says_when_it_is_not_used(
    launcher, kit, tmp_path
):
    maybe = kit.record(output={"label": "maybe"})  # outside the task's enum: invalid until the reload
    keyed = kit.standard_config({"api_keys": ["k-1"]})
    loosened = keyed.replace('output_schema.properties.label.enum = ["positive", "negative"]\n', "")
    key = {"X-Api-Key": "k-1"}

    def verdict(server) -> bool:
        return httpx.post(server.url + "/api/v1/validate", json={"execution": maybe}, headers=key).json()["is_valid"]

    server = launcher(config=keyed)
    assert verdict(server) is False
    (server.home / "loopai.toml").write_text(loosened, encoding="utf-8")
    answer = httpx.post(server.url + "/api/v1/admin/reload", headers=key).json()
    assert answer["reloaded"] is True and answer["problems"] == []  # it said "takes effect when restarted"
    assert verdict(server) is True  # ... and took effect at once

    table = f'[tasks."{kit.TASK}"]\noutput_schema = {{ type = "object", required = ["label"] }}\n'
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / "tasks.toml").write_text(table, encoding="utf-8")
    given = launcher("given", config=keyed, args=("--tasks", "tasks.toml"))
    (given.home / "loopai.toml").write_text(loosened + "\n# changed\n", encoding="utf-8")
    answer = httpx.post(given.url + "/api/v1/admin/reload", headers=key).json()
    assert answer["reloaded"] is True
    assert any(
        "tasks changed in the configuration but are not used" in p and "--tasks FILE" in p for p in answer["problems"]
    )


def test_an_admin_reload_says_what_changed_and_a_failed_one_changes_nothing(launcher, kit):
    server = launcher(config=kit.standard_config({"api_keys": ["k-1"]}))
    headers = {"Authorization": "Bearer k-1"}
    extra = f'[plugins.validators.broken]\nfactory = "{kit.MODULE}:Broken"\n'
    (server.home / "loopai.toml").write_text(kit.standard_config({"api_keys": ["k-1"]}, extra), encoding="utf-8")

    assert httpx.post(server.url + "/api/v1/admin/reload").status_code == 401  # the key is required
    answer = httpx.post(server.url + "/api/v1/admin/reload", headers=headers)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["reloaded"] is True
    assert [change["name"] for change in body["added"]] == ["broken"]
    verdict = httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()}, headers=headers).json()
    assert [r["validator_type"] for r in verdict["results"]] == ["broken", "json-schema-validator"] or not verdict[
        "is_valid"
    ]

    (server.home / "loopai.toml").write_text("this is not = = toml", encoding="utf-8")
    failed = httpx.post(server.url + "/api/v1/admin/reload", headers=headers)

    assert failed.status_code == 409, failed.text
    error = failed.json()
    assert error["code"] == "RELOAD_FAILED" and error["details"]["reloaded"] is False
    assert any("loopai.toml" in problem for problem in error["details"]["problems"])
    still = httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()}, headers=headers)
    assert still.status_code == 200  # the previous plugins keep running
    counted = scrape(server)
    assert counted[("loopai_reloads_total", (("result", "ok"),))] == 1
    assert counted[("loopai_reloads_total", (("result", "failed"),))] == 1


def test_an_admin_reload_without_api_keys_is_refused_and_says_to_set_them_or_send_sighup(launcher, kit):
    """Without keys the gate lets every caller through: anyone who reached the port could swap the
    plugins. The endpoint needs a configured key; SIGHUP, which only the machine's users can send, reloads."""
    server = launcher()  # no [serve] api_keys, no LOOPAI_API_KEYS
    changed = kit.standard_config().replace(
        "[plugins.samplers.percentage-sampler]\nconfiguration = { seed = 1 }", "[plugins.samplers.time-based-sampler]"
    )
    (server.home / "loopai.toml").write_text(changed, encoding="utf-8")

    def names() -> set[str]:
        return {p["name"] for p in httpx.get(server.url + "/api/v1/plugins").json() if p["loaded"]}

    answer = httpx.post(server.url + "/api/v1/admin/reload")

    assert answer.status_code == 403, answer.text
    error = answer.json()
    assert error["code"] == "ADMIN_NEEDS_API_KEY"
    assert error["trace_id"] and error["timestamp"]  # the service's usual error body
    message = error["message"]
    assert "needs an API key" in message and "[serve] api_keys" in message and "LOOPAI_API_KEYS" in message
    assert f"send SIGHUP to the service (pid {server.process.pid})" in message
    assert "percentage-sampler" in names() and "time-based-sampler" not in names()  # nothing was reloaded

    server.process.send_signal(signal.SIGHUP)  # what the message says to do

    assert kit.eventually(lambda: "time-based-sampler" in names()), server.log


@pytest.mark.parametrize("workers", [1, 2])
def test_a_plugin_the_configuration_names_that_cannot_run_is_left_out_and_reported_the_service_runs(
    launcher, kit, workers
):
    """Issue #17: a long-running process isolates a plugin that fails and reports it (``loopai run``
    refuses to start instead): the service starts without the sampler, says why on stderr once, with
    the file, the line and the field, shows it failed, and answers."""
    config = kit.standard_config(recorder=False).replace("seed = 1", "seed = 1, sampling_rate = 1.5")
    server = launcher(config=config, args=("--workers", str(workers)))
    assert kit.eventually(lambda: server.log.count("Application startup complete.") == workers), server.log

    log = server.log
    said = "loopai.toml:7: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)"
    assert log.count(said) == 1, log  # once, not once per worker
    assert "loopai.toml:6: samplers.percentage-sampler: sampler 'percentage-sampler'" in log
    assert "loopai serve: started without plugins loopai.toml names that cannot run" in log
    assert "Traceback" not in log
    assert httpx.get(server.url + "/api/v1/health/ready").json()["status"] == "ready"
    for _ in range(2 * workers):  # whichever worker answers
        shown = {p["name"]: p for p in httpx.get(server.url + "/api/v1/plugins").json()}
        sampler = shown["percentage-sampler"]
        assert sampler["status"] == "failed" and not sampler["loaded"]
        assert "sampling_rate: must be <= 1 (got 1.5)" in sampler["reason"]
        sampled = httpx.post(server.url + "/api/v1/sample", json={"execution": kit.record()})
        assert sampled.status_code == 200, sampled.text
        verdict = httpx.post(server.url + "/api/v1/validate", json={"execution": kit.record()})
        assert verdict.status_code == 200 and verdict.json()["is_valid"]
    assert server.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_with_strict_a_plugin_the_configuration_names_that_cannot_run_stops_the_service_from_starting(
    tmp_path, kit, workers
):
    """--strict: any plugin problem is an error, as for every command; every one is said, with its line."""
    config = (
        "[plugins.samplers.percentage-sampler]\n"
        "configuration = { sampling_rate = 1.5 }\n"
        "\n"
        "[plugins.validators.json-schema-validator.configuration]\n"
        "remote_refs = 3\n"
    )
    server = kit.launch(tmp_path / "bad", config=config, args=("--workers", str(workers), "--strict"), wait=False)
    try:
        status = server.process.wait(60)
    finally:
        server.end()  # when it did start: not left running
    assert status == 2
    log = server.log
    assert log.count("samplers.percentage-sampler.sampling_rate: must be <= 1") == 1  # said once, with its line
    assert "loopai.toml:2: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)" in log
    assert log.count("validators.json-schema-validator.remote_refs") == 1
    assert "loopai.toml:5: validators.json-schema-validator.remote_refs: input should be a valid list (got 3)" in log
    assert "Started server process" not in log  # refused before any worker or socket


def test_a_configuration_problem_that_is_not_a_plugins_still_stops_the_service(tmp_path, kit):
    """Only a plugin is left out: a wrong [serve] value is the service's own, and it does not start
    (the plugin's problem said with it, so that one pass fixes the file)."""
    config = kit.standard_config({"shutdown_timeout": "soon"}).replace("seed = 1", "seed = 1, sampling_rate = 1.5")
    server = kit.launch(tmp_path / "bad", config=config, wait=False)
    try:
        status = server.process.wait(60)
    finally:
        server.end()
    log = server.log
    assert status == 2, log
    assert "serve.shutdown_timeout" in log and "loopai.toml:" in log
    assert "samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)" in log
    assert "Started server process" not in log


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_is_said_before_anything_starts(tmp_path, kit, workers):
    with socket.socket() as taken:  # a real listener holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = kit.launch(tmp_path / "second", args=("--workers", str(workers)), port=port, wait=False)
        try:
            status = server.process.wait(60)
        finally:
            server.stop(signal.SIGKILL)  # when it did start: not left running
    assert status == 2
    assert f"loopai serve: cannot listen on 127.0.0.1:{port}: the address is already in use" in server.log
    assert "Started server process" not in server.log  # no plugin, outbox or worker was started for nothing


def test_an_admin_reload_with_several_workers_is_refused_naming_sighup(launcher, kit):
    """A request reaches one worker: reloading it alone would leave the workers answering differently."""
    server = launcher(config=kit.standard_config({"api_keys": ["k-1"]}), args=("--workers", "2"))

    answer = httpx.post(server.url + "/api/v1/admin/reload", headers={"Authorization": "Bearer k-1"})

    assert answer.status_code == 409, answer.text
    error = answer.json()
    assert error["code"] == "RELOAD_FAILED"
    assert error["message"].startswith("this service runs 2 worker processes and a request reaches only one")
    assert f"send SIGHUP to the main process (pid {server.process.pid})" in error["message"]


def test_a_reload_rotates_the_api_keys_never_removes_them_all_and_says_what_needs_a_restart(launcher, kit):
    server = launcher(config=kit.standard_config({"api_keys": ["old-key-1"]}))
    config = server.home / "loopai.toml"

    config.write_text(kit.standard_config({"api_keys": ["new-key-2"], "port": 1}), encoding="utf-8")
    rotated = httpx.post(server.url + "/api/v1/admin/reload", headers={"Authorization": "Bearer old-key-1"})

    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["problems"] == ["serve.port changed: it takes effect when the service restarts"]
    record = {"execution": kit.record()}
    assert (
        httpx.post(server.url + "/api/v1/validate", json=record, headers={"X-Api-Key": "old-key-1"}).status_code == 401
    )
    assert (
        httpx.post(server.url + "/api/v1/validate", json=record, headers={"X-Api-Key": "new-key-2"}).status_code == 200
    )

    config.write_text(kit.standard_config(), encoding="utf-8")  # no [serve] api_keys at all
    kept = httpx.post(server.url + "/api/v1/admin/reload", headers={"X-Api-Key": "new-key-2"})

    assert kept.status_code == 200, kept.text
    assert any(p.startswith("serve.api_keys: a reload cannot remove every API key") for p in kept.json()["problems"])
    assert httpx.post(server.url + "/api/v1/validate", json=record).status_code == 401  # still closed
    assert (
        httpx.post(server.url + "/api/v1/validate", json=record, headers={"X-Api-Key": "new-key-2"}).status_code == 200
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_state_database_that_cannot_be_reached_is_one_message_and_exit_2(tmp_path, kit, workers):
    config = kit.standard_config() + '\n[state]\nurl = "postgresql://loopai:s3cret-pw@127.0.0.1:1/loopai"\n'
    server = kit.launch(tmp_path / "down", config=config, args=("--workers", str(workers)), wait=False)
    try:
        status = server.process.wait(60)
    finally:
        server.stop(signal.SIGKILL)  # when it did start: not left running
    log = server.log
    assert status == 2, log
    assert (
        "loopai serve: not started: state database postgresql://loopai:***@127.0.0.1:1/loopai cannot be reached" in log
    )
    assert "Traceback" not in log and "s3cret-pw" not in log
    assert "Started server process" not in log  # refused before any socket or worker


def test_a_reload_by_watch_config_takes_the_new_keys_and_is_counted(launcher, kit):
    watching = "[host]\nwatch_config = true\nwatch_interval = 0.2\n"
    server = launcher(config=kit.standard_config({"api_keys": ["old-key-1"]}, watching))
    record = {"execution": kit.record()}

    (server.home / "loopai.toml").write_text(kit.standard_config({"api_keys": ["new-key-2"]}, watching), "utf-8")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answer = httpx.post(server.url + "/api/v1/validate", json=record, headers={"X-Api-Key": "new-key-2"})
        if answer.status_code == 200:
            break
        time.sleep(0.2)

    assert answer.status_code == 200, answer.text
    assert (
        httpx.post(server.url + "/api/v1/validate", json=record, headers={"X-Api-Key": "old-key-1"}).status_code == 401
    )
    assert scrape(server)[("loopai_reloads_total", (("result", "ok"),))] == 1
