"""Webhook receivers that attack the sender: huge answers, dripped answers, absurd Retry-After, echoed secrets."""

from __future__ import annotations

import base64
import json
import re
import time
import tracemalloc
from urllib.parse import quote

import pytest

import loopai
from loopai_builtin import HttpWebhookHandler, SlackWebhookHandler, WebhookDeliveryError

SECRET = "plain-text-secret-correct-horse-battery"
SLACK_PATH = "/services/T0000/B0000/s3cr3tSlackToken"
MiB = 1 << 20


def deliver(handler, event):
    """One delivery attempt, as the host makes it; the error it raised, or None."""
    try:
        handler.handle_event(event, loopai.WebhookHandlerContext())
    except WebhookDeliveryError as exc:
        return exc
    finally:
        handler.close()
    return None


# -- a gigabyte answer -------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 500])
def test_a_gigabyte_answer_is_not_read(receiver, event, status):
    receiver.huge(1 << 30, status=status)
    handler = HttpWebhookHandler({"url": receiver.url, "secret": SECRET})
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = deliver(handler, event())
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 4 * MiB  # was 2.1 GB
    assert time.monotonic() - started < 5
    assert receiver.sent < 64 * MiB  # the client hung up: the rest was never even sent
    if status == 200:
        assert error is None  # delivered: what follows a 2xx does not matter
    else:
        assert error is not None and error.status == 500 and error.retryable
        assert str(error).startswith(f"POST {receiver.url} answered 500 Internal Server Error: xxxx")
        assert str(error).endswith("…") and len(str(error)) < 400


def test_after_a_huge_answer_the_next_delivery_uses_a_fresh_connection(receiver, event, make_host):
    receiver.huge(256 * MiB)
    with make_host(HttpWebhookHandler({"url": receiver.url})) as host:
        assert host.emit(event()).ok
        assert host.emit(event()).ok
    first, second = receiver.requests
    assert first.peer != second.peer  # the cut-off connection was dropped, not reused mid-body


# -- a dripping answer -------------------------------------------------------------------


@pytest.mark.parametrize("head", [False, True], ids=["body", "status-line-and-headers"])
@pytest.mark.parametrize("plugin", [HttpWebhookHandler, SlackWebhookHandler])
def test_a_dripping_answer_is_cut_off_at_the_timeout(receiver, event, head, plugin):
    receiver.drip(0.5, head=head)  # one byte every half second: no single read ever times out
    url = f"http://127.0.0.1:{receiver.port}{SLACK_PATH}"
    handler = plugin({"url" if plugin is HttpWebhookHandler else "webhook_url": url, "timeout": 1.0})
    started = time.monotonic()
    error = deliver(handler, event())
    elapsed = time.monotonic() - started
    assert error is not None and error.status is None and error.retryable
    assert "timed out after 1 s" in str(error)
    assert 0.9 <= elapsed < 1.6, elapsed  # the timeout is the whole request's deadline


def test_a_dripping_receiver_is_retried_by_the_host(receiver, event, make_host):
    receiver.drip(0.5)
    started = time.monotonic()
    with make_host(HttpWebhookHandler({"url": receiver.url, "timeout": 0.5}), max_retries=1) as host:
        report = host.emit(event())
    assert report.ok, report.failures
    assert len(receiver.requests) == 2 and time.monotonic() - started < 2


# -- Retry-After -------------------------------------------------------------------------


def test_an_absurd_retry_after_is_reported_and_capped_without_sleeping(receiver, event):
    receiver.fail(1, status=503, retry_after="99999")
    started = time.monotonic()
    error = deliver(HttpWebhookHandler({"url": receiver.url}), event())
    assert time.monotonic() - started < 1  # the host schedules the retry; the handler never sleeps
    assert error is not None and error.retry_after == 300
    assert "retry after 300 s (it asked for 99999 s; retry_after_max caps the wait)" in str(error)


@pytest.mark.parametrize("plugin", [HttpWebhookHandler, SlackWebhookHandler])
def test_retry_after_max_is_a_setting_the_host_honours(receiver, event, make_host, plugin):
    receiver.fail(1, status=429, retry_after="99999")
    url = f"http://127.0.0.1:{receiver.port}{SLACK_PATH}"
    handler = plugin({"url" if plugin is HttpWebhookHandler else "webhook_url": url, "retry_after_max": 0.3})
    with make_host(handler) as host:
        assert host.emit(event("canary.rollback")).ok
    first, second = receiver.requests
    assert 0.25 <= second.at - first.at < 3  # waited the capped 0.3 s, not 99999 s (nor 300)


# -- echoed secrets ------------------------------------------------------------------------


def lowercase_escapes(text):
    """``text`` with its percent-escapes in lowercase hex (``%3d``), as some receivers encode."""
    return re.sub("%[0-9A-F]{2}", lambda found: found.group().lower(), text)


def test_an_echoing_receiver_cannot_put_url_credentials_or_the_secret_in_errors(receiver, event, make_host):
    password = "hunter?/!"  # its token has "/" and "=" padding: dXNlcjpodW50ZXI/LyE=
    url = receiver.url.replace("http://", "http://user:hunter%3F%2F!@")
    token = base64.b64encode(f"user:{password}".encode()).decode()
    bare = token.rstrip("=")
    receiver.echo(400)  # the reason phrase is our Authorization header; the body, every header we sent
    receiver.fail(1, status=400, body=f"your secret is {SECRET}, your auth is Basic {token}".encode())
    encoded = [  # what a receiver that re-encodes or trims what it echoes sends back
        quote(token, safe=""),
        lowercase_escapes(quote(token, safe="")),
        bare,
        quote(bare, safe=""),
        quote(password, safe=""),
        lowercase_escapes(quote(password, safe="")),
    ]
    receiver.fail(1, status=400, body=("echoed: " + ", ".join(encoded)).encode())
    handler = HttpWebhookHandler({"url": url, "secret": SECRET})
    with make_host(handler, max_retries=0) as host:
        echoed = host.emit(event()).failures[0]
        said = host.emit(event()).failures[0]
        reencoded = host.emit(event()).failures[0]
    assert receiver.requests[0].headers["authorization"] == f"Basic {token}"  # it was sent, and echoed back
    forms = [token, password, "hunter%3F", *encoded]
    for failure in (echoed, said, reencoded):
        for text in (failure.message, str(failure.error), repr(failure.error)):
            assert SECRET not in text and "hunter" not in text
            assert not [form for form in forms if form.lower() in text.lower()]
    assert f"POST {receiver.url} answered 400 **********: /hooks/loopai" in echoed.message
    assert "authorization: ********** " in echoed.message  # where the token was
    assert "your secret is **********, your auth is **********" in said.message
    assert "echoed: " + ", ".join(["**********"] * len(encoded)) in reencoded.message


def test_an_echoing_receiver_cannot_put_the_slack_secret_path_in_errors(receiver, event, make_host):
    url = f"http://127.0.0.1:{receiver.port}{SLACK_PATH}"
    receiver.echo(404)  # path as reason phrase and in the body
    escaped = json.dumps({"error": "no_service", "url": url}).replace("/", "\\/")  # as PHP encodes JSON
    receiver.fail(1, status=404, body=escaped.encode())
    with make_host(SlackWebhookHandler({"webhook_url": url}), max_retries=0) as host:
        failures = [host.emit(event()).failures[0], host.emit(event()).failures[0]]
    for failure in failures:
        assert "s3cr3tSlackToken" not in failure.message and "B0000" not in failure.message
        assert f"POST http://127.0.0.1:{receiver.port}/... answered 404" in failure.message
    assert "**********" in failures[0].message and '"error": "no_service"' in failures[1].message
