"""Deliveries of upstream Loopai's ``WebhookService`` (C#), built exactly as it builds them: snake_case
body, the event type as the enum's number (its name in ``X-Loopai-Event-Type``), the severity a
lowercase string or null (``string? Severity``), ``sha256=<hex HMAC-SHA256 of the raw body>``."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid

import httpx
import pytest

pytestmark = pytest.mark.serve

SECRET = "whs-upstream-secret"
UPSTREAM_TYPES = [
    "ProgramExecutionFailed",
    "ValidationFailed",
    "ProgramImproved",
    "CanaryRollback",
    "CanaryCompleted",
    "ABTestCompleted",
]
"""Upstream's ``WebhookEventType`` names, by number."""


def delivery(event_type: int | str = 0, **fields) -> dict:
    """The body of one ``WebhookService`` delivery (System.Text.Json, snake_case, enums as numbers,
    ``severity`` a string, null when the event has none)."""
    body = {
        "id": str(uuid.uuid4()),
        "event_type": event_type,
        "task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b",
        "program_id": "00000000-0000-4000-8000-000000000001",
        "message": "Program execution failed: timeout talking to the model",
        "data": {"execution_id": str(uuid.uuid4()), "error": "TimeoutException", "latency_ms": 30012.5},
        "timestamp": "2025-03-14T09:00:00.1234567Z",  # .NET writes seven fractional digits
        "severity": "error",
    }
    body.update(fields)
    return body


def signed(body: dict, secret: str = SECRET, attempt: int = 1) -> tuple[bytes, dict[str, str]]:
    """The raw body and the headers upstream sends with it (the event type header: the enum's name)."""
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
    kind = body["event_type"]
    named = isinstance(kind, int) and 0 <= kind < len(UPSTREAM_TYPES)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Loopai-Signature": f"sha256={digest}",
        "X-Loopai-Event-Id": body["id"],
        "X-Loopai-Event-Type": UPSTREAM_TYPES[kind] if named else str(kind),
        "X-Loopai-Delivery-Attempt": str(attempt),
    }
    return raw, headers


@pytest.fixture(scope="module")
def relay(tmp_path_factory, kit):
    """A service with an inbound secret (and API keys, which deliveries do not need)."""
    config = kit.standard_config(serve={"inbound_secret": SECRET, "api_keys": ["some-api-key"]})
    server = kit.launch(tmp_path_factory.mktemp("relay"), config=config)
    yield server
    server.stop()


def _events_of(server, event_id: str) -> list[dict]:
    return [event for event in server.events() if event["event_id"] == event_id]


def _post(server, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + "/api/v1/webhooks/receive", content=raw, headers=headers)


def test_a_signed_delivery_is_accepted_and_reaches_the_handlers_as_a_loopai_event(relay, kit):
    body = delivery(0)
    answer = _post(relay, *signed(body))
    assert answer.status_code == 202
    assert answer.json() == {
        "event_id": body["id"],
        "event_type": "program.execution.failed",
        "duplicate": False,
        "handlers": ["recorder"],
    }
    assert kit.eventually(lambda: len(_events_of(relay, body["id"])) == 1)
    event = _events_of(relay, body["id"])[0]
    assert event["type"] == "program.execution.failed" and event["severity"] == "error"
    assert event["payload"]["message"] == body["message"] and event["payload"]["data"] == body["data"]
    assert event["metadata"]["upstream_event_type"] == "ProgramExecutionFailed"
    assert event["metadata"]["delivery_attempt"] == "1"


@pytest.mark.parametrize(
    ("upstream", "ours"),
    [
        (1, "validation.failed"),
        (2, "program.version.promoted"),
        (3, "canary.rollback"),
        (4, "canary.deployment.succeeded"),
        (5, "validation.completed"),
        ("ABTestCompleted", "validation.completed"),
        ("CanaryRollback", "canary.rollback"),
    ],
)
def test_each_upstream_event_type_maps_to_its_loopai_type(relay, upstream, ours):
    answer = _post(relay, *signed(delivery(upstream, severity="warning")))
    assert answer.status_code == 202 and answer.json()["event_type"] == ours


def test_a_tampered_or_unsigned_delivery_is_refused_and_not_emitted(relay, kit):
    body = delivery(0)
    raw, headers = signed(body)
    tampered = raw.replace(b"timeout", b"timeouT")
    assert _post(relay, tampered, headers).status_code == 401
    assert _post(relay, raw, {**headers, "X-Loopai-Signature": "sha256=" + "0" * 64}).status_code == 401
    assert _post(relay, *signed(body, secret="not-the-secret")).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != "X-Loopai-Signature"}
    refused = _post(relay, raw, unsigned)
    assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHORIZED"
    assert _events_of(relay, body["id"]) == []


def test_a_repeated_event_id_is_acknowledged_200_and_not_emitted_twice_even_after_a_restart(launcher, kit):
    config = kit.standard_config(serve={"inbound_secret": SECRET})
    first = launcher(config=config)
    body = delivery(1)
    assert _post(first, *signed(body)).status_code == 202
    again = _post(first, *signed(body, attempt=2))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert first.stop() == 0
    restarted = launcher(config=config)  # the same home: the same outbox
    assert restarted.home == first.home
    assert _post(restarted, *signed(body, attempt=3)).status_code == 200
    assert kit.eventually(lambda: len(restarted.events()) >= 1)
    assert [e["event_id"] for e in restarted.events()] == [body["id"]]


def test_an_unknown_event_type_is_422_naming_it(relay):
    answer = _post(relay, *signed(delivery(9)))
    assert answer.status_code == 422
    assert answer.json()["details"]["errors"][0]["field"] == "event_type"


def test_a_misspelt_event_type_name_is_422_naming_the_names_and_the_closest(relay):
    answer = _post(relay, *signed(delivery("ValidationFaild")))
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert message.startswith(
        "event_type: 'ValidationFaild' is not one of upstream's event types: ProgramExecutionFailed"
    )
    assert message.endswith("(or their numbers, 0..5); did you mean 'ValidationFailed'?")


@pytest.mark.parametrize(("severity", "ours"), [("warning", "warning"), ("Critical", "critical"), (3, "critical")])
def test_a_severity_is_read_by_name_in_any_case_or_by_number(relay, kit, severity, ours):
    body = delivery(1, severity=severity)
    assert _post(relay, *signed(body)).status_code == 202
    assert kit.eventually(lambda: len(_events_of(relay, body["id"])) == 1)
    assert _events_of(relay, body["id"])[0]["severity"] == ours


def test_a_null_severity_as_upstream_sends_when_none_is_set_is_info(relay, kit):
    event_id = str(uuid.uuid4())
    body = {
        "id": event_id,
        "event_type": 1,
        "task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b",
        "program_id": None,
        "message": "m",
        "data": None,
        "timestamp": "2025-10-26T22:30:00.1234567Z",
        "severity": None,
    }
    answer = _post(relay, *signed(body))
    assert answer.status_code == 202, answer.text
    assert answer.json()["event_type"] == "validation.failed"
    assert kit.eventually(lambda: len(_events_of(relay, event_id)) == 1)
    event = _events_of(relay, event_id)[0]
    assert event["severity"] == "info" and event["payload"] == {"message": "m", "data": None}


def test_copies_of_one_delivery_arriving_at_once_are_emitted_once_and_answered_202_once(relay, kit):
    body = delivery(3)
    raw, headers = signed(body)
    copies = 8
    together = threading.Barrier(copies)
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(timeout=30.0) as client:
            together.wait()
            answers.append(client.post(relay.url + "/api/v1/webhooks/receive", content=raw, headers=headers))

    senders = [threading.Thread(target=send) for _ in range(copies)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    assert sorted(answer.status_code for answer in answers) == [200] * (copies - 1) + [202]
    assert [answer.json()["duplicate"] for answer in answers].count(False) == 1
    assert all(answer.json()["handlers"] == ["recorder"] for answer in answers)
    assert kit.eventually(lambda: len(_events_of(relay, body["id"])) == 1)
    assert not kit.eventually(lambda: len(_events_of(relay, body["id"])) > 1, timeout=1.0)


def test_without_an_inbound_secret_every_delivery_is_refused(server):
    assert _post(server, *signed(delivery(0))).status_code == 401
