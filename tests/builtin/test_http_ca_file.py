"""http-webhook-handler's ``ca_file``: a private authority trusted by this handler's HTTPS connections alone.

Each receiver is a real HTTPS server on 127.0.0.1 whose certificate (for ``localhost``) a trustme
authority signed."""

from __future__ import annotations

import logging
import os
import ssl

import pytest

import loopai
from loopai_builtin import HttpWebhookHandler, SlackWebhookHandler, WebhookDeliveryError


def deliver(handler, event):
    """One delivery attempt, as the host makes it, then the handler's connections closed."""
    try:
        handler.handle_event(event, loopai.WebhookHandlerContext())
    finally:
        handler.close()


def refused(handler, event):
    """The error of one delivery attempt that must fail."""
    with pytest.raises(WebhookDeliveryError) as caught:
        deliver(handler, event)
    return str(caught.value)


def test_ca_file_trusts_a_private_authority_and_without_it_the_hint_names_it_first(tls_receiver, event, make_host):
    receiver, authority = tls_receiver
    message = refused(HttpWebhookHandler({"url": receiver.url}), event())
    assert "CERTIFICATE_VERIFY_FAILED" in message
    hint = message[message.index("CERTIFICATE_VERIFY_FAILED") :]
    assert "set ca_file to that authority's certificate, a PEM file, for this handler alone" in hint
    assert hint.index("ca_file") < hint.index("SSL_CERT_FILE")  # the handler's own setting first
    assert receiver.requests == []

    with make_host(HttpWebhookHandler({"url": receiver.url, "ca_file": str(authority)})) as host:
        report = host.emit(event())
    assert list(report.delivered) == ["http-webhook-handler"], report.failures
    assert len(receiver.requests) == 1


def test_ca_file_is_this_handlers_alone(tls_receiver, event):
    """Unlike SSL_CERT_FILE: another handler of the same process, HTTP or Slack, does not trust the authority."""
    receiver, authority = tls_receiver
    deliver(HttpWebhookHandler({"url": receiver.url, "ca_file": str(authority)}), event())
    assert "CERTIFICATE_VERIFY_FAILED" in refused(HttpWebhookHandler({"url": receiver.url}), event())
    slack = refused(SlackWebhookHandler({"webhook_url": receiver.url}), event())
    assert "CERTIFICATE_VERIFY_FAILED" in slack
    assert slack.endswith(
        "(a receiver whose certificate a private authority signed: set SSL_CERT_FILE or SSL_CERT_DIR to it)"
    )
    assert len(receiver.requests) == 1


def test_ca_file_adds_to_the_default_authorities(make_tls_receiver, event, monkeypatch):
    """The defaults here are what SSL_CERT_FILE names (httpx reads it; else certifi's bundle): a receiver
    they vouch for is still reached by a handler with a ca_file of its own."""
    private, private_authority = make_tls_receiver("private")
    public, public_authority = make_tls_receiver("public")
    monkeypatch.setenv("SSL_CERT_FILE", str(public_authority))
    handler = HttpWebhookHandler({"url": private.url, "ca_file": str(private_authority)})
    deliver(handler, event())
    handler.configure({"url": public.url, "ca_file": str(private_authority)})
    deliver(handler, event())
    assert len(private.requests) == len(public.requests) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused(HttpWebhookHandler({"url": private.url}), event())
    deliver(HttpWebhookHandler({"url": public.url}), event())
    assert len(public.requests) == 2


def test_an_authority_that_did_not_sign_the_certificate_is_named_in_the_hint(make_tls_receiver, event):
    receiver, _ = make_tls_receiver("receiver")
    _, other = make_tls_receiver("other")
    message = refused(HttpWebhookHandler({"url": receiver.url, "ca_file": str(other)}), event())
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert message.endswith(
        f"(ca_file is {str(other)!r}, but neither its authorities nor the default ones signed the receiver's "
        "certificate: set ca_file to the authority that did)"
    )


def test_a_ca_file_configured_at_run_time_is_used_from_the_next_delivery(make_tls_receiver, event):
    receiver, authority = make_tls_receiver("receiver")
    _, other = make_tls_receiver("other")
    handler = HttpWebhookHandler({"url": receiver.url, "ca_file": str(other)})
    try:
        with pytest.raises(WebhookDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            handler.handle_event(event(), loopai.WebhookHandlerContext())
        handler.configure({"url": receiver.url, "ca_file": str(authority)})
        handler.handle_event(event(), loopai.WebhookHandlerContext())
        handler.configure({"url": receiver.url})
        with pytest.raises(WebhookDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            handler.handle_event(event(), loopai.WebhookHandlerContext())
    finally:
        handler.close()
    assert len(receiver.requests) == 1


def bad_files(tmp_path):
    """Files that cannot serve as ca_file, each with what the refusal says of it."""
    import trustme

    authority = trustme.CA()
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.pem").write_text("")
    (tmp_path / "notes.txt").write_text("ask the platform team for the certificate\n")
    (tmp_path / "authority.der").write_bytes(ssl.PEM_cert_to_DER_cert(authority.cert_pem.bytes().decode()))
    authority.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    damaged = authority.cert_pem.bytes().decode().replace("M", "#", 3)
    (tmp_path / "damaged.pem").write_text(damaged)
    return {
        "missing.pem": "no such file: {path!r}",
        "folder": "{path!r} is a folder, not a PEM file of certificates",
        "empty.pem": "{path!r} holds no PEM certificate",
        "notes.txt": "{path!r} holds no PEM certificate",
        "authority.der": "{path!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----; convert a DER file to PEM)",
        "key.pem": "{path!r} holds no PEM certificate",
        "damaged.pem": "{path!r} is not a valid PEM file of certificates",
    }


def test_a_bad_ca_file_is_refused_at_startup_naming_the_setting_and_the_path(receiver, event, make_host, tmp_path):
    for name, said in bad_files(tmp_path).items():
        path = str(tmp_path / name)
        host = make_host(HttpWebhookHandler({"url": receiver.url, "ca_file": path}))
        with host:
            assert list(host.emit(event()).delivered) == []  # disabled
        (problem,) = host.problems
        assert "http-webhook-handler" in problem and f"ca_file: {said.format(path=path)}" in problem, problem
    assert receiver.requests == []


def test_validate_configuration_refuses_a_bad_ca_file_naming_the_setting_and_the_path(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    for name, said in bad_files(tmp_path).items():
        caplog.clear()
        path = str(tmp_path / name)
        assert HttpWebhookHandler().validate_configuration({"url": "https://example.com/h", "ca_file": path}) is False
        assert f"http-webhook-handler: ca_file: {said.format(path=path)}" in caplog.text
    relative = {"url": "https://example.com/h", "ca_file": "certs/authority.pem"}
    assert HttpWebhookHandler().validate_configuration(relative) is False
    assert "ca_file: must be an absolute path" in caplog.text and "'certs/authority.pem'" in caplog.text


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_ca_file_is_refused(tls_receiver, make_host, event):
    receiver, authority = tls_receiver
    authority.chmod(0)
    try:
        host = make_host(HttpWebhookHandler({"url": receiver.url, "ca_file": str(authority)}))
        with host:
            pass
    finally:
        authority.chmod(0o644)
    (problem,) = host.problems
    assert f"ca_file: cannot read {str(authority)!r}: permission denied" in problem


def test_a_relative_ca_file_is_a_settings_error_and_home_is_expanded():
    with pytest.raises(loopai.PluginSettingsError) as caught:
        HttpWebhookHandler({"url": "https://example.com/h", "ca_file": "certs/authority.pem"})
    assert "http-webhook-handler.ca_file: value error, must be an absolute path" in str(caught.value)
    assert "(got 'certs/authority.pem')" in str(caught.value)
    handler = HttpWebhookHandler({"url": "https://example.com/h", "ca_file": "~/certs/authority.pem"})
    assert handler.config.ca_file == os.path.join(os.path.expanduser("~"), "certs", "authority.pem")


@pytest.mark.processes
def test_config_check_reports_a_missing_ca_file(tmp_path, loopai_cli):
    missing = tmp_path / "certs" / "authority.pem"
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        "url = 'https://hooks.internal.example/loopai'\n"
        f"ca_file = '{missing}'\n"
    )
    checked = loopai_cli(tmp_path, "config", "check")
    assert checked.returncode == 1, checked.stderr
    assert f"http-webhook-handler: ca_file: no such file: {str(missing)!r}" in checked.stderr


def test_the_ca_file_is_read_when_trusted_and_a_later_change_to_it_does_not_break_deliveries(tls_receiver, event):
    """The file is read by ``trust`` (at startup, or when the setting changes), not when connections are
    first opened: replaced by garbage, or deleted, before then, it is not read again."""
    from loopai_builtin._transport import Poster

    receiver, authority = tls_receiver
    poster = Poster("test", trust_setting="ca_file")
    poster.trust(str(authority))
    authority.write_text("not a certificate any more\n")  # before the first connection is opened
    try:
        body = event().model_dump_json().encode()
        poster.post(receiver.url, body, {"content-type": "application/json"}, timeout=10, shown="receiver")
        poster.close()
        authority.unlink()
        poster.post(receiver.url, body, {"content-type": "application/json"}, timeout=10, shown="receiver")
    finally:
        poster.close()
    assert len(receiver.requests) == 2


def test_a_ca_file_that_breaks_between_its_check_and_its_reading_is_a_settings_problem(tmp_path, monkeypatch):
    """Not a raw OSError or ssl.SSLError out of a delivery: the ValueError naming the setting and the path."""
    import loopai_builtin._transport as transport

    garbage = tmp_path / "authority.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(transport, "authority_problem", lambda path: None)  # as if it changed after the check
    poster = transport.Poster("test", trust_setting="ca_file")
    with pytest.raises(ValueError, match=rf"^ca_file: cannot read {str(garbage)!r}: "):
        poster.trust(str(garbage))
    garbage.unlink()
    with pytest.raises(ValueError, match=rf"^ca_file: cannot read {str(garbage)!r}: "):
        poster.trust(str(garbage))
    assert poster.ca_file is None


def test_a_ca_file_changed_during_a_delivery_does_not_break_it(tls_receiver, event, tmp_path):
    """The connections the old setting opened are closed once idle, not under a delivery using them."""
    import threading
    import time

    receiver, authority = tls_receiver
    renewed = tmp_path / "renewed.pem"
    renewed.write_bytes(authority.read_bytes())
    handler = HttpWebhookHandler({"url": receiver.url, "ca_file": str(authority)})
    failures: list[BaseException] = []

    def slow_delivery():
        try:
            handler.handle_event(event(), loopai.WebhookHandlerContext())
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    receiver.slow(1.0)
    slow = threading.Thread(target=slow_delivery)
    try:
        slow.start()
        deadline = time.monotonic() + 5
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.requests, "the slow delivery never arrived"
        handler.configure({"url": receiver.url, "ca_file": str(renewed)})
        handler.handle_event(event(), loopai.WebhookHandlerContext())  # trusts the renewed file
        slow.join(10)
    finally:
        handler.close()
    assert not slow.is_alive()
    assert failures == []
    assert len(receiver.requests) == 2
