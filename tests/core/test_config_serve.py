"""The ``[serve]`` table: defaults, ``${VAR}`` keys, secrets never shown, and the mistakes it refuses."""

from __future__ import annotations

import pytest

import loopai
from loopai.config import parse_config


def test_defaults_listen_on_loopback_with_the_documented_limits():
    serve = parse_config({}).serve
    assert (serve.host, serve.port, serve.workers) == ("127.0.0.1", 8080, 1)
    assert serve.api_keys == [] and serve.inbound_secret is None
    assert (serve.shutdown_timeout, serve.max_body_mb, serve.max_batch_items) == (10.0, 10.0, 10_000)


def test_keys_and_numbers_come_from_the_environment_and_are_never_shown():
    config = parse_config(
        {"serve": {"api_keys": ["${KEY_A}", "literal-key"], "inbound_secret": "${HOOK}", "port": "${PORT}"}},
        environ={"KEY_A": "from-env", "HOOK": "s3cret", "PORT": "9001"},
    )
    assert [key.get_secret_value() for key in config.serve.api_keys] == ["from-env", "literal-key"]
    assert config.serve.port == 9001
    shown = repr(config.serve) + str(loopai.redact(config.serve))
    assert "from-env" not in shown and "literal-key" not in shown and "s3cret" not in shown


@pytest.mark.parametrize(
    ("table", "environ", "says"),
    [
        ({"api_keys": ["${MISSING}"]}, {}, "serve.api_keys[0]: environment variable MISSING is not set"),
        ({"api_keys": ["${EMPTY:-}"]}, {}, "an API key must not be empty"),
        ({"max_body_mb": 0}, {}, "serve.max_body_mb"),
        ({"workers": 0}, {}, "serve.workers"),
        ({"api_key": "typo"}, {}, "serve.api_key"),
    ],
)
def test_mistakes_are_refused_naming_the_field(table, environ, says):
    with pytest.raises(loopai.ConfigError) as raised:
        parse_config({"serve": table}, environ=environ)
    assert any(says in problem for problem in raised.value.problems), raised.value.problems
