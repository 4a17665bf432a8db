"""Plugin switches set in code take what the configuration takes, and refuse the rest naming the plugin."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import loopai


class V(loopai.ValidatorPlugin):
    name = "v"

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=True)


class H(loopai.WebhookHandlerPlugin):
    name = "h"

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        return None


REFUSED: list[tuple[str, object, type[Exception], str]] = [
    ("enabled", "false", TypeError, "enabled must be True or False, got 'false'"),
    ("enabled", 0, TypeError, "enabled must be True or False, got 0"),
    ("enabled", None, TypeError, "enabled must be True or False, got None"),
    ("priority", 1.9, TypeError, "priority must be a whole number (an int), got 1.9"),
    ("priority", "high", TypeError, "priority must be a whole number (an int), got 'high'"),
    ("priority", True, TypeError, "priority must be a whole number (an int), got True"),
    ("timeout", -1, ValueError, "timeout must be a number of seconds above 0, or None for no limit, got -1"),
    ("timeout", 0, ValueError, "timeout must be a number of seconds above 0"),
    ("timeout", float("nan"), ValueError, "timeout must be a number of seconds above 0"),
    ("timeout", "5", TypeError, "timeout must be a number of seconds above 0, or None for no limit, got '5'"),
    ("workers", 0, ValueError, "workers must be a whole number between 1 and 64, got 0"),
    ("workers", 2.5, TypeError, "workers must be a whole number between 1 and 64, got 2.5"),
    ("memory_limit_mb", 0, ValueError, "memory_limit_mb must be a whole number of megabytes above 0"),
    ("memory_limit_mb", 1.5, TypeError, "memory_limit_mb must be a whole number of megabytes above 0"),
    ("cpu_time_limit_s", -2, ValueError, "cpu_time_limit_s must be a number of seconds above 0"),
    ("isolation", "thread", ValueError, "isolation must be one of 'inline', 'process', got 'thread'"),
    ("run_before", "", ValueError, "run_before must be a plugin name or a list of plugin names"),
    ("run_after", [1], TypeError, "run_after must be a plugin name or a list of plugin names"),
    ("requires_plugins", ["a", ""], ValueError, "requires_plugins must be a plugin name or a list of plugin names"),
    ("requires_plugins", 3, TypeError, "requires_plugins must be a plugin name or a list of plugin names"),
]


@pytest.mark.parametrize(("attr", "value", "error", "message"), REFUSED)
def test_a_wrong_value_set_on_an_instance_is_refused_naming_the_plugin(
    attr: str, value: object, error: type[Exception], message: str
) -> None:
    plugin = V()
    before = getattr(plugin, attr)
    with pytest.raises(error) as refused:
        setattr(plugin, attr, value)
    assert str(refused.value).startswith(f"validator 'v': {message}")
    assert getattr(plugin, attr) == before or (before != before)  # unchanged


@pytest.mark.parametrize(("attr", "value", "error", "message"), REFUSED)
def test_a_wrong_value_in_a_class_body_fails_the_class_statement(
    attr: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        type("BadSampler", (loopai.SamplerPlugin,), {attr: value, "should_sample": lambda self, e, c: None})
    assert str(refused.value).startswith(f"sampler 'bad-sampler': {message}")


def test_constructor_keywords_are_checked_too() -> None:
    with pytest.raises(TypeError, match=r"^validator 'v': enabled must be True or False, got 'no'$"):
        V(enabled="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^validator 'named': priority must be a whole number \(an int\), got 1.9$"):
        V(name="named", priority=1.9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attr", "value", "message"),
    [
        ("max_retries", -1, "max_retries must be a whole number >= 0, or None for the host's setting, got -1"),
        ("max_retries", 1.5, "max_retries must be a whole number >= 0, or None for the host's setting, got 1.5"),
    ],
)
def test_a_handlers_max_retries_is_checked(attr: str, value: object, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=f"^webhook handler 'h': {message}$"):
        setattr(H(), attr, value)


@pytest.mark.parametrize(
    ("attr", "value", "kept"),
    [
        ("enabled", False, False),
        ("priority", -3, -3),
        ("timeout", 2, 2.0),
        ("timeout", 0.25, 0.25),
        ("timeout", None, None),
        ("workers", 64, 64),
        ("memory_limit_mb", 512, 512),
        ("memory_limit_mb", None, None),
        ("cpu_time_limit_s", 1, 1.0),
        ("isolation", "process", "process"),
        ("run_before", "other", ("other",)),
        ("run_after", ["a", "b"], ("a", "b")),
        ("requires_plugins", None, ()),
    ],
)
def test_what_the_configuration_takes_is_taken(attr: str, value: Any, kept: Any) -> None:
    plugin = V()
    setattr(plugin, attr, value)
    assert getattr(plugin, attr) == kept
    subclass = type("Fine", (V,), {attr: value})
    assert getattr(subclass(), attr) == kept
    handler = H()
    handler.max_retries = 0
    assert handler.max_retries == 0


def test_a_refused_timeout_never_reaches_the_host() -> None:
    plugin = V()
    host = loopai.Host(plugins=[plugin], environ={})
    with pytest.raises(ValueError, match="timeout"):
        plugin.timeout = -1
    execution = loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())
    assert host.validate(execution).is_valid
    assert asyncio.run(host.avalidate(execution)).is_valid
