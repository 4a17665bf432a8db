"""Every plugin is built and configured once, whatever its source; deny rules cover every source;
one isolation policy for sync and async plugins alike."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

import pytest

import loopai

COUNTING_MODULE = """
import loopai
from pydantic import BaseModel

BUILT = []
CHECKED = []


class Counted(loopai.WebhookHandlerPlugin):
    class Config(BaseModel):
        url: str = ""

    def __init__(self, config=None, **options):
        BUILT.append(config)
        super().__init__(config, **options)

    def validate_configuration(self, configuration):
        CHECKED.append(dict(configuration))
        return bool(configuration.get("url"))

    def handle_event(self, event, context):
        pass
"""


@pytest.fixture
def counting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"loopai_test_counting_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(COUNTING_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module(name)
    yield name, module
    sys.modules.pop(name, None)


def test_a_factory_plugin_is_built_validated_and_checked_once(counting) -> None:
    name, module = counting
    config = loopai.parse_config(
        {
            "plugins": {
                "webhook_handlers": {
                    "counted": {
                        "factory": f"{name}:Counted",
                        "configuration": {"url": "https://example.invalid/hooks"},
                        "priority": 7,
                    }
                }
            }
        }
    )

    host = loopai.Host(config, environ={})

    assert host.problems == []
    plugin = host.registry.resolve(loopai.WebhookHandlerPlugin, "counted")
    assert plugin is not None and plugin.priority == 7 and plugin.config.url == "https://example.invalid/hooks"
    assert len(module.BUILT) == 1  # constructed once, with its validated settings
    assert module.CHECKED == [{"url": "https://example.invalid/hooks"}]  # asked once


def test_a_plugin_registered_in_code_is_configured_once_from_its_entry(counting) -> None:
    _, module = counting
    handler = module.Counted(name="counted")
    config = loopai.parse_config(
        {"plugins": {"webhook_handlers": {"counted": {"configuration": {"url": "https://a.invalid/"}}}}}
    )

    host = loopai.Host(config, plugins=[handler], environ={})

    assert host.problems == [] and handler.config.url == "https://a.invalid/"
    assert module.CHECKED == [{"url": "https://a.invalid/"}]


def test_a_refused_configuration_leaves_the_plugin_out_naming_it(counting) -> None:
    name, module = counting
    config = loopai.parse_config(
        {"plugins": {"webhook_handlers": {"counted": {"factory": f"{name}:Counted"}}}}, label="loopai.toml"
    )

    host = loopai.Host(config, environ={})

    assert not host.registry.contains("webhook-handler", "counted")
    [problem] = host.problems
    assert problem.startswith("loopai.toml: webhook_handlers.counted: webhook handler 'counted' refused its settings")
    assert len(module.CHECKED) == 1


def test_deny_rules_turn_off_factory_plugins_too(counting) -> None:
    name, module = counting
    config = loopai.parse_config(
        {
            "deny": ["count*"],
            "plugins": {
                "webhook_handlers": {
                    "counted": {"factory": f"{name}:Counted", "configuration": {"url": "https://x.invalid/"}}
                }
            },
        }
    )
    from_config = loopai.Host(config, environ={})
    from_env = loopai.Host(config.model_copy(update={"deny": []}), environ={"LOOPAI_DISABLE_PLUGINS": "counted"})

    for host in (from_config, from_env):
        assert not host.registry.contains("webhook-handler", "counted")
        assert host.problems == []  # turned off on purpose: not a problem
    assert module.BUILT == []  # never imported into a plugin, never constructed


class RaisesCancelled(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        raise asyncio.CancelledError("not a real cancellation")


class AsyncRaisesCancelled(loopai.ValidatorPlugin):
    async def validate(self, execution, context):
        raise asyncio.CancelledError("not a real cancellation either")


def execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(task_id=uuid.uuid4(), program_id=uuid.uuid4())


def test_a_sync_plugin_raising_cancelled_error_is_that_plugins_failure() -> None:
    host = loopai.Host(plugins=[RaisesCancelled()], environ={})

    report = host.validate(execution())

    assert not report.is_valid
    assert [f.problem for f in report.failures] == ["exception"]
    assert "CancelledError" in report.failures[0].message


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 cannot tell a plugin's CancelledError from its caller's")
def test_an_async_plugin_raising_cancelled_error_is_its_failure_unless_the_caller_was_cancelled() -> None:
    host = loopai.Host(plugins=[AsyncRaisesCancelled()], environ={})

    report = asyncio.run(host.avalidate(execution()))
    assert [f.problem for f in report.failures] == ["exception"]

    class Slow(loopai.ValidatorPlugin):
        async def validate(self, execution, context):
            await asyncio.sleep(10)
            return loopai.ValidationResult(is_valid=True)

    async def cancelled() -> None:
        slow = loopai.Host(plugins=[Slow()], environ={})
        task = asyncio.ensure_future(slow.avalidate(execution()))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):  # the caller's own cancellation goes through
        asyncio.run(cancelled())


class TimedThenSlow(loopai.ValidatorPlugin):
    """A timed sync validator that ends in about ``hang`` seconds, before a slow async one."""

    priority = 10
    timeout = 5.0

    def validate(self, execution, context):
        time.sleep(execution.output["hang"])
        return loopai.ValidationResult(is_valid=True)


class SlowAfter(loopai.ValidatorPlugin):
    priority = 1

    async def validate(self, execution, context):
        await asyncio.sleep(2)
        return loopai.ValidationResult(is_valid=True)


@pytest.mark.parametrize("timed", ["sync", "async"])
def test_a_cancellation_that_comes_as_a_timed_plugin_ends_is_never_swallowed(timed: str) -> None:
    # asyncio.wait_for before Python 3.12 drops a cancellation that comes as the work it waits for
    # ends: the host went on to the next, slow validator and returned a report, late, to a caller
    # that had been cancelled. Each try lands the caller's 20 ms deadline near the timed call's end.
    first = TimedThenSlow() if timed == "sync" else AsyncTimed()
    host = loopai.Host(plugins=[first, SlowAfter()], environ={})

    async def tries() -> list[str]:
        outcomes = []
        for n in range(40):
            record = loopai.ExecutionRecord(
                task_id=uuid.uuid4(), program_id=uuid.uuid4(), output={"hang": 0.015 + (n % 10) * 0.001}
            )
            try:
                await asyncio.wait_for(host.avalidate(record), 0.02)
            except asyncio.TimeoutError:
                outcomes.append("cancelled")
            else:
                outcomes.append("a report after being cancelled")  # the slow one takes 2 s: never in time
        return outcomes

    try:
        outcomes = asyncio.run(tries())
    finally:
        host.close()

    assert set(outcomes) == {"cancelled"}, outcomes.count("a report after being cancelled")


class AsyncTimed(loopai.ValidatorPlugin):
    priority = 10
    timeout = 5.0

    async def validate(self, execution, context):
        await asyncio.sleep(execution.output["hang"])
        return loopai.ValidationResult(is_valid=True)
