"""slack-webhook-handler: the incoming-webhook payload posted to a real receiver, events, configuration."""

from __future__ import annotations

import json
import logging
import re

import pytest

import loopai
from loopai_builtin import SlackWebhookHandler, WebhookDeliveryError, slack_message

TOKEN_PATH = "/services/T0000/B0000/s3cr3tSlackToken"


def slack_url(receiver):
    return f"http://127.0.0.1:{receiver.port}{TOKEN_PATH}"


def test_posts_slacks_incoming_webhook_format(receiver, event, make_host):
    evt = event("program.execution.failed", severity="error")
    with make_host(SlackWebhookHandler({"webhook_url": slack_url(receiver)})) as host:
        assert list(host.emit(evt).delivered) == ["slack-webhook-handler"]
    (request,) = receiver.requests
    assert request.path == TOKEN_PATH
    assert request.headers["content-type"] == "application/json"
    message = json.loads(request.body)
    assert set(message) == {"text", "attachments"}
    assert message["text"] == f"[ERROR] program.execution.failed ({evt.event_id})"
    (attachment,) = message["attachments"]
    assert attachment["color"] == "#d9534f"
    blocks = attachment["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": ":x: program.execution.failed", "emoji": True}
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields[:2] == ["*Severity*\nerror", f"*Event id*\n`{evt.event_id}`"]
    assert f"*Task*\n`{evt.task_id}`" in fields and f"*Execution*\n`{evt.execution_id}`" in fields
    assert not any(f.startswith("*Program*") for f in fields)  # absent ids are left out
    code = blocks[2]["text"]["text"]
    assert code.startswith("```") and json.loads(code.strip("`")) == evt.payload
    assert blocks[3]["elements"][0]["text"] == "loopai"


HOSTILE = {
    "note": "<!channel> see <https://evil.example/phish|the runbook> & <@U123>",
    "stack": "```\n*bold* and a <https://evil.example|link> outside the fence\n```",
    "ticks": "````",
    "entity": "&amp; stays &amp;",
}


def shown(mrkdwn: str) -> str:
    """What Slack displays for escaped mrkdwn text: its three entities decoded, zero-width spaces invisible."""
    return mrkdwn.replace("\u200b", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_a_hostile_payload_is_shown_as_text_and_stays_in_its_code_block(receiver, event, make_host):
    with make_host(SlackWebhookHandler({"webhook_url": slack_url(receiver)})) as host:
        assert host.emit(event(payload=HOSTILE)).ok
    blocks = json.loads(receiver.requests[0].body)["attachments"][0]["blocks"]
    texts = [f["text"] for f in blocks[1]["fields"]] + [blocks[2]["text"]["text"], blocks[3]["elements"][0]["text"]]
    for text in texts:
        assert "<" not in text and ">" not in text  # Slack's mentions and links all start with "<"
    code = blocks[2]["text"]["text"]
    assert code.startswith("```") and code.endswith("```")
    inner = code[3:-3]
    assert "``" not in inner  # no run of backticks inside that could close the fence
    assert json.loads(shown(inner)) == HOSTILE  # the reader sees exactly the payload


@pytest.mark.parametrize("offset", range(13))  # "&lt;&amp;&gt;" is 13 characters: every cut position
def test_a_long_payload_is_clipped_without_cutting_an_entity(event, offset):
    evt = event(payload="y" * offset + "<&>" * 2000)
    code = slack_message(evt, loopai.WebhookHandlerContext())["attachments"][0]["blocks"][2]["text"]["text"]
    assert len(code) <= 3000 and code.startswith("```") and code.endswith("…```")
    assert "&" not in re.sub(r"&(amp|lt|gt);", "", code)  # no "&am" or "&l" left behind
    assert shown(code[3:-4]) in json.dumps(evt.payload)


@pytest.mark.parametrize(
    ("severity", "colour"), [("info", "#17a2b8"), ("warning", "#f0ad4e"), ("error", "#d9534f"), ("critical", "#b0279b")]
)
def test_colour_by_severity(event, severity, colour):
    message = SlackWebhookHandler().message(event(severity=severity), loopai.WebhookHandlerContext())
    assert message["attachments"][0]["color"] == colour


def test_retry_note_and_long_payloads_stay_within_slacks_limits(event):
    evt = event("canary.rollback", payload={"log": "x" * 10_000})
    message = SlackWebhookHandler().message(evt, loopai.WebhookHandlerContext(retry_attempt=2, max_retries=3))
    blocks = message["attachments"][0]["blocks"]
    assert len(blocks[2]["text"]["text"]) <= 3000
    assert blocks[-1]["elements"][0]["text"] == "loopai · retry attempt 2 of 3"


def test_default_events_and_the_events_setting(receiver, event, make_host):
    default = SlackWebhookHandler({"webhook_url": slack_url(receiver)})
    assert {str(e) for e in default.supported_events} == {
        "program.execution.failed",
        "accuracy.threshold.breached",
        "canary.rollback",
    }
    with make_host(default) as host:
        for kind in ("program.execution.failed", "accuracy.threshold.breached", "canary.rollback"):
            assert list(host.emit(event(kind)).delivered) == ["slack-webhook-handler"]
        assert list(host.emit(event("task.created")).delivered) == []
    assert len(receiver.requests) == 3
    chosen = SlackWebhookHandler({"webhook_url": slack_url(receiver), "events": ["TaskCreated"]})
    assert chosen.supported_events == {loopai.WebhookEventType.TASK_CREATED}


@pytest.mark.parametrize(
    ("configuration", "accepted"),
    [
        ({}, False),
        ({"webhook_url": ""}, False),
        ({"webhook_url": "not a url"}, False),
        ({"webhook_url": "https://hooks.slack.com/services/T/B/X"}, True),
        ({"SlackWebhookUrl": "https://hooks.slack.com/services/T/B/X"}, True),  # the seed's spelling
    ],
)
def test_validate_configuration_requires_the_url(configuration, accepted):
    assert SlackWebhookHandler().validate_configuration(configuration) is accepted


def test_a_configuration_without_url_is_refused_by_the_host(tmp_path):
    config = loopai.parse_config(
        {
            "plugins": {
                "webhook_handlers": {
                    "slack-webhook-handler": {"factory": "loopai_builtin:SlackWebhookHandler", "configuration": {}}
                }
            }
        }
    )
    host = loopai.Host(config, environ={})
    assert not host.registry.contains(loopai.WebhookHandlerPlugin, "slack-webhook-handler")
    assert any("slack-webhook-handler" in p and "refused its settings" in p for p in host.problems)


def test_the_url_comes_from_the_environment_and_is_never_shown(receiver, event, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    url = slack_url(receiver)
    config = loopai.parse_config(
        {
            "plugins": {
                "webhook_handlers": {
                    "slack-webhook-handler": {
                        "factory": "loopai_builtin:SlackWebhookHandler",
                        "configuration": {"webhook_url": "${SLACK_WEBHOOK_URL}"},
                    }
                }
            }
        },
        environ={"SLACK_WEBHOOK_URL": url},
    )
    receiver.fail(5, status=404, body=f"no_service at {url}".encode())
    with loopai.Host(config, environ={}, retry_backoff=0.001, max_retries=1) as host:
        report = host.emit(event())
        dry = host.emit(event(), dry_run=True)
        handler = host.registry.resolve(loopai.WebhookHandlerPlugin, "slack-webhook-handler")
        shown = [repr(handler), repr(handler.config), str(handler.config.model_dump())]
    assert [r.path for r in receiver.requests] == [TOKEN_PATH]  # a 404 is not retryable: dead at once
    assert dry.ok
    (failure,) = report.failures
    assert isinstance(failure.error, WebhookDeliveryError) and failure.error.status == 404
    assert f"POST http://127.0.0.1:{receiver.port}/... answered 404" in failure.message
    assert "[DRY-RUN] slack-webhook-handler would post to" in caplog.text
    out, err = capsys.readouterr()
    for text in [out, err, caplog.text, failure.message, repr(failure.error), *host.problems, *shown]:
        assert "s3cr3tSlackToken" not in text


def test_dry_run_posts_nothing(receiver, event, make_host, caplog):
    caplog.set_level(logging.INFO, logger="loopai")
    with make_host(SlackWebhookHandler({"webhook_url": slack_url(receiver)}), dry_run=True) as host:
        assert host.emit(event()).ok
    assert receiver.requests == []
    record = next(r for r in caplog.records if "[DRY-RUN]" in r.getMessage())
    assert '"attachments"' in record.getMessage()


def test_rate_limited_posts_are_retried_after_the_asked_delay(receiver, event, make_host):
    receiver.fail(1, status=429, retry_after="0")
    with make_host(SlackWebhookHandler({"webhook_url": slack_url(receiver)})) as host:
        assert host.emit(event()).ok
    assert len(receiver.requests) == 2


def test_without_a_url_the_handler_stays_off():
    handler = SlackWebhookHandler()
    assert not handler.enabled
    assert (handler.name, handler.priority) == ("slack-webhook-handler", 100)
