"""Tests of TeamsWebhookHandler: contract, behaviour, settings, packaging.

Cards are posted to a receiver on 127.0.0.1 run by the tests: nothing leaves the machine.
``loopai_host`` is a fixture of loopai's pytest plugin (installed with loopai-core).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import loopai
import pytest
from loopai.testing import (
    TASK_ID,
    HostFactory,
    check_plugin,
    make_event,
    make_handler_context,
)

from loopai_teams_webhook import TeamsWebhookHandler
from loopai_teams_webhook.plugin import ALERTS, TeamsDeliveryError, message_card


class Receiver:
    """A local HTTP server that records each POST and answers with the queued statuses."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, object]]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.posts.append((self.path, json.loads(body)))
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", "1")
                self.end_headers()
                self.wfile.write(b"1")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhookb2/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    @property
    def cards(self) -> list[dict[str, object]]:
        return [card for _, card in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    made.thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()


def toml(url: str, extra: str = "") -> str:
    return f"""
[plugins.webhook_handlers.teams-webhook.configuration]
url = "{url}"
min_severity = "warning"
{extra}
"""


def test_keeps_the_plugin_contract() -> None:
    check_plugin(TeamsWebhookHandler, settings={"url": "http://127.0.0.1:9/hook"})


def test_posts_a_message_card_for_an_alert(loopai_host: HostFactory, receiver: Receiver) -> None:
    host = loopai_host(TeamsWebhookHandler(), config=toml(receiver.url))
    event = make_event("program.execution.failed", severity="error", payload={"error": "boom"})
    report = host.emit(event)
    assert report.delivered == ("teams-webhook",), report.failures
    [(path, card)] = receiver.posts
    assert path == "/webhookb2/secret-token"
    assert card["@type"] == "MessageCard" and card["themeColor"] == "D9534F"
    assert card["title"] == "loopai: program.execution.failed"
    [section] = card["sections"]  # type: ignore[misc]
    facts = {fact["name"]: fact["value"] for fact in section["facts"]}
    assert facts["Severity"] == "error" and facts["Task"] == str(TASK_ID)
    assert json.loads(section["text"].strip("`\n")) == {"error": "boom"}


def test_only_alerts_at_or_above_min_severity_are_posted(
    loopai_host: HostFactory, receiver: Receiver
) -> None:
    host = loopai_host(TeamsWebhookHandler(), config=toml(receiver.url))
    host.emit(make_event("task.created", severity="critical"))  # not an alert: never arrives
    host.emit(make_event("validation.failed", severity="info"))  # below warning
    host.emit(make_event("canary.rollback", severity="critical"))
    assert [card["title"] for card in receiver.cards] == ["loopai: canary.rollback"]


def test_events_setting_picks_the_events(loopai_host: HostFactory, receiver: Receiver) -> None:
    handler = TeamsWebhookHandler()
    host = loopai_host(handler, config=toml(receiver.url, 'events = ["task.created"]'))
    assert handler.supported_events == {loopai.WebhookEventType.TASK_CREATED}
    host.emit(make_event("task.created", severity="warning"))
    host.emit(make_event("canary.rollback", severity="critical"))
    assert [card["title"] for card in receiver.cards] == ["loopai: task.created"]


def test_a_server_error_is_retried(loopai_host: HostFactory, receiver: Receiver) -> None:
    receiver.answers = [(503, {}), (429, {"retry-after": "0"})]
    host = loopai_host(TeamsWebhookHandler(), config=toml(receiver.url), max_retries=3)
    report = host.emit(make_event("canary.rollback", severity="critical"))
    assert report.delivered == ("teams-webhook",)
    assert len(receiver.posts) == 3
    facts = [{f["name"]: f["value"] for f in c["sections"][0]["facts"]} for c in receiver.cards]
    assert [f.get("Attempt") for f in facts] == [None, "retry 1 of 3", "retry 2 of 3"]


def test_a_refused_post_is_not_retried_and_hides_the_url(
    loopai_host: HostFactory, receiver: Receiver
) -> None:
    receiver.answers = [(400, {})]
    host = loopai_host(TeamsWebhookHandler(), config=toml(receiver.url), max_retries=3)
    report = host.emit(make_event("canary.rollback", severity="critical"))
    [failure] = report.failures
    assert isinstance(failure.error, TeamsDeliveryError) and failure.error.status == 400
    assert len(receiver.posts) == 1
    assert "secret-token" not in failure.message and "answered 400" in failure.message


def test_dry_run_posts_nothing(
    loopai_host: HostFactory, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    host = loopai_host(TeamsWebhookHandler(), config=toml(receiver.url), dry_run=True)
    with caplog.at_level(logging.INFO, logger="loopai_teams_webhook"):
        report = host.emit(make_event("validation.failed", severity="error"))
    assert report.delivered == ("teams-webhook",) and receiver.posts == []
    assert caplog.messages == ["dry run, not posted: loopai: validation.failed"]


def test_without_a_url_it_stays_off_until_configured() -> None:
    handler = TeamsWebhookHandler()
    assert not handler.enabled
    assert not handler.validate_configuration({})
    assert not handler.validate_configuration({"url": "ftp://example.org/hook"})
    handler.configure({"url": "https://example.webhook.office.com/webhookb2/x"})
    assert handler.enabled


def test_the_card_for_a_retry_and_a_big_payload() -> None:
    event = make_event(payload={"items": list(range(5000))}, severity="info")
    card = message_card(event, make_handler_context(retry_attempt=2, max_retries=3), "prod")
    section = card["sections"][0]
    assert card["title"] == "prod: program.execution.completed"
    assert len(section["text"]) < 2100 and section["text"].endswith("…\n```")
    assert {"name": "Attempt", "value": "retry 2 of 3"} in section["facts"]


def test_default_events_are_the_alerts() -> None:
    assert TeamsWebhookHandler().supported_events == ALERTS


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"min_severity": "loud"}, "min_severity"),
        ({"events": ["no.such.event"]}, "events"),
        ({"webhook_url": "https://example.org"}, "webhook_url"),
    ],
)
def test_settings_are_checked(settings: dict[str, object], field: str) -> None:
    with pytest.raises(loopai.PluginSettingsError, match=field):
        TeamsWebhookHandler(settings)


def test_is_installed_as_an_entry_point() -> None:
    group, name = "loopai.webhook_handlers", "teams-webhook"
    found = importlib.metadata.entry_points(group=group, name=name)
    assert [entry_point.load() for entry_point in found] == [TeamsWebhookHandler]
