"""http-webhook-handler against a real receiver: signatures, retries, Retry-After, timeouts, secrecy."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import standardwebhooks

import loopai
from loopai_builtin import HttpWebhookHandler, WebhookDeliveryError, parse_retry_after

KEY = b"0123456789abcdef-loopai-test-key-material"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
BARE = base64.b64encode(KEY).decode()  # base64 without the prefix, as some providers hand secrets out
PLAIN = "plain-text-secret-correct-horse-battery"  # not base64: used as its UTF-8 bytes
MiB = 1 << 20


def handler_for(url, secret=WHSEC, **settings):
    return HttpWebhookHandler({"url": url, "secret": secret, **settings})


def verify(request, secret=WHSEC):
    """Check both signatures as a receiver does; return the parsed body.

    Standard Webhooks: the real library, given the secret as the README says (as is, or
    ``secret.encode()`` for a plain-text one). ``X-Loopai-Signature``: computed by hand, as
    upstream Loopai does, an HMAC of the raw body keyed by the secret's UTF-8 text.
    """
    verifier = standardwebhooks.Webhook(secret.encode() if secret == PLAIN else secret)
    parsed = verifier.verify(request.body, request.headers)
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Loopai-Signature"] == expected
    return parsed


def test_posts_the_event_as_signed_json(receiver, event, make_host):
    evt = event("program.execution.failed", severity="error")
    with make_host(handler_for(receiver.url)) as host:
        report = host.emit(evt)
    assert list(report.delivered) == ["http-webhook-handler"] and not report.failures
    (request,) = receiver.requests
    assert request.path == "/hooks/loopai"
    assert json.loads(request.body) == evt.model_dump(mode="json")
    assert verify(request) == evt.model_dump(mode="json")
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == headers["X-Loopai-Event-Id"] == str(evt.event_id)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["X-Loopai-Event-Type"] == "ProgramExecutionFailed"
    assert headers["X-Loopai-Delivery-Attempt"] == "1"


@pytest.mark.parametrize("secret", [WHSEC, BARE, PLAIN], ids=["whsec", "bare-base64", "plain-text"])
def test_every_kind_of_secret_verifies_with_the_standard_webhooks_library(receiver, event, make_host, secret):
    with make_host(handler_for(receiver.url, secret)) as host:
        assert host.emit(event()).ok
    verify(receiver.requests[0], secret)


def test_a_bare_base64_secret_is_decoded_as_the_libraries_decode_it(receiver, event, make_host):
    with make_host(handler_for(receiver.url, BARE)) as host:
        assert host.emit(event()).ok
    request = receiver.requests[0]
    standardwebhooks.Webhook(BARE).verify(request.body, request.headers)  # what a receiver writes
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(BARE.encode()).verify(request.body, request.headers)  # not the text


def test_a_plain_text_secret_is_warned_about_at_configuration(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler]\n"
        "factory = 'loopai_builtin:HttpWebhookHandler'\n"
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        "url = 'https://example.com/hooks'\n"
        "secret = '${SECRET}'\n"
    )
    for secret, warned in ((PLAIN, True), (WHSEC, False), (BARE, False)):
        caplog.clear()
        environ = {"SECRET": secret}
        with loopai.Host(loopai.load_config(tmp_path / "loopai.toml", environ=environ), environ=environ) as host:
            handler = host.registry.resolve(loopai.WebhookHandlerPlugin, "http-webhook-handler")
            warnings = handler.configuration_warnings()
        assert bool(warnings) is warned and ("secret.encode()" in caplog.text) is warned
        if warned:
            (warning,) = warnings
            assert warning.startswith("http-webhook-handler: secret: the secret is not base64")
            assert "Webhook(secret.encode())" in warning
        assert secret not in caplog.text and not any(secret in w for w in warnings)


def test_the_event_type_header_is_upstreams_csharp_enum_name(event):
    handler = handler_for("http://127.0.0.1:9/hooks")
    names = {}
    for kind in loopai.WebhookEventType:
        names[kind] = handler.headers(event(kind.value), b"{}", 1, 0)["X-Loopai-Event-Type"]
        assert names[kind].isalpha() and names[kind][0].isupper()
        assert loopai.WebhookEventType(names[kind]) is kind  # loopai reads the C# names back
    assert names[loopai.WebhookEventType.PROGRAM_EXECUTION_FAILED] == "ProgramExecutionFailed"
    assert names[loopai.WebhookEventType.CANARY_ROLLBACK] == "CanaryRollback"


def test_a_tampered_body_does_not_verify(receiver, event, make_host):
    with make_host(handler_for(receiver.url)) as host:
        host.emit(event())
    request = receiver.requests[0]
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WHSEC).verify(request.body.replace(b"division", b"multiplication"), request.headers)


def test_without_a_secret_requests_are_unsigned_but_identified(receiver, event, make_host):
    with make_host(HttpWebhookHandler({"url": receiver.url})) as host:
        assert host.emit(event()).ok
    headers = receiver.requests[0].headers
    assert "webhook-signature" not in headers and "X-Loopai-Signature" not in headers
    assert headers["webhook-id"] == headers["X-Loopai-Event-Id"]


def test_retries_through_the_host_until_delivered(receiver, event, make_host):
    receiver.fail(2, status=500)
    evt = event()
    with make_host(handler_for(receiver.url), max_retries=3) as host:
        report = host.emit(evt)
    assert list(report.delivered) == ["http-webhook-handler"] and not report.failures
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {str(evt.event_id)}  # idempotency key
    for request in receiver.requests:
        verify(request)


def test_async_hosts_retry_too(receiver, event, make_host):
    receiver.fail(1, status=502)
    host = make_host(handler_for(receiver.url))

    async def run():
        async with host:
            return await host.aemit(event())

    assert asyncio.run(run()).ok
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2"]


def test_retry_after_is_honoured(receiver, event, make_host):
    receiver.fail(1, status=503, retry_after="1")
    with make_host(handler_for(receiver.url)) as host:
        assert host.emit(event()).ok
    first, second = receiver.requests
    assert second.at - first.at >= 0.9  # the host's own backoff here is a millisecond


def test_the_error_names_url_status_and_retry_after(receiver, event):
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    receiver.fail(1, status=429, retry_after=format_datetime(when, usegmt=True))
    handler = handler_for(receiver.url)
    with pytest.raises(WebhookDeliveryError) as caught:
        handler.handle_event(event(), loopai.WebhookHandlerContext())
    error = caught.value
    assert error.status == 429 and error.retryable
    assert 25 <= error.retry_after <= 31
    assert str(error).startswith(f"POST {receiver.url} answered 429 Too Many Requests; retry after ")
    handler.close()


def test_after_max_retries_the_report_names_the_handler_and_last_error(receiver, event, make_host):
    receiver.fail(5, status=500, body=b"database unavailable")
    with make_host(handler_for(receiver.url), max_retries=2) as host:
        report = host.emit(event())
    assert not report.delivered
    (failure,) = report.failures
    assert failure.plugin == "http-webhook-handler" and failure.attempts == 3
    assert isinstance(failure.error, WebhookDeliveryError) and failure.error.status == 500
    assert f"POST {receiver.url} answered 500 Internal Server Error: database unavailable" in failure.message
    assert len(receiver.requests) == 3


def test_a_client_error_is_marked_not_retryable(receiver, event):
    receiver.fail(1, status=410)
    handler = handler_for(receiver.url)
    with pytest.raises(WebhookDeliveryError) as caught:
        handler.handle_event(event(), loopai.WebhookHandlerContext())
    assert caught.value.status == 410 and not caught.value.retryable
    handler.close()


def test_a_slow_receiver_times_out_and_the_retry_delivers(receiver, event, make_host):
    receiver.slow(3.0)
    handler = handler_for(receiver.url, timeout=0.3)
    started = time.monotonic()
    with make_host(handler) as host:
        report = host.emit(event())
    assert report.ok, report.failures
    assert time.monotonic() - started < 2.5
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2"]


def test_a_timeout_raises_a_delivery_error(receiver, event):
    receiver.slow(3.0)
    handler = handler_for(receiver.url, timeout=0.2)
    with pytest.raises(WebhookDeliveryError, match=r"timed out after 0\.2 s") as caught:
        handler.handle_event(event(), loopai.WebhookHandlerContext())
    assert caught.value.status is None and caught.value.retry_after is None
    handler.close()


def test_a_receiver_that_is_down_is_retried_then_reported(down_url, event, make_host):
    with make_host(handler_for(down_url, timeout=2), max_retries=1) as host:
        report = host.emit(event())
    (failure,) = report.failures
    assert failure.attempts == 2
    assert isinstance(failure.error, WebhookDeliveryError)
    assert f"POST {down_url} failed: ConnectError" in failure.message


def test_the_event_filter(receiver, event, make_host):
    handler = handler_for(receiver.url, events=["canary.rollback", "AccuracyThresholdBreached"])
    with make_host(handler) as host:
        assert list(host.emit(event("program.execution.failed")).delivered) == []
        assert list(host.emit(event("canary.rollback")).delivered) == ["http-webhook-handler"]
        assert list(host.emit(event("accuracy.threshold.breached")).delivered) == ["http-webhook-handler"]
    assert [r.headers["X-Loopai-Event-Type"] for r in receiver.requests] == [
        "CanaryRollback",
        "AccuracyThresholdBreached",
    ]
    assert HttpWebhookHandler({"url": receiver.url}).supported_events == frozenset(loopai.WebhookEventType)


def test_one_keep_alive_connection_reused_until_shutdown(receiver, event, make_host):
    handler = handler_for(receiver.url)
    with make_host(handler) as host:
        for _ in range(3):
            host.emit(event())
        assert receiver.open_connections == 1
    assert len({r.peer for r in receiver.requests}) == 1  # all three over one connection
    deadline = time.monotonic() + 5
    while receiver.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.open_connections == 0  # closed by the handler's shutdown


def test_posts_made_at_once_each_get_a_connection_and_at_most_twenty_stay_open(receiver, event):
    def settled(most: int) -> int:  # the receiver sees a closed connection a moment after it is closed
        deadline = time.monotonic() + 5
        while receiver.open_connections > most and time.monotonic() < deadline:
            time.sleep(0.01)
        return receiver.open_connections

    handler = handler_for(receiver.url)
    receiver.slow(0.3, times=24)
    context = loopai.WebhookHandlerContext()
    try:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            list(pool.map(lambda _: handler.handle_event(event(), context), range(24)))
        assert len({r.peer for r in receiver.requests}) == 24  # none waited for another's connection
        kept = settled(20)
        assert kept <= 20  # the rest were closed, not left open
        for _ in range(5):
            handler.handle_event(event(), context)
        assert len({r.peer for r in receiver.requests}) == 24  # one after another: a kept connection, no new one
    finally:
        handler.close()
    assert settled(0) == 0


def test_https_to_a_private_authority_says_how_to_trust_it_and_ssl_cert_file_does(tls_receiver, event, monkeypatch):
    receiver, authority_file = tls_receiver
    context = loopai.WebhookHandlerContext()
    untrusted = handler_for(receiver.url)
    with pytest.raises(WebhookDeliveryError) as caught:
        untrusted.handle_event(event(), context)
    untrusted.close()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "set ca_file to that authority's certificate" in str(caught.value)  # the handler's own setting first
    assert "SSL_CERT_FILE or SSL_CERT_DIR would replace the default authorities" in str(caught.value)
    assert receiver.requests == []

    monkeypatch.setenv("SSL_CERT_FILE", str(authority_file))
    trusted = handler_for(receiver.url)
    try:
        trusted.handle_event(event(), context)
    finally:
        trusted.close()
    assert len(receiver.requests) == 1


def test_dry_run_logs_instead_of_posting(receiver, event, make_host, caplog):
    caplog.set_level(logging.INFO, logger="loopai")
    with make_host(handler_for(receiver.url)) as host:
        assert host.emit(event(), dry_run=True).ok
    assert receiver.requests == []
    assert "[DRY-RUN] http-webhook-handler would POST" in caplog.text
    assert receiver.url in caplog.text


def test_without_a_url_the_handler_stays_off_until_configured(receiver, event, make_host):
    handler = HttpWebhookHandler()
    assert not handler.enabled
    with make_host(handler) as host:
        assert list(host.emit(event()).delivered) == []
        handler.configure({"url": receiver.url})
        assert handler.enabled
        assert list(host.emit(event()).delivered) == ["http-webhook-handler"]
    # It was off when the host started, so the host does not shut it down: close it here.
    handler.close()
    assert HttpWebhookHandler(enabled=True).enabled  # an explicit choice is kept


@pytest.mark.parametrize(
    ("configuration", "accepted"),
    [
        ({}, False),
        ({"url": ""}, False),
        ({"url": "ftp://example.com/x"}, False),
        ({"url": "https://example.com/hook"}, True),
        ({"Url": "https://example.com/hook", "Secret": WHSEC}, True),
        ({"url": "https://example.com/hook", "secret": "whsec_not*base64!"}, False),
    ],
)
def test_validate_configuration(configuration, accepted):
    assert HttpWebhookHandler().validate_configuration(configuration) is accepted


def test_a_bad_url_is_a_settings_error():
    with pytest.raises(loopai.PluginSettingsError, match=r"http-webhook-handler\.url: .*http:// or https://"):
        HttpWebhookHandler({"url": "localhost:8080"})


def test_a_malformed_whsec_secret_disables_the_handler_at_startup(receiver, make_host):
    bad = "whsec_this is not base64 at all!!"
    host = make_host(HttpWebhookHandler({"url": receiver.url, "secret": bad}))
    with host:
        pass
    (problem,) = host.problems
    assert "http-webhook-handler" in problem and "not valid base64" in problem
    assert bad not in problem and "this is not base64" not in problem


def test_secrets_never_appear_in_output_logs_or_errors(receiver, event, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler]\n"
        "factory = 'loopai_builtin:HttpWebhookHandler'\n"
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        f"url = '{receiver.url}'\n"
        "secret = '${LOOPAI_WEBHOOK_SECRET}'\n"
        "timeout = 0.3\n"
    )
    environ = {"LOOPAI_WEBHOOK_SECRET": PLAIN}
    config = loopai.load_config(tmp_path / "loopai.toml", environ=environ)
    receiver.fail(1, status=400, body=f"bad signature for secret {PLAIN}".encode())  # a receiver that echoes it
    receiver.slow(3.0)
    receiver.fail(5, status=503)
    with loopai.Host(config, environ=environ, retry_backoff=0.001, max_retries=3) as host:
        report = host.emit(event())
        dry = host.emit(event(), dry_run=True)
        handler = host.registry.resolve(loopai.WebhookHandlerPlugin, "http-webhook-handler")
        shown = [repr(handler), repr(handler.config), str(handler.config), str(handler.config.model_dump())]
    assert dry.ok and not report.ok
    verify(receiver.requests[0], PLAIN)  # the secret from the environment signs
    out, err = capsys.readouterr()
    (failure,) = report.failures
    texts = [out, err, caplog.text, failure.message, str(failure.error), repr(failure.error), *host.problems, *shown]
    texts += [json.dumps(report.to_dict(), default=str), json.dumps(loopai.redact(config.model_dump()), default=str)]
    for text in texts:
        assert PLAIN not in text


def test_the_echoed_secret_is_blanked_in_the_error(receiver, event):
    receiver.fail(1, status=400, body=f"expected secret {PLAIN}".encode())
    handler = handler_for(receiver.url, PLAIN)
    with pytest.raises(WebhookDeliveryError) as caught:
        handler.handle_event(event(), loopai.WebhookHandlerContext())
    assert PLAIN not in str(caught.value)
    assert "expected secret **********" in str(caught.value)
    handler.close()


@pytest.mark.parametrize("proxied", [False, True])
def test_credentials_in_the_url_are_not_shown(receiver, proxy, event, caplog, monkeypatch, proxied):
    caplog.set_level(logging.DEBUG)
    if proxied:  # the request goes through httpx.Client, which logs it: the log line is scrubbed
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
    target = proxy if proxied else receiver
    url = receiver.url.replace("http://", "http://user:hunter2@") + "?token=abc123"
    target.fail(1, status=500)
    handler = HttpWebhookHandler({"url": url})
    try:
        with pytest.raises(WebhookDeliveryError) as caught:
            handler.handle_event(event(), loopai.WebhookHandlerContext())
    finally:
        handler.close()
    message = str(caught.value)
    assert "hunter2" not in message and "abc123" not in message
    assert f"POST {receiver.url}?... answered 500" in message
    assert "hunter2" not in caplog.text and "abc123" not in caplog.text  # in httpx's and httpcore's logs too
    assert len(target.requests) == 1
    assert f"POST {receiver.url}?... answered 500" in caplog.text  # our own log line
    # the credentials in the URL are sent as Basic auth, as httpx.Client sends them
    assert target.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"user:hunter2").decode()
    if proxied:
        assert target.requests[0].path.startswith("http://")  # a proxy gets the absolute URL


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, seconds):
    now = datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == seconds
