"""The six built-ins are found through their entry points, configured from a file, and can be turned off."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid

import pytest
import standardwebhooks

import loopai
from loopai_builtin import (
    ConsoleWebhookHandler,
    HttpWebhookHandler,
    JsonSchemaValidator,
    PercentageSampler,
    SlackWebhookHandler,
    TimeBasedSampler,
)

BUILTINS = {
    ("validator", "json-schema-validator"): (JsonSchemaValidator, 100),
    ("sampler", "percentage-sampler"): (PercentageSampler, 100),
    ("sampler", "time-based-sampler"): (TimeBasedSampler, 50),
    ("webhook-handler", "console-webhook-handler"): (ConsoleWebhookHandler, 0),
    ("webhook-handler", "slack-webhook-handler"): (SlackWebhookHandler, 100),
    ("webhook-handler", "http-webhook-handler"): (HttpWebhookHandler, 100),
}


@pytest.fixture
def environ(tmp_path):
    """A clean environment (no LOOPAI_* from the caller) with a private discovery cache."""
    return {"LOOPAI_CACHE_DIR": str(tmp_path / "cache")}


def cli(tmp_path, environ, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    done = subprocess.run(
        [sys.executable, "-m", "loopai", "plugins", *args],
        env={**env, **environ},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def builtins_in(listing):
    return {(o["kind"], o["name"]): o for o in json.loads(listing) if o["distribution"] == "loopai-builtin"}


def test_plugins_list_shows_the_six_as_ok(tmp_path, environ):
    found = builtins_in(cli(tmp_path, environ, "list", "--json").stdout)
    assert set(found) == set(BUILTINS)
    for (kind, name), (cls, _) in BUILTINS.items():
        record = found[kind, name]
        assert record["status"] == "ok", record
        assert record["entry_point"] == f"{name} = loopai_builtin:{cls.__name__}"
        assert record["version"] == loopai.__version__  # lockstep


def test_plugins_list_load_constructs_them(tmp_path, environ):
    found = builtins_in(cli(tmp_path, environ, "list", "--load", "--json").stdout)
    idle = {("webhook-handler", "slack-webhook-handler"), ("webhook-handler", "http-webhook-handler")}
    for key, (_, priority) in BUILTINS.items():
        assert found[key]["loaded"] and found[key]["priority"] == priority
        assert found[key]["status"] == ("disabled" if key in idle else "ok"), found[key]
    # Installed but not given a destination, the Slack and HTTP handlers stay off (no failure),
    # and the listing says why and what to set.
    for key in idle:
        assert not found[key]["enabled"]
        assert found[key]["reason"].startswith("idle: validate_configuration() refused its settings"), found[key]
        assert "url" in found[key]["reason"]
    assert "ok:" in cli(tmp_path, environ, "check").stdout


def test_loopai_disable_plugins_turns_them_off(tmp_path, environ):
    off = {**environ, "LOOPAI_DISABLE_PLUGINS": "loopai-builtin:*"}
    assert builtins_in(cli(tmp_path, off, "list", "--json").stdout) == {}
    found = builtins_in(cli(tmp_path, off, "list", "--json", "--all").stdout)
    assert {o["status"] for o in found.values()} == {"disabled"}
    assert len(found) == 6


def test_a_discovering_host_registers_them(environ, record):
    with loopai.Host(discover=True, environ=environ) as host:
        for (kind, name), (cls, priority) in BUILTINS.items():
            plugin = host.registry.resolve(kind, name)
            assert type(plugin) is cls and plugin.priority == priority
            assert plugin.version == loopai.__version__  # from the distribution
        assert not host.problems
        report = host.validate(record(output={"a": 1}), loopai.ValidationContext(output_schema={"type": "object"}))
        assert report.is_valid and report.results[0].validator_type == "json-schema-validator"
        assert host.should_sample(record()).should_sample  # a task's first execution, whoever picks it


def test_some_can_be_turned_off_by_name(environ):
    environ = {**environ, "LOOPAI_DISABLE_PLUGINS": "time-based-sampler,console-*"}
    with loopai.Host(discover=True, environ=environ) as host:
        assert not host.registry.contains("sampler", "time-based-sampler")
        assert not host.registry.contains("webhook-handler", "console-webhook-handler")
        assert host.registry.contains("sampler", "percentage-sampler")
        assert host.registry.contains("validator", "json-schema-validator")


def test_configured_from_a_file_with_secrets_from_the_environment(tmp_path, environ, receiver, event, capsys):
    key = uuid.uuid4().bytes * 2
    secret = "whsec_" + base64.b64encode(key).decode()
    (tmp_path / "loopai.toml").write_text(
        f"""
[plugins.samplers.percentage-sampler]
priority = 10
configuration = {{ SamplingRate = 0.5, seed = 7 }}

[plugins.samplers.time-based-sampler]
enabled = false

[plugins.webhook_handlers.console-webhook-handler.configuration]
stream = "stderr"

[plugins.webhook_handlers.http-webhook-handler.configuration]
url = "{receiver.url}"
secret = "${{LOOPAI_WEBHOOK_SECRET}}"
events = ["canary.rollback"]
""",
        encoding="utf-8",
    )
    environ = {**environ, "LOOPAI_WEBHOOK_SECRET": secret}
    with loopai.Host.from_config(tmp_path / "loopai.toml", environ=environ, outbox=tmp_path / "outbox.db") as host:
        assert not host.problems
        sampler = host.registry.resolve("sampler", "percentage-sampler")
        assert (sampler.priority, sampler.config.sampling_rate, sampler.config.seed) == (10, 0.5, 7)
        assert not host.registry.contains("sampler", "time-based-sampler")
        handler = host.registry.resolve("webhook-handler", "http-webhook-handler")
        assert handler.enabled
        report = host.emit(event("canary.rollback", severity="critical"))
    assert set(report.pending) == {"http-webhook-handler", "console-webhook-handler"}  # recorded; closing delivered
    assert {(row.handler, row.delivered) for row in host.delivery_report()} == {
        ("http-webhook-handler", 1),
        ("console-webhook-handler", 1),
    }
    (request,) = receiver.requests
    standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    out, err = capsys.readouterr()
    assert "+- canary.rollback" in err and not out
    assert secret not in out + err
