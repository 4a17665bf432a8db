"""What a receiver writes into a failed delivery's error: control characters, query secrets, redirects.

Everything here is an answer from a real receiver on 127.0.0.1; the error is read back from the
outbox (the library), and from ``loopai events list`` run as a process."""

from __future__ import annotations

import json
import logging
import re

import pytest

import loopai
from loopai_builtin import HttpWebhookHandler, SlackWebhookHandler, WebhookDeliveryError

# Retitles the window, rings, erases the line, moves the cursor up and writes a line of its own.
FORGERY = "\x1b]0;pwned\x07\x1b[2K\x1b[1AFAKE delivered"
# In a body, anything UTF-8 can say: NUL, DEL, C1 (CSI as one character), a right-to-left override.
BODY = f"{FORGERY}\x00\x7f\x9b31m \u202eevil\u202c \x1c\x85end"
# The characters that must not reach a terminal: C0 (line breaks too, in a cell), DEL, C1, bidi controls.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
SLACK_PATH = "/services/T0000/B0000/s3cr3tSlackToken"


def settings(plugin, url):
    return {"url" if plugin is HttpWebhookHandler else "webhook_url": url}


def deliver(handler, event):
    """One delivery attempt, as the host makes it: the error it raised (it must raise)."""
    try:
        with pytest.raises(WebhookDeliveryError) as caught:
            handler.handle_event(event, loopai.WebhookHandlerContext())
    finally:
        handler.close()
    return caught.value


def dead_letter(make_host, handler, event, tmp_path, **options):
    """Deliver ``event`` through a host with an outbox in ``tmp_path``; its one delivery, which died."""
    with make_host(handler, outbox=tmp_path / "outbox.sqlite3", **options) as host:
        host.emit(event)
        assert host.drain(10), host.delivery_report()
        (record,) = host.outbox.deliveries()
    assert record.status == "dead", record
    return record


def events_list(loopai_cli, tmp_path, *options):
    """``loopai events list`` on this test's outbox, as a process in ``tmp_path``: its standard output."""
    result = loopai_cli(tmp_path, "events", "list", "--outbox", str(tmp_path / "outbox.sqlite3"), *options)
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- control characters ------------------------------------------------------------------


@pytest.mark.parametrize("plugin", [HttpWebhookHandler, SlackWebhookHandler])
def test_control_characters_of_a_reason_and_a_body_are_escaped(receiver, event, plugin, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.respond(500, BODY.encode(), reason=FORGERY)
    error = deliver(plugin(settings(plugin, f"http://127.0.0.1:{receiver.port}{SLACK_PATH}")), event())
    message = str(error)
    assert not UNSAFE.search(message), repr(message)
    # Shown, not obeyed: each replaced by its escape, as repr writes it.
    assert "answered 500 \\x1b]0;pwned\\x07\\x1b[2K\\x1b[1AFAKE delivered: \\x1b]0;pwned" in message
    assert "\\x00\\x7f\\x9b31m \\u202eevil\\u202c \\x1c\\x85end" in message
    assert error.retryable and error.status == 500
    for logged in caplog.records:  # httpcore's trace too: it writes the answer's bytes as repr does
        assert not UNSAFE.search(logged.getMessage()), logged.getMessage()


def test_a_control_character_cannot_rejoin_a_secret_it_splits(receiver, event):
    receiver.respond(400, b"half\x1bhunter2-secret-value")  # escaped, not dropped: "half" stays apart
    error = deliver(HttpWebhookHandler({"url": receiver.url, "secret": "halfhunter2-secret-value"}), event())
    assert "half\\x1bhunter2-secret-value" in str(error)


def test_a_dead_letter_of_a_hostile_receiver_holds_no_control_character(receiver, event, make_host, tmp_path):
    receiver.respond(500, BODY.encode(), reason=FORGERY)
    record = dead_letter(make_host, HttpWebhookHandler({"url": receiver.url}), event(), tmp_path, max_retries=0)
    assert not UNSAFE.search(record.last_error), repr(record.last_error)
    assert "FAKE delivered" in record.last_error and "\\x1b[1A" in record.last_error


@pytest.mark.processes
def test_events_list_shows_a_hostile_receivers_error_without_obeying_it(
    loopai_cli, receiver, event, make_host, tmp_path
):
    receiver.respond(500, BODY.encode(), reason=FORGERY)
    dead_letter(make_host, HttpWebhookHandler({"url": receiver.url}), event(), tmp_path, max_retries=0)
    table = events_list(loopai_cli, tmp_path)
    lines = table.splitlines()
    assert len(lines) == 2, lines  # the heading and one delivery: no line forged
    assert not UNSAFE.search(table.replace("\n", "")), repr(table)
    assert "\\x1b]0;pwned\\x07" in lines[1]
    (listed,) = json.loads(events_list(loopai_cli, tmp_path, "--json"))
    assert not UNSAFE.search(listed["last_error"]), repr(listed["last_error"])


# -- the query string of the URL ----------------------------------------------------------


@pytest.mark.parametrize("echoed", ["path", "json", "decoded"])
def test_query_values_of_the_url_are_blanked_from_errors(receiver, event, make_host, tmp_path, caplog, echoed):
    caplog.set_level(logging.DEBUG)
    url = f"{receiver.url}?token=QUERYTOKEN123&v=1&key=a%2Fb+c%3Dd"
    if echoed == "path":
        receiver.echo(400)  # the path with its query, as the reason phrase and in the body
    elif echoed == "json":
        receiver.respond(400, json.dumps({"token": "QUERYTOKEN123", "got": "token=QUERYTOKEN123"}).encode())
    else:  # as a framework shows what it parsed: percent- and plus-decoded
        receiver.respond(400, b"bad key 'a/b c=d' (token QUERYTOKEN123), v 1")
    record = dead_letter(make_host, HttpWebhookHandler({"url": url}), event(), tmp_path)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("loopai"))  # httpcore's trace aside
    for text in (record.last_error, ours):
        assert "QUERYTOKEN123" not in text and "a%2Fb+c%3Dd" not in text and "a/b c=d" not in text
    assert f"POST {receiver.url}?... answered 400" in record.last_error
    assert "**********" in record.last_error
    if echoed == "decoded":  # a short value is blanked only after its name: the rest of the text stays
        assert ", v 1" in record.last_error


@pytest.mark.processes
def test_events_list_does_not_show_a_query_secret_the_receiver_echoed(loopai_cli, receiver, event, make_host, tmp_path):
    receiver.echo(401)
    dead_letter(make_host, HttpWebhookHandler({"url": f"{receiver.url}?token=QUERYTOKEN123"}), event(), tmp_path)
    table = events_list(loopai_cli, tmp_path)
    assert "QUERYTOKEN123" not in table and "/hooks/loopai?**********" in table


# -- redirects ---------------------------------------------------------------------------


def test_a_redirect_says_where_it_points_and_what_to_do(receiver, event, make_host, tmp_path):
    target = "https://user:pa55word@other.example/new/hook?token=LOCSECRET&v=2"
    receiver.respond(302, f'<a href="{target}">moved</a>'.encode(), headers={"Location": target})
    record = dead_letter(make_host, HttpWebhookHandler({"url": receiver.url}), event(), tmp_path, max_retries=3)
    assert record.attempts == 1 and len(receiver.requests) == 1  # not followed, not retried
    assert (
        f"POST {receiver.url} answered 302 Found, pointing to https://other.example/new/hook?...; "
        "set url to that address (redirects are not followed, so that an event never goes to an address "
        'the configuration does not name): <a href="https://user:**********@other.example/new/hook?**********">'
    ) in record.last_error
    assert "pa55word" not in record.last_error and "LOCSECRET" not in record.last_error
    assert (
        "(at " not in record.last_error and "_transport.py" not in record.last_error
    )  # the receiver's answer, not loopai's code


def test_a_relative_redirect_is_shown_as_the_address_it_names(receiver, event):
    url = receiver.url.replace("http://", "http://user:hunter2@") + "?token=QUERYTOKEN123"
    receiver.respond(307, headers={"Location": "/moved\x1b[2K?sig=abc123"})
    error = deliver(HttpWebhookHandler({"url": url}), event())
    assert error.status == 307 and not error.retryable
    assert str(error) == (
        f"POST {receiver.url}?... answered 307 Temporary Redirect, pointing to "
        f"http://127.0.0.1:{receiver.port}/moved\\x1b[2K?...; set url to that address (redirects are not followed, "
        "so that an event never goes to an address the configuration does not name)"
    )


def test_a_redirect_without_location_says_what_to_do(receiver, event):
    receiver.respond(300)
    error = deliver(HttpWebhookHandler({"url": receiver.url}), event())
    assert str(error) == (
        f"POST {receiver.url} answered 300 Multiple Choices; set url to the final address "
        "(redirects are not followed, so that an event never goes to an address the configuration does not name)"
    )


def test_a_slack_redirect_names_the_setting_and_hides_paths(receiver, event):
    url = f"http://127.0.0.1:{receiver.port}{SLACK_PATH}"
    receiver.respond(301, headers={"Location": "https://hooks.example/services/T1/B1/an0therToken"})
    error = deliver(SlackWebhookHandler({"webhook_url": url}), event())
    assert str(error).startswith(
        f"POST http://127.0.0.1:{receiver.port}/... answered 301 Moved Permanently, pointing to "
        "https://hooks.example/...; set webhook_url to that address (redirects are not followed"
    )
    assert "s3cr3tSlackToken" not in str(error) and "an0therToken" not in str(error)
