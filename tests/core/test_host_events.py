"""Host.emit / Host.aemit: event filtering, order, retries with backoff, dry run, handler settings."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import types
import uuid
from typing import Any

import pydantic
import pytest

import loopai

EventType = loopai.WebhookEventType


def event(kind: str | EventType = EventType.PROGRAM_EXECUTION_FAILED, **fields: Any) -> loopai.WebhookEvent:
    return loopai.WebhookEvent(event_type=kind, task_id=uuid.uuid4(), **fields)


def make_host(*plugins: object, **options: Any) -> loopai.Host:
    options.setdefault("environ", {})
    options.setdefault("retry_backoff", 0.001)  # retries without real waiting, unless a test wants it
    return loopai.Host(plugins=plugins, **options)


class Recorder(loopai.WebhookHandlerPlugin):
    """Records (name, event type, context) for every call; fails the first ``failures`` calls."""

    def __init__(self, name: str, *, priority: int = 0, events: Any = None, failures: int = 0, log: list | None = None):
        super().__init__(name=name, priority=priority)
        if events is not None:
            self.supported_events = events
        self.failures = failures
        self.log = log if log is not None else []
        self.contexts: list[loopai.WebhookHandlerContext] = []

    def handle_event(self, event, context):
        self.log.append((self.name, str(event.event_type)))
        self.contexts.append(context)
        if len(self.contexts) <= self.failures:
            raise ConnectionError(f"{self.name} attempt {len(self.contexts)} failed")


class AsyncRecorder(Recorder):
    async def handle_event(self, event, context):
        await asyncio.sleep(0)
        Recorder.handle_event(self, event, context)


def emit_with(host: loopai.Host, caller: str, evt: loopai.WebhookEvent, **kw: Any) -> loopai.EmitReport:
    if caller == "sync":
        return host.emit(evt, **kw)

    async def body() -> loopai.EmitReport:
        if caller == "async":
            return await host.aemit(evt, **kw)
        return host.emit(evt, **kw)  # a blocking call made from inside a running loop

    return asyncio.run(body())


CALLERS = ["sync", "sync-in-loop", "async"]


# -- who gets the event ----------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
def test_only_handlers_supporting_the_event_type_are_called(caller):
    log: list[tuple[str, str]] = []
    host = make_host(
        Recorder("wire-name", events=["program.execution.failed"], log=log),
        Recorder("csharp-name", events=["TaskCreated", "CanaryRollback"], log=log),
        Recorder("enum", events=[EventType.CANARY_ROLLBACK], log=log),
        Recorder("single-string", events="program.execution.failed", log=log),
        Recorder("everything", log=log),
    )
    failed = emit_with(host, caller, event("program.execution.failed"))
    created = emit_with(host, caller, event(EventType.TASK_CREATED))
    rollback = emit_with(host, caller, event("CanaryRollback"))
    nobody = emit_with(host, caller, event(EventType.TASK_DELETED))
    assert sorted(failed.delivered) == ["everything", "single-string", "wire-name"]
    assert sorted(created.delivered) == ["csharp-name", "everything"]
    assert sorted(rollback.delivered) == ["csharp-name", "enum", "everything"]
    assert nobody.delivered == ("everything",)
    assert sorted(name for name, kind in log if kind == "task.created") == ["csharp-name", "everything"]
    assert len(log) == 3 + 2 + 3 + 1


def test_handlers_are_called_by_priority_then_name():
    log: list[tuple[str, str]] = []
    host = make_host(
        Recorder("b", priority=5, log=log),
        Recorder("low", priority=-1, log=log),
        Recorder("a", priority=5, log=log),
        Recorder("top", priority=100, log=log),
    )
    report = host.emit(event())
    assert [name for name, _ in log] == ["top", "a", "b", "low"]
    assert report.delivered == ("top", "a", "b", "low")
    assert report.ok and bool(report) and report.failures == ()
    # aemit runs handlers concurrently (sync ones in worker threads, which may finish in any
    # order): async handlers start in priority order, and the report lists all in that order.
    log.clear()
    report = asyncio.run(host.aemit(event()))
    assert sorted(name for name, _ in log) == ["a", "b", "low", "top"]
    assert report.delivered == ("top", "a", "b", "low")
    log.clear()
    names = [("b", 5), ("low", -1), ("a", 5), ("top", 100)]
    report = asyncio.run(make_host(*(AsyncRecorder(n, priority=p, log=log) for n, p in names)).aemit(event()))
    assert [name for name, _ in log] == ["top", "a", "b", "low"]
    assert report.delivered == ("top", "a", "b", "low")


def test_disabled_handlers_are_skipped_from_the_next_call():
    quiet, loud = Recorder("quiet"), Recorder("loud")
    host = make_host(quiet, loud)
    assert sorted(host.emit(event()).delivered) == ["loud", "quiet"]
    worker = threading.Thread(target=lambda: setattr(quiet, "enabled", False))
    worker.start()
    worker.join()
    assert host.emit(event()).delivered == ("loud",)
    assert len(quiet.contexts) == 1


def test_pluggy_style_handler_modules_honour_supported_events():
    module = types.ModuleType("slack_notify")
    got: list[Any] = []

    @loopai.hookimpl
    def handle_event(event):
        got.append(event.event_type)

    module.handle_event = handle_event
    module.supported_events = ["ValidationFailed"]
    host = make_host(module)
    assert host.emit(event(EventType.VALIDATION_FAILED)).delivered == ("slack-notify",)
    assert host.emit(event(EventType.TASK_CREATED)).delivered == ()
    assert got == [EventType.VALIDATION_FAILED]


def test_a_handler_with_an_unknown_event_type_is_refused_and_the_others_keep_working():
    good = Recorder("good")
    host = make_host(Recorder("typo", events=["program.exec.failed"]), good)
    (problem,) = host.problems
    assert "'typo'" in problem and "'program.exec.failed' is not an event type" in problem
    assert "program.execution.failed" in problem and "canary.rollback" in problem  # the valid choices
    assert host.emit(event()).delivered == ("good",)
    assert asyncio.run(host.aemit(event())).delivered == ("good",)


def test_a_handler_whose_supported_events_turn_bad_later_is_left_out_and_named():
    flipper, good = Recorder("flipper"), Recorder("good")
    host = make_host(flipper, good)
    flipper.supported_events = ["nonsense"]
    flipper.priority = 1  # any change the registry sees rebuilds what the host calls
    assert host.emit(event()).delivered == ("good",)
    assert host.emit(event()).delivered == ("good",)
    (problem,) = host.problems  # said once
    assert "'flipper'" in problem and "'nonsense'" in problem


def test_a_handler_whose_validate_configuration_raises_is_left_out_and_named():
    class Picky(Recorder):
        def validate_configuration(self, configuration):
            raise KeyError("url")

    config = loopai.LoopaiConfig(plugins={"webhook_handlers": [{"name": "picky", "configuration": {}}]})
    good = Recorder("good")
    host = make_host(Picky("picky"), good, config=config)
    (problem,) = host.problems
    assert "webhook_handlers.picky" in problem and "validate_configuration raised KeyError: 'url'" in problem
    assert not host.registry.contains(loopai.WebhookHandlerPlugin, "picky")
    assert host.emit(event()).delivered == ("good",)


@pytest.mark.parametrize("caller", CALLERS)
def test_one_plugin_object_registered_under_two_names_is_reported_under_both(caller):
    doomed = Recorder("doomed", failures=99)
    host = make_host(max_retries=1)
    host.registry.register(doomed, name="a")
    host.registry.register(doomed, name="b")
    report = emit_with(host, caller, event())
    assert report.delivered == ()
    assert sorted((f.plugin, f.attempts) for f in report.failures) == [("a", 2), ("b", 2)]


def test_one_handler_module_registered_under_two_names_is_reported_under_both():
    module = types.ModuleType("doomed_hook")

    @loopai.hookimpl
    def handle_event(event, context):
        raise ConnectionError("always fails")

    module.handle_event = handle_event
    host = make_host(max_retries=0)
    host.registry.register(module, name="a")
    host.registry.register(module, name="b")
    report = host.emit(event())
    assert report.delivered == ()
    assert sorted(f.plugin for f in report.failures) == ["a", "b"]


def test_setting_a_handler_modules_switches_takes_effect_on_the_next_call():
    module = types.ModuleType("pager")
    got: list[Any] = []

    @loopai.hookimpl
    def handle_event(event):
        got.append(event.event_type)

    module.handle_event = handle_event
    host = make_host(module)
    module.supported_events = ["canary.rollback"]
    assert host.emit(event(EventType.TASK_CREATED)).delivered == ()
    assert host.emit(event(EventType.CANARY_ROLLBACK)).delivered == ("pager",)
    module.enabled = False
    assert host.emit(event(EventType.CANARY_ROLLBACK)).delivered == ()
    del module.enabled
    assert host.emit(event(EventType.CANARY_ROLLBACK)).delivered == ("pager",)
    assert got == [EventType.CANARY_ROLLBACK, EventType.CANARY_ROLLBACK]


def test_changing_a_handler_plugins_supported_events_takes_effect_on_the_next_call():
    handler = Recorder("handler")
    host = make_host(handler)
    assert host.emit(event(EventType.TASK_CREATED)).delivered == ("handler",)
    handler.supported_events = ["canary.rollback"]
    assert host.emit(event(EventType.TASK_CREATED)).delivered == ()


def test_a_handlers_return_value_is_ignored():
    class Chatty(loopai.WebhookHandlerPlugin):
        def handle_event(self, event, context):
            return {"status": 500}

    report = make_host(Chatty()).emit(event())
    assert report.delivered == ("chatty",) and report.ok


# -- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("kind", [Recorder, AsyncRecorder])
def test_a_handler_that_fails_twice_then_succeeds_is_delivered(caller, kind):
    flaky = kind("flaky", failures=2)
    with make_host(flaky) as host:
        report = emit_with(host, caller, event())
    assert [c.retry_attempt for c in flaky.contexts] == [0, 1, 2]
    assert [c.max_retries for c in flaky.contexts] == [3, 3, 3]
    assert report.delivered == ("flaky",)
    assert report.ok and report.failures == ()


@pytest.mark.parametrize("caller", CALLERS)
def test_a_handler_that_always_fails_is_reported_and_others_are_still_delivered(caller):
    doomed = Recorder("doomed", priority=10, failures=99)
    fine = Recorder("fine")
    host = make_host(doomed, fine, max_retries=2)
    report = emit_with(host, caller, event())
    assert len(doomed.contexts) == 3
    assert [c.retry_attempt for c in doomed.contexts] == [0, 1, 2]
    assert report.delivered == ("fine",)
    assert not report.ok
    (failure,) = report.failures
    assert (failure.plugin, failure.hook, failure.problem, failure.attempts) == (
        "doomed",
        "handle_event",
        "exception",
        3,
    )
    assert isinstance(failure.error, ConnectionError)
    assert str(failure.error) == "doomed attempt 3 failed"
    assert "doomed" in failure.message and "attempt 3" in failure.message


def test_the_max_retries_from_configuration_applies():
    doomed = Recorder("doomed", failures=99)
    config = loopai.LoopaiConfig(dispatch={"max_retries": 1, "retry_backoff": 0.001})
    report = loopai.Host(config=config, plugins=[doomed], environ={}).emit(event())
    assert len(doomed.contexts) == 2 and report.failures[0].attempts == 2
    assert doomed.contexts[0].max_retries == 1


def test_a_handlers_own_max_retries_overrides_the_hosts():
    class Once(Recorder):
        max_retries = 0

    class Twice(Recorder):
        max_retries = 1

    once, twice, default = Once("once", failures=99), Twice("twice", failures=99), Recorder("default", failures=99)
    report = make_host(once, twice, default, max_retries=4).emit(event())
    assert (len(once.contexts), len(twice.contexts), len(default.contexts)) == (1, 2, 5)
    assert {f.plugin: f.attempts for f in report.failures} == {"once": 1, "twice": 2, "default": 5}
    assert [c.max_retries for c in twice.contexts] == [1, 1]
    assert default.contexts[-1].retry_attempt == 4


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"slow down for {retry_after}s")
        self.retry_after = retry_after


class Throttled(loopai.WebhookHandlerPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def handle_event(self, event, context):
        self.times.append(time.monotonic())
        if len(self.times) == 1:
            raise RateLimited(0.3)


@pytest.mark.parametrize("caller", ["sync", "async"])
def test_backoff_honours_an_exceptions_retry_after(caller):
    handler = Throttled()
    report = emit_with(make_host(handler), caller, event())
    assert report.delivered == ("throttled",)
    assert len(handler.times) == 2
    assert handler.times[1] - handler.times[0] >= 0.25


def test_backoff_is_short_when_the_host_asks_for_it():
    flaky = Recorder("flaky", failures=3)
    started = time.perf_counter()
    report = make_host(flaky).emit(event())
    assert report.delivered == ("flaky",)
    assert time.perf_counter() - started < 0.5


def test_a_handler_that_times_out_is_retried_and_reported_as_timeout():
    class Stuck(loopai.WebhookHandlerPlugin):
        timeout = 0.1
        max_retries = 1

        def __init__(self) -> None:
            super().__init__()
            self.attempts = 0

        async def handle_event(self, event, context):
            self.attempts += 1
            await asyncio.sleep(10)

    for caller in ("sync", "async"):
        stuck = Stuck()
        with make_host(stuck, Recorder("fine")) as host:
            started = time.perf_counter()
            report = emit_with(host, caller, event())
            assert time.perf_counter() - started < 2.0
        assert stuck.attempts == 2
        assert report.delivered == ("fine",)
        assert [(f.plugin, f.problem, f.attempts) for f in report.failures] == [("stuck", "timeout", 2)]


def test_aemit_runs_handlers_concurrently():
    class Slow(loopai.WebhookHandlerPlugin):
        async def handle_event(self, event, context):
            await asyncio.sleep(0.2)

    host = make_host(*(Slow(name=f"slow-{i}") for i in range(5)))
    started = time.perf_counter()
    report = asyncio.run(host.aemit(event()))
    assert time.perf_counter() - started < 0.8
    assert report.delivered == tuple(f"slow-{i}" for i in range(5))


# -- dry run and settings --------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
def test_dry_run_is_visible_in_the_context(caller):
    handler = Recorder("h", failures=1)
    normal, dry = make_host(handler), make_host(Recorder("d"), dry_run=True)
    emit_with(normal, caller, event())
    assert [c.is_dry_run for c in handler.contexts] == [False, False]
    emit_with(normal, caller, event(), dry_run=True)
    assert [c.is_dry_run for c in handler.contexts[2:]] == [True]
    emit_with(dry, caller, event())
    emit_with(dry, caller, event(), dry_run=False)
    (dry_handler,) = dry.registry.list(loopai.WebhookHandlerPlugin)
    assert [c.is_dry_run for c in dry_handler.contexts] == [True, False]


def test_dry_run_stays_on_for_retries():
    handler = Recorder("h", failures=2)
    make_host(handler, dry_run=True).emit(event())
    assert [(c.retry_attempt, c.is_dry_run) for c in handler.contexts] == [(0, True), (1, True), (2, True)]


def test_dry_run_from_configuration():
    handler = Recorder("h")
    loopai.Host(config=loopai.LoopaiConfig(dispatch={"dry_run": True}), plugins=[handler], environ={}).emit(event())
    assert handler.contexts[0].is_dry_run


class Webhook(loopai.WebhookHandlerPlugin):
    class Config(pydantic.BaseModel):
        url: str = "http://localhost"
        channel: str = "#alerts"
        timeout_s: float = 5.0

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.contexts: list[loopai.WebhookHandlerContext] = []

    def handle_event(self, event, context):
        assert isinstance(self.config, Webhook.Config)
        self.contexts.append(context)


def test_the_context_configuration_reflects_the_handlers_settings():
    handler = Webhook({"url": "https://example.test/hook"})
    make_host(handler).emit(event())
    assert handler.contexts[0].configuration == {
        "url": "https://example.test/hook",
        "channel": "#alerts",
        "timeout_s": 5.0,
    }


def test_settings_and_metadata_from_the_configuration_file_reach_the_context():
    handler = Webhook()
    config = loopai.LoopaiConfig(
        plugins={
            "webhook_handlers": [
                {"name": "webhook", "configuration": {"Channel": "#ops"}, "metadata": {"team": "infra"}}
            ]
        }
    )
    host = make_host(handler, config=config)
    assert host.problems == []
    host.emit(event())
    assert handler.contexts[0].configuration["channel"] == "#ops"
    assert handler.contexts[0].metadata == {"team": "infra"}
    handler.configure({"channel": "#later"})
    host.emit(event())
    assert handler.contexts[1].configuration["channel"] == "#later"


def test_a_handler_cannot_change_the_context_it_shares_with_later_calls():
    """The host reuses one context per handler, so the context refuses changes instead of leaking them."""

    class Meddler(loopai.WebhookHandlerPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[dict[str, Any], bool]] = []
            self.refused: list[str] = []

        def handle_event(self, event, context):
            self.seen.append((dict(context.configuration), context.is_dry_run))
            try:
                context.configuration["poisoned"] = True
            except TypeError as exc:
                self.refused.append(str(exc))
            try:
                context.is_dry_run = True
            except pydantic.ValidationError:
                self.refused.append("frozen")

    meddler = Meddler()
    host = make_host(meddler)
    assert host.emit(event()).ok and host.emit(event()).ok
    assert meddler.seen == [({}, False), ({}, False)]
    assert len(meddler.refused) == 4 and "read-only" in meddler.refused[0]


# -- the report as data ----------------------------------------------------------------


def test_emit_report_to_dict_is_json_and_names_the_plugins():
    evt = event(EventType.CANARY_ROLLBACK, payload={"version": 3})
    report = make_host(Recorder("ok"), Recorder("down", failures=99), max_retries=1).emit(evt)
    data = json.loads(json.dumps(report.to_dict()))
    assert "event_id" not in data  # one report may stand for many events of a type
    assert data["event_type"] == "canary.rollback"
    assert data["delivered"] == ["ok"]
    assert [(f["plugin"], f["problem"], f["attempts"]) for f in data["failures"]] == [("down", "exception", 2)]
    assert "down" in data["failures"][0]["message"]
