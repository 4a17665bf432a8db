"""json-schema-validator and remote $ref: off by default, an allow-list, one fetch per document, a deadline."""

from __future__ import annotations

import json
import time

import pytest

import loopai
from loopai_builtin import JsonSchemaValidator

LABEL = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["spam", "ham"]}}}


@pytest.fixture
def schema_server(receiver):
    """The receiver serving ``/schemas/label.json``; returns its base URL."""
    receiver.documents["/schemas/label.json"] = json.dumps(LABEL).encode()
    return f"http://127.0.0.1:{receiver.port}/schemas/"


def fetches(receiver):
    return [r.path for r in receiver.requests if r.method == "GET"]


def check(validator, record, output, schema):
    return validator.validate(record(output=output), loopai.ValidationContext(output_schema=schema))


def test_remote_refs_are_off_by_default_and_the_result_says_how_to_allow_them(receiver, schema_server, record):
    schema = {"$ref": schema_server + "label.json"}
    result = check(JsonSchemaValidator(), record, {"label": "spam"}, schema)
    assert not result.is_valid
    assert "remote refs are off" in result.message and "remote_refs" in result.message
    assert schema_server + "label.json" in result.message
    assert list(result.errors) == ["$.output_schema"]
    assert fetches(receiver) == []  # nothing was sent


def test_an_allowed_document_is_fetched_once_and_applied(receiver, schema_server, record, make_host):
    validator = JsonSchemaValidator({"remote_refs": [schema_server], "remote_ref_timeout": 2})
    schema = {"type": "object", "properties": {"result": {"$ref": schema_server + "label.json"}}}
    with make_host(validator) as host:
        verdicts = [
            host.validate(record(output={"result": {"label": label}}), loopai.ValidationContext(output_schema=schema))
            for label in ["spam", "ham", "eggs"] * 10
        ]
    assert [v.is_valid for v in verdicts] == [True, True, False] * 10
    assert verdicts[2].results[0].errors == {"$.output.result.label": ["'eggs' is not one of ['spam', 'ham']"]}
    assert fetches(receiver) == ["/schemas/label.json"]  # one fetch for thirty records
    assert receiver.requests[0].headers["accept"].startswith("application/schema+json")


@pytest.mark.parametrize(
    "allowed",
    [
        "http://127.0.0.1:{port}/other/",  # another path on the same server
        "http://127.0.0.1:1/schemas/",  # another port
        "http://127.0.0.1:{port}/schemas/label.json.evil",  # a longer prefix
    ],
)
def test_a_document_outside_the_prefixes_is_not_fetched(receiver, schema_server, record, allowed):
    validator = JsonSchemaValidator({"remote_refs": [allowed.format(port=receiver.port)]})
    result = check(validator, record, {"label": "spam"}, {"$ref": schema_server + "label.json"})
    assert not result.is_valid
    assert "under none of the remote_refs prefixes" in result.message
    assert fetches(receiver) == []


def test_a_prefix_of_a_bare_origin_does_not_allow_a_lookalike_host():
    validator = JsonSchemaValidator({"remote_refs": ["https://schemas.example.com"]})
    assert validator.config.remote_refs == ["https://schemas.example.com/"]
    with pytest.raises(loopai.PluginSettingsError, match=r"remote_refs.*not an http:// or https:// URL prefix"):
        JsonSchemaValidator({"remote_refs": ["file:///etc/"]})


def test_a_dripping_schema_server_is_cut_off_at_remote_ref_timeout(receiver, schema_server, record):
    receiver.drip(0.2, body=json.dumps(LABEL).encode())
    validator = JsonSchemaValidator({"remote_refs": [schema_server], "remote_ref_timeout": 0.5})
    started = time.monotonic()
    result = check(validator, record, {"label": "spam"}, {"$ref": schema_server + "label.json"})
    assert time.monotonic() - started < 1.5
    assert not result.is_valid
    assert "no answer within 0.5 s (remote_ref_timeout)" in result.message


@pytest.mark.parametrize(
    ("path", "words"),
    [("/schemas/missing.json", "answered 404 Not Found"), ("/schemas/page.html", "not JSON")],
)
def test_a_document_that_cannot_be_used_is_named(receiver, schema_server, record, path, words):
    receiver.documents["/schemas/page.html"] = b"<html>hello</html>"
    validator = JsonSchemaValidator({"remote_refs": [schema_server]})
    result = check(validator, record, {"label": "spam"}, {"$ref": f"http://127.0.0.1:{receiver.port}{path}"})
    assert not result.is_valid and words in result.message


@pytest.mark.parametrize(
    ("trouble", "words"),
    [
        ("error", "the server answered 500 Internal Server Error"),
        ("slow", "no answer within 0.3 s (remote_ref_timeout)"),
    ],
)
def test_a_failed_fetch_is_kept_every_record_gets_its_message_and_no_new_request(
    receiver, schema_server, record, trouble, words
):
    if trouble == "error":
        receiver.fail(20, status=500)  # it would fail every time it was asked
    else:
        receiver.slow(5.0, times=20)
    url = schema_server + "label.json"
    validator = JsonSchemaValidator({"remote_refs": [schema_server], "remote_ref_timeout": 0.3})
    schemas = [{"$ref": url}, {"type": "object", "properties": {"result": {"$ref": url}}}]  # two schemas, one URL
    check(validator, record, {"label": "eggs"}, LABEL)  # an error: jsonschema is imported before the clock starts
    started = time.monotonic()
    results = [check(validator, record, {"result": {"label": "spam"}}, schemas[i % 2]) for i in range(8)]
    assert time.monotonic() - started < 1.5  # one timeout (0.3 s), not eight
    assert fetches(receiver) == ["/schemas/label.json"]  # one request for eight records
    assert not any(r.is_valid for r in results)
    assert len({r.message for r in results}) == 1  # the same message for each record
    assert url in results[0].message and words in results[0].message
    assert "tried again in 60 s" in results[0].message
    assert all(list(r.errors) == ["$.output_schema"] for r in results)


def test_a_schema_server_that_is_down_is_tried_once(down_url, record, monkeypatch):
    import socket

    attempts: list[object] = []
    connect = socket.create_connection

    def counted(address, *args, **kwargs):
        attempts.append(address)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counted)  # httpcore connects through it
    prefix = down_url.rsplit("/", 2)[0] + "/"
    url = prefix + "label.json"
    validator = JsonSchemaValidator({"remote_refs": [prefix], "remote_ref_timeout": 2})
    results = [check(validator, record, {"label": "spam"}, {"$ref": url}) for _ in range(5)]
    assert len(attempts) == 1  # one connection attempt for five records
    assert len({r.message for r in results}) == 1
    assert not results[0].is_valid
    assert url in results[0].message and "fetching it failed (ConnectError)" in results[0].message


def test_new_settings_try_a_failed_document_again(receiver, schema_server, record):
    receiver.fail(1, status=503)
    url = schema_server + "label.json"
    validator = JsonSchemaValidator({"remote_refs": [schema_server]})
    assert "answered 503" in check(validator, record, {"label": "spam"}, {"$ref": url}).message
    validator.configure({"remote_refs": [schema_server]})
    assert check(validator, record, {"label": "spam"}, {"$ref": url}).is_valid  # the server has recovered
    assert fetches(receiver) == ["/schemas/label.json"] * 2


def test_a_failed_document_is_tried_again_after_a_while(receiver, schema_server, record, monkeypatch):
    """A long-running service gets over a schema server's outage without a reload."""
    from loopai_builtin import _schema_refs

    monkeypatch.setattr(_schema_refs, "RETRY_FAILED_AFTER", 0.3)
    receiver.fail(1, status=503)
    url = schema_server + "label.json"
    validator = JsonSchemaValidator({"remote_refs": [schema_server]})
    assert "answered 503" in check(validator, record, {"label": "spam"}, {"$ref": url}).message
    assert "answered 503" in check(validator, record, {"label": "spam"}, {"$ref": url}).message  # kept
    time.sleep(0.4)
    assert check(validator, record, {"label": "spam"}, {"$ref": url}).is_valid  # the server has recovered
    assert fetches(receiver) == ["/schemas/label.json"] * 2
