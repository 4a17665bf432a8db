"""Deliveries of upstream Loopai's ``WebhookService`` (C#), built exactly as it builds them: snake_case
body, the event type as the enum's number, ``sha256=<hex HMAC-SHA256 of the raw body>``."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import httpx
import pytest

pytestmark = pytest.mark.serve

SECRET = "whs-upstream-secret"


def delivery(event_type: int | str = 0, **fields) -> dict:
    """The body of one ``WebhookService`` delivery (System.Text.Json, snake_case, enums as numbers)."""
    body = {
        "id": str(uuid.uuid4()),
        "event_type": event_type,
        "task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b",
        "program_id": "00000000-0000-4000-8000-000000000001",
        "message": "Program execution failed: timeout talking to the model",
        "data": {"execution_id": str(uuid.uuid4()), "error": "TimeoutException", "latency_ms": 30012.5},
        "timestamp": "2025-03-14T09:00:00.1234567Z",  # .NET writes seven fractional digits
        "severity": 2,
    }
    body.update(fields)
    return body


def signed(body: dict, secret: str = SECRET, attempt: int = 1) -> tuple[bytes, dict[str, str]]:
    """The raw body and the headers upstream sends with it."""
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Loopai-Signature": f"sha256={digest}",
        "X-Loopai-Event-Id": body["id"],
        "X-Loopai-Event-Type": str(body["event_type"]),
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
    answer = _post(relay, *signed(delivery(upstream, severity="Warning")))
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


def test_a_severity_is_read_by_name_as_upstream_writes_it(relay):
    body = delivery(1, severity="Warning")
    assert _post(relay, *signed(body)).status_code == 202


def test_without_an_inbound_secret_every_delivery_is_refused(server):
    assert _post(server, *signed(delivery(0))).status_code == 401
