"""http-webhook-handler's secret rotation: ``previous_secrets`` signs ``webhook-signature`` too.

Every delivery goes to a real receiver on 127.0.0.1 and is verified with the real Standard Webhooks
library, as a receiver holding one of the secrets would verify it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

import loopai
from loopai_builtin import HttpWebhookHandler, WebhookDeliveryError

OLD = "whsec_" + base64.b64encode(b"the-old-key-material-being-rotated-out").decode()
NEW = "whsec_" + base64.b64encode(b"the-new-key-material-taking-over-now").decode()
OTHER = "whsec_" + base64.b64encode(b"a-key-no-configuration-ever-held").decode()
BARE_OLD = base64.b64encode(b"an-older-key-handed-out-as-bare-base64").decode()
PLAIN_OLD = "an older plain-text secret, correct horse battery"
MALFORMED = "whsec_this is not base64 at all!!"


def rotating(url, secret=NEW, previous=(OLD,), **settings):
    return HttpWebhookHandler({"url": url, "secret": secret, "previous_secrets": list(previous), **settings})


def verified_by(request, secret):
    """Whether a receiver holding ``secret`` (given to the library as the README says) accepts ``request``."""
    try:
        Webhook(secret.encode() if secret == PLAIN_OLD else secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def legacy(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_old_and_the_new_secret_both_verify_the_same_delivery(receiver, event, make_host):
    evt = event()
    with make_host(rotating(receiver.url)) as host:
        assert host.emit(evt).ok
    (request,) = receiver.requests
    expected = evt.model_dump(mode="json")
    assert Webhook(OLD).verify(request.body, request.headers) == expected
    assert Webhook(NEW).verify(request.body, request.headers) == expected
    assert not verified_by(request, OTHER)
    # One v1 signature per secret, space-separated, the current secret's first.
    signatures = request.headers["webhook-signature"].split(" ")
    when = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), timezone.utc)
    assert signatures == [Webhook(s).sign(str(evt.event_id), when, request.body) for s in (NEW, OLD)]
    # The legacy header is one value, keyed by the current secret only.
    assert request.headers["X-Loopai-Signature"] == legacy(NEW, request.body)
    assert request.headers["X-Loopai-Signature"] != legacy(OLD, request.body)


def test_previous_secrets_take_every_format_of_secret(receiver, event, make_host):
    with make_host(rotating(receiver.url, previous=(BARE_OLD, PLAIN_OLD, OLD))) as host:
        assert host.emit(event()).ok
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 4
    for secret in (NEW, BARE_OLD, PLAIN_OLD, OLD):
        assert verified_by(request, secret), secret
    assert not verified_by(request, OTHER)


def test_the_rotation_procedure_never_leaves_a_receiver_unable_to_verify(receiver, event, make_host):
    """As the README says it: new secret as ``secret``, the old one in ``previous_secrets``, then the
    receivers move to the new secret, then the old one is dropped."""
    handler = HttpWebhookHandler({"url": receiver.url, "secret": OLD})
    steps = [
        ({"secret": OLD}, {OLD: True, NEW: False}),  # before: receivers hold the old secret
        ({"secret": NEW, "previous_secrets": [OLD]}, {OLD: True, NEW: True}),  # receivers may move at any time
        ({"secret": NEW}, {OLD: False, NEW: True}),  # every receiver holds the new one: the old is dropped
    ]
    with make_host(handler) as host:
        for settings, verifies in steps:
            handler.configure({"url": receiver.url, **settings})  # at run time: the next delivery signs so
            assert host.emit(event()).ok
            request = receiver.requests[-1]
            assert {secret: verified_by(request, secret) for secret in verifies} == verifies, settings
            assert request.headers["X-Loopai-Signature"] == legacy(settings["secret"], request.body)


def test_every_attempt_is_signed_with_every_secret(receiver, event, make_host):
    receiver.fail(2, status=503)
    with make_host(rotating(receiver.url), max_retries=3) as host:
        assert host.emit(event()).ok
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    for request in receiver.requests:
        assert verified_by(request, OLD) and verified_by(request, NEW)


def test_one_previous_secret_may_be_written_alone():
    handler = HttpWebhookHandler({"url": "https://example.com/hook", "secret": NEW, "previous_secrets": OLD})
    assert [s.get_secret_value() for s in handler.config.previous_secrets] == [OLD]
    assert HttpWebhookHandler({"url": "https://example.com/hook", "PreviousSecrets": [OLD], "secret": NEW}).config


def test_a_previous_secret_that_signs_as_another_is_sent_once_and_warned_about(receiver, event, make_host):
    bare_new = NEW.removeprefix("whsec_")  # the same key, written without the prefix
    handler = rotating(receiver.url, previous=(OLD, bare_new, OLD))
    with make_host(handler) as host:
        assert host.emit(event()).ok
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verified_by(request, NEW) and verified_by(request, OLD)
    warnings = handler.configuration_warnings()
    assert warnings == [
        "http-webhook-handler: previous_secrets[1]: the same signing key as secret, so it adds no signature; "
        "remove it (when rotating, secret is the new secret and previous_secrets the old ones)",
        "http-webhook-handler: previous_secrets[2]: the same signing key as previous_secrets[0], so it adds "
        "no signature; remove it (when rotating, secret is the new secret and previous_secrets the old ones)",
    ]
    assert not any(NEW in w or bare_new in w or OLD in w for w in warnings)


def test_a_plain_text_previous_secret_is_warned_about_as_secret_is(caplog):
    caplog.set_level(logging.WARNING)
    configuration = {"url": "https://example.com/hook", "secret": NEW, "previous_secrets": [OLD, PLAIN_OLD]}
    handler = HttpWebhookHandler(configuration)
    assert handler.validate_configuration(configuration) is True  # accepted, with a warning
    (warning,) = handler.configuration_warnings()
    assert warning.startswith("http-webhook-handler: previous_secrets[1]: the secret is not base64")
    assert "http-webhook-handler: previous_secrets[1]: the secret is not base64" in caplog.text
    assert PLAIN_OLD not in caplog.text + warning


@pytest.mark.parametrize(
    ("previous", "said"),
    [
        ([OLD, MALFORMED], "previous_secrets[1]: the secret starts with 'whsec_' but the rest is not valid base64"),
        ([""], "previous_secrets[0]: the secret is empty"),
    ],
    ids=["malformed", "empty"],
)
def test_a_malformed_previous_secret_is_refused_naming_it(previous, said, caplog):
    caplog.set_level(logging.WARNING)
    configuration = {"url": "https://example.com/hook", "secret": NEW, "previous_secrets": previous}
    assert HttpWebhookHandler().validate_configuration(configuration) is False
    assert f"http-webhook-handler: {said}" in caplog.text
    assert "this is not base64" not in caplog.text and OLD not in caplog.text and NEW not in caplog.text


def test_previous_secrets_without_a_secret_are_refused(caplog):
    caplog.set_level(logging.WARNING)
    configuration = {"url": "https://example.com/hook", "previous_secrets": [OLD]}
    assert HttpWebhookHandler().validate_configuration(configuration) is False
    assert "previous_secrets is set but secret is not" in caplog.text and OLD not in caplog.text
    assert HttpWebhookHandler().validate_configuration({**configuration, "previous_secrets": []}) is True


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"secret": NEW, "previous_secrets": [OLD, MALFORMED]}, "previous_secrets[1]: the secret starts with 'whsec_'"),
        ({"previous_secrets": [OLD]}, "previous_secrets is set but secret is not"),
    ],
    ids=["malformed", "no-secret"],
)
def test_a_handler_made_in_code_with_a_bad_previous_secret_fails_at_startup(receiver, event, make_host, settings, said):
    host = make_host(HttpWebhookHandler({"url": receiver.url, **settings}))
    with host:
        assert list(host.emit(event()).delivered) == []  # disabled: nothing is sent unsigned or half-signed
    (problem,) = host.problems
    assert "http-webhook-handler" in problem and said in problem
    assert "this is not base64" not in problem and OLD not in problem
    assert receiver.requests == []


def test_previous_secrets_never_appear_in_output_logs_or_errors(receiver, event, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler]\n"
        "factory = 'loopai_builtin:HttpWebhookHandler'\n"
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        f"url = '{receiver.url}'\n"
        "secret = '${NEW_SECRET}'\n"
        "previous_secrets = ['${OLD_SECRET}', '" + PLAIN_OLD + "']\n"
    )
    environ = {"NEW_SECRET": NEW, "OLD_SECRET": OLD}
    config = loopai.load_config(tmp_path / "loopai.toml", environ=environ)
    echoed = f"expected {OLD} or {PLAIN_OLD} or {OLD.removeprefix('whsec_')}"
    receiver.fail(4, status=400, body=echoed.encode())  # a receiver that echoes the previous secrets
    with loopai.Host(config, environ=environ, retry_backoff=0.001, max_retries=0) as host:
        report = host.emit(event())
        handler = host.registry.resolve(loopai.WebhookHandlerPlugin, "http-webhook-handler")
        shown = [repr(handler), repr(handler.config), str(handler.config), str(handler.config.model_dump())]
        warnings = handler.configuration_warnings()
    out, err = capsys.readouterr()
    (failure,) = report.failures
    assert "expected ********** or ********** or **********" in failure.message
    texts = [out, err, caplog.text, failure.message, repr(failure.error), *host.problems, *shown, *warnings]
    texts += [json.dumps(loopai.redact(config.model_dump()), default=str)]
    for text in texts:
        for secret in (OLD, PLAIN_OLD, OLD.removeprefix("whsec_")):
            assert secret not in text


def test_an_echoed_previous_secret_is_blanked_in_the_error(receiver, event):
    receiver.fail(1, status=401, body=f"only {BARE_OLD} is accepted here".encode())
    handler = rotating(receiver.url, previous=(BARE_OLD,))
    try:
        with pytest.raises(WebhookDeliveryError) as caught:
            handler.handle_event(event(), loopai.WebhookHandlerContext())
    finally:
        handler.close()
    assert str(caught.value).endswith("only ********** is accepted here")


def loopai_command(tmp_path, *arguments, environ=None):
    """``loopai ARGUMENTS`` as a process in ``tmp_path``, without the caller's LOOPAI_* variables."""
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("LOOPAI_")},
        "LOOPAI_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        **(environ or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "loopai", *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.processes
def test_config_check_reports_a_malformed_previous_secret_and_config_show_hides_them(tmp_path):
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        "url = 'https://example.com/hooks/loopai'\n"
        "secret = '${LOOPAI_WEBHOOK_SECRET}'\n"
        "previous_secrets = ['${OLD_SECRET}', '${BROKEN_SECRET}']\n"
    )
    environ = {"LOOPAI_WEBHOOK_SECRET": NEW, "OLD_SECRET": OLD, "BROKEN_SECRET": MALFORMED}
    checked = loopai_command(tmp_path, "config", "check", environ=environ)
    assert checked.returncode == 1, checked.stderr
    said = "http-webhook-handler: previous_secrets[1]: the secret starts with 'whsec_' but the rest is not valid base64"
    assert said in checked.stderr
    for secret in (NEW, OLD, MALFORMED, "this is not base64"):
        assert secret not in checked.stdout + checked.stderr

    environ["BROKEN_SECRET"] = PLAIN_OLD  # accepted, with the warning secret gets
    checked = loopai_command(tmp_path, "config", "check", environ=environ)
    assert checked.returncode == 0, checked.stderr
    assert "warning: http-webhook-handler: previous_secrets[1]: the secret is not base64" in checked.stderr
    shown = loopai_command(tmp_path, "config", "show", environ=environ)
    assert shown.returncode == 0, shown.stderr
    (entry,) = json.loads(shown.stdout)["plugins"]["webhook_handlers"]
    assert entry["configuration"]["previous_secrets"] in ("**********", ["**********", "**********"])
    for secret in (NEW, OLD, PLAIN_OLD):
        assert secret not in shown.stdout + shown.stderr
