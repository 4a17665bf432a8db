"""Host lifecycle (startup/shutdown, context managers, strict mode) and hook-call tracing."""

from __future__ import annotations

import asyncio
import io
import re
import sys
import types
import uuid
from typing import Any

import pytest

import loopai

TRACE_LINE = re.compile(r"^loopai trace: (?P<hook>\w+) (?P<plugin>\S+) (?P<ms>\d+\.\d+) ms\b")


def record(**fields: Any) -> loopai.ExecutionRecord:
    fields.setdefault("task_id", uuid.uuid4())
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), **fields)


def event() -> loopai.WebhookEvent:
    return loopai.WebhookEvent(event_type="task.created")


def make_host(*plugins: object, **options: Any) -> loopai.Host:
    options.setdefault("environ", {})
    return loopai.Host(plugins=plugins, **options)


class Life(loopai.ValidatorPlugin):
    """A validator that logs its lifecycle into a shared list."""

    def __init__(self, name: str, log: list[str], *, priority: int = 0, fail_startup: bool = False) -> None:
        super().__init__(name=name, priority=priority)
        self.log = log
        self.fail_startup = fail_startup
        self.hosts: list[Any] = []

    def startup(self, host):
        self.hosts.append(host)
        self.log.append(f"start {self.name}")
        if self.fail_startup:
            raise OSError(f"{self.name} cannot reach its database")

    def shutdown(self, host):
        self.hosts.append(host)
        self.log.append(f"stop {self.name}")

    def validate(self, execution, context):
        self.log.append(f"validate {self.name}")
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


class LifeSampler(loopai.SamplerPlugin):
    def __init__(self, name: str, log: list[str], *, priority: int = 0) -> None:
        super().__init__(name=name, priority=priority)
        self.log = log

    def startup(self, host):
        self.log.append(f"start {self.name}")

    def shutdown(self, host):
        self.log.append(f"stop {self.name}")

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False)


class AsyncLife(loopai.WebhookHandlerPlugin):
    def __init__(self, name: str, log: list[str], *, priority: int = 0) -> None:
        super().__init__(name=name, priority=priority)
        self.log = log

    async def startup(self, host):
        await asyncio.sleep(0)
        self.log.append(f"start {self.name}")

    async def shutdown(self, host):
        await asyncio.sleep(0)
        self.log.append(f"stop {self.name}")

    async def handle_event(self, event, context):
        self.log.append(f"event {self.name}")


# -- once each -------------------------------------------------------------------------


def test_startup_and_shutdown_run_once_each_and_get_the_host():
    log: list[str] = []
    plugin = Life("db", log)
    host = make_host(plugin)
    assert log == []  # building a host starts nothing
    assert host.start() is host
    host.start()
    with host as entered:
        assert entered is host
        host.validate(record())
    host.close()
    host.close()
    assert log == ["start db", "validate db", "stop db"]
    assert plugin.hosts == [host, host]


def test_with_starts_before_the_body_and_shuts_down_after_it_even_on_error():
    log: list[str] = []
    with pytest.raises(KeyError), make_host(Life("db", log)) as host:
        assert log == ["start db"]
        host.validate(record())
        raise KeyError("app failure")
    assert log == ["start db", "validate db", "stop db"]


def test_a_host_that_never_started_does_not_shut_plugins_down():
    log: list[str] = []
    make_host(Life("db", log)).close()
    assert log == []


def test_shutdown_runs_in_reverse_priority_order_across_kinds():
    log: list[str] = []
    host = make_host(
        LifeSampler("sampler", log, priority=5),
        Life("low", log, priority=-3),
        AsyncLife("handler", log, priority=1),
        Life("high", log, priority=10),
    )
    with host:
        pass
    assert log == [
        "start high",
        "start sampler",
        "start handler",
        "start low",
        "stop low",
        "stop handler",
        "stop sampler",
        "stop high",
    ]


def test_a_plugin_of_two_kinds_starts_and_stops_once():
    log: list[str] = []
    module = types.ModuleType("dual_role")

    @loopai.hookimpl
    def validate(execution):
        return loopai.ValidationResult(is_valid=True)

    @loopai.hookimpl
    def should_sample():
        return loopai.SamplingDecision(should_sample=True)

    @loopai.hookimpl
    def startup(host):
        log.append(f"start {host.registry.count(loopai.ValidatorPlugin)}")

    @loopai.hookimpl
    def shutdown():
        log.append("stop")

    module.validate, module.should_sample, module.startup, module.shutdown = validate, should_sample, startup, shutdown
    with make_host(module) as host:
        assert host.should_sample(record()).winner == "dual-role"
        assert host.validate(record()).is_valid
    assert log == ["start 1", "stop"]


# -- failures at startup and shutdown --------------------------------------------------


def test_a_plugin_whose_startup_raises_is_disabled_and_named_while_others_start():
    log: list[str] = []
    broken, good = Life("broken", log, priority=5, fail_startup=True), Life("good", log)
    with make_host(broken, good) as host:
        assert not broken.enabled and good.enabled
        report = host.validate(record())
    assert [r.validator_type for r in report.results] == ["good"]
    assert len(host.problems) == 1
    assert "broken" in host.problems[0] and "cannot reach its database" in host.problems[0]
    assert "stop broken" not in log  # it never started, so it is not shut down
    assert log == ["start broken", "start good", "validate good", "stop good"]


def test_a_failed_startup_disables_every_kind_the_plugin_implements():
    module = types.ModuleType("half_ready")
    stopped: list[str] = []

    @loopai.hookimpl
    def validate(execution):
        return loopai.ValidationResult(is_valid=False, validator_type="half-ready")

    @loopai.hookimpl
    def should_sample():
        return loopai.SamplingDecision(should_sample=True)

    @loopai.hookimpl
    def startup():
        raise ConnectionRefusedError("no backend")

    @loopai.hookimpl
    def shutdown():
        stopped.append("half-ready")

    module.validate, module.should_sample, module.startup, module.shutdown = validate, should_sample, startup, shutdown
    with make_host(module) as host:
        assert host.validate(record()).results == []
        assert not host.should_sample(record()).should_sample
    assert len(host.problems) == 1 and "half-ready" in host.problems[0]
    assert stopped == []


def test_a_plugin_whose_shutdown_raises_is_named_and_others_still_shut_down():
    log: list[str] = []

    class Leaky(Life):
        def shutdown(self, host):
            super().shutdown(host)
            raise RuntimeError("socket already closed")

    with make_host(Leaky("leaky", log, priority=1), Life("tidy", log, priority=2)) as host:
        pass
    assert log[-2:] == ["stop leaky", "stop tidy"]
    assert len(host.problems) == 1 and "leaky" in host.problems[0] and "socket already closed" in host.problems[0]


def test_a_plugin_disabled_at_run_time_is_still_shut_down():
    log: list[str] = []
    pool = Life("pool", log)
    with make_host(pool, Life("other", log)):
        pool.enabled = False  # switched off while running: its resources are still open
    assert "stop pool" in log and "stop other" in log


def test_a_plugin_registered_after_start_is_not_shut_down_without_having_started():
    log: list[str] = []
    with make_host(Life("first", log)) as host:
        host.registry.register(Life("late", log))
    assert log == ["start first", "stop first"]


def _broken_pair(log: list[str]) -> tuple[Life, Life, Life]:
    return (
        Life("alpha-db", log, priority=3, fail_startup=True),
        Life("fine", log, priority=2),
        Life("beta-cache", log, priority=1, fail_startup=True),
    )


@pytest.mark.parametrize(
    "options",
    [
        {"strict": True},
        {"config": loopai.LoopaiConfig(strict=True)},
        {"environ": {"LOOPAI_STRICT_PLUGINS": "1"}},
    ],
    ids=["argument", "config", "environment"],
)
def test_strict_mode_raises_startup_error_listing_every_broken_plugin(options):
    log: list[str] = []
    host = make_host(*_broken_pair(log), **options)
    with pytest.raises(loopai.StartupError) as caught:
        host.start()
    assert len(caught.value.problems) == 2
    assert "alpha-db" in caught.value.problems[0] and "beta-cache" in caught.value.problems[1]
    assert "alpha-db" in str(caught.value) and "beta-cache" in str(caught.value)
    assert "start fine" in log  # every plugin was tried before raising


def test_strict_startup_failure_shuts_down_the_plugins_that_did_start():
    log: list[str] = []
    with pytest.raises(loopai.StartupError), make_host(*_broken_pair(log), strict=True):
        pass  # never reached
    assert "stop fine" in log
    assert "stop alpha-db" not in log and "stop beta-cache" not in log


def test_without_strict_mode_a_broken_plugin_does_not_raise():
    log: list[str] = []
    host = make_host(*_broken_pair(log))
    host.start()
    assert len(host.problems) == 2
    assert [r.validator_type for r in host.validate(record()).results] == ["fine"]
    host.close()


@pytest.mark.parametrize(
    "options",
    [
        {"config": loopai.LoopaiConfig(strict=True), "environ": {"LOOPAI_STRICT_PLUGINS": "0"}},
        {"strict": False, "environ": {"LOOPAI_STRICT_PLUGINS": "1"}},
    ],
    ids=["environment-over-config", "argument-over-environment"],
)
def test_strict_mode_can_be_turned_off_by_a_more_specific_setting(options):
    host = make_host(*_broken_pair([]), **options)
    host.start()
    assert len(host.problems) == 2
    host.close()


def test_strict_mode_refuses_to_build_a_host_with_registration_problems():
    wrong = types.ModuleType("wrong_args")

    @loopai.hookimpl
    def validate(execution, ctx):
        return loopai.ValidationResult(is_valid=True)

    wrong.validate = validate
    config = loopai.LoopaiConfig(plugins={"samplers": [{"name": "not-installed"}]})
    with pytest.raises(loopai.StartupError) as caught:
        make_host(wrong, config=config, strict=True)
    text = str(caught.value)
    assert len(caught.value.problems) == 2
    assert "wrong-args" in text and "ctx" in text
    assert "not-installed" in text
    lenient = make_host(wrong, Life("good", []), config=config)
    assert len(lenient.problems) == 2
    assert [r.validator_type for r in lenient.validate(record()).results] == ["good"]


# -- pluggy-style and async lifecycle --------------------------------------------------


def test_pluggy_style_module_startup_and_shutdown_hooks_run():
    log: list[Any] = []
    module = types.ModuleType("audit_log")

    @loopai.hookimpl
    def handle_event(event):
        log.append("event")

    @loopai.hookimpl
    async def startup(host):
        await asyncio.sleep(0)
        log.append(("start", host))

    @loopai.hookimpl
    def shutdown(host):
        log.append(("stop", host))

    module.handle_event, module.startup, module.shutdown = handle_event, startup, shutdown
    with make_host(module) as host:
        host.emit(event())
    assert log == [("start", host), "event", ("stop", host)]


def test_async_with_starts_and_closes_the_host():
    log: list[str] = []

    async def main() -> loopai.Host:
        async with make_host(AsyncLife("hook", log), Life("sync", log)) as host:
            assert log == ["start hook", "start sync"]
            await host.aemit(event())
            assert (await host.avalidate(record())).is_valid
        return host

    host = asyncio.run(main())
    assert log == ["start hook", "start sync", "event hook", "validate sync", "stop sync", "stop hook"]
    assert host.problems == []


def test_async_startup_hooks_work_with_a_plain_with():
    log: list[str] = []
    with make_host(AsyncLife("hook", log)) as host:
        host.emit(event())
    assert log == ["start hook", "event hook", "stop hook"]


def test_a_hanging_startup_times_out_and_disables_the_plugin():
    log: list[str] = []

    class Stuck(Life):
        timeout = 0.2

        async def startup(self, host):
            await asyncio.sleep(10)

    with make_host(Stuck("stuck", log), Life("good", log)) as host:
        assert [r.validator_type for r in host.validate(record()).results] == ["good"]
    assert len(host.problems) == 1 and "stuck" in host.problems[0]


# -- tracing ---------------------------------------------------------------------------


def _three_kinds(log: list[str]) -> tuple[object, ...]:
    class Flaky(loopai.WebhookHandlerPlugin):
        name = "flaky-hook"

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def handle_event(self, event, context):
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("first try fails")

    return (Life("checker", log), LifeSampler("picker", log), Flaky())


def _parsed(text: str) -> list[tuple[str, str]]:
    lines = text.splitlines()
    matches = [TRACE_LINE.match(line) for line in lines]
    assert all(matches), lines
    return [(m["hook"], m["plugin"]) for m in matches if m]


def test_trace_to_a_stream_writes_one_line_per_hook_call():
    stream = io.StringIO()
    with make_host(*_three_kinds([]), trace=stream, retry_backoff=0.001) as host:
        host.validate(record())
        host.should_sample(record())
        host.emit(event())
        asyncio.run(host.avalidate(record()))
    calls = _parsed(stream.getvalue())
    dispatch = [c for c in calls if c[0] not in ("startup", "shutdown")]
    assert dispatch == [
        ("validate", "checker"),
        ("should_sample", "picker"),
        ("handle_event", "flaky-hook"),  # the failed first try...
        ("handle_event", "flaky-hook"),  # ...and the retry
        ("validate", "checker"),
    ]
    assert "raised ConnectionError" in stream.getvalue()


def test_a_trace_line_says_the_verdict_and_what_the_call_was_about():
    class Strict(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            return loopai.ValidationResult(is_valid=False, validator_type="strict", message="label is missing")

    class Picky(loopai.SamplerPlugin):
        def should_sample(self, execution, context):
            return loopai.SamplingDecision(should_sample=True, reason="every one", sampler_type="picky")

    stream = io.StringIO()
    judged, picked, told = record(), record(), event()
    with make_host(Strict(name="strict"), Picky(name="picky"), _three_kinds([])[2], trace=stream) as host:
        host.validate(judged)
        host.should_sample(picked)
        host.emit(told)
    lines = stream.getvalue().splitlines()
    assert f"ms -> invalid (label is missing) [execution {judged.id}]" in _line_of(lines, "validate strict")
    assert f"ms -> sampled (every one) [execution {picked.id}]" in _line_of(lines, "should_sample picky")
    about = f"[event task.created {told.event_id}]"
    assert _line_of(lines, "handle_event flaky-hook").endswith(f"ms raised ConnectionError: first try fails {about}")
    assert _line_of(lines, "startup strict").endswith("ms -> None")


def _line_of(lines: list[str], call: str) -> str:
    return next(line for line in lines if line.startswith(f"loopai trace: {call} "))


def test_trace_includes_the_lifecycle_hooks():
    stream = io.StringIO()
    with make_host(Life("checker", []), trace=stream):
        pass
    assert _parsed(stream.getvalue()) == [("startup", "checker"), ("shutdown", "checker")]


@pytest.mark.parametrize(
    "options",
    [{"environ": {"LOOPAI_TRACE": "1"}}, {"config": loopai.LoopaiConfig(trace=True)}, {"trace": True}],
    ids=["environment", "config", "argument"],
)
def test_trace_to_stderr(capfd, options):
    host = make_host(Life("checker", []), **options)
    host.validate(record())
    asyncio.run(host.ashould_sample(record()))
    captured = capfd.readouterr()
    assert captured.out == ""
    assert _parsed(captured.err) == [("validate", "checker")]


@pytest.mark.parametrize(
    "options",
    [{}, {"environ": {"LOOPAI_TRACE": "0"}}, {"trace": False, "environ": {"LOOPAI_TRACE": "1"}}],
    ids=["default", "environment-off", "argument-off"],
)
def test_no_trace_writes_nothing(capfd, options):
    with make_host(*_three_kinds([]), retry_backoff=0.001, **options) as host:
        host.validate(record())
        host.should_sample(record())
        host.emit(event())
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# -- plugins that call sys.exit() -------------------------------------------------------


class Quitter(loopai.ValidatorPlugin):
    """A validator whose constructor calls sys.exit(), as a careless plugin might."""

    def __init__(self, config=None) -> None:
        raise SystemExit("no licence key")

    def validate(self, execution, context):
        raise AssertionError("never constructed")


def test_a_plugin_whose_constructor_calls_sys_exit_is_left_out_and_the_host_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "quitting_plugins", types.SimpleNamespace(Quitter=Quitter))
    config = loopai.LoopaiConfig(plugins={"validators": [{"name": "quitter", "factory": "quitting_plugins:Quitter"}]})
    log: list[str] = []
    with make_host(Life("good", log), config=config) as host:
        report = host.validate(record())
    assert [r.validator_type for r in report.results] == ["good"]
    (problem,) = host.problems
    assert "validators.quitter" in problem and "SystemExit: no licence key" in problem


@pytest.mark.parametrize("hook", ["startup", "shutdown"])
def test_a_lifecycle_hook_that_calls_sys_exit_is_isolated(hook):
    log: list[str] = []

    class Exiting(Life):
        def startup(self, host):
            super().startup(host)
            if hook == "startup":
                raise SystemExit(3)

        def shutdown(self, host):
            super().shutdown(host)
            if hook == "shutdown":
                raise SystemExit(3)

    exiting = Exiting("exiting", log, priority=5)
    with make_host(exiting, Life("good", log)) as host:
        assert exiting.enabled is (hook == "shutdown")
        host.validate(record())
    assert "validate good" in log and "stop good" in log
    (problem,) = host.problems
    assert "'exiting'" in problem and "SystemExit: 3" in problem


def test_sys_exit_in_a_hook_call_is_a_failure_of_that_plugin():
    class Exiting(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            raise SystemExit(1)

    report = make_host(Exiting(), Life("good", [])).validate(record())
    assert [f.plugin for f in report.failures] == ["exiting"]
    assert "raised SystemExit: 1" in report.failures[0].message
    assert [r.validator_type for r in report.results][-1] == "good"


def test_keyboard_interrupt_in_startup_still_stops_the_application():
    class Interrupted(Life):
        def startup(self, host):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_host(Interrupted("interrupted", [])).start()


# -- async lifecycle on the application's loop -------------------------------------------


class LoopWatcher(loopai.WebhookHandlerPlugin):
    """Remembers the event loop its async lifecycle hooks ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def startup(self, host):
        self.loops.append(asyncio.get_running_loop())

    async def shutdown(self, host):
        self.loops.append(asyncio.get_running_loop())

    def handle_event(self, event, context):
        pass


def test_async_with_awaits_async_lifecycle_hooks_on_the_callers_loop():
    watcher = LoopWatcher()

    async def main() -> asyncio.AbstractEventLoop:
        async with make_host(watcher):
            pass
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert watcher.loops == [loop, loop]


def test_astart_and_aclose_run_once_and_isolate_a_failing_async_hook():
    log: list[str] = []

    class Broken(AsyncLife):
        async def startup(self, host):
            raise ConnectionError("no broker")

    async def main() -> loopai.Host:
        host = make_host(Broken("broken", log, priority=1), AsyncLife("hook", log))
        assert await host.astart() is host
        await host.astart()
        await host.aemit(event())
        await host.aclose()
        await host.aclose()
        return host

    host = asyncio.run(main())
    assert log == ["start hook", "event hook", "stop hook"]
    (problem,) = host.problems
    assert "'broken'" in problem and "no broker" in problem


def test_astart_in_strict_mode_shuts_down_what_started_then_raises():
    log: list[str] = []

    class Broken(AsyncLife):
        async def startup(self, host):
            raise ConnectionError("no broker")

    async def main() -> None:
        await make_host(AsyncLife("hook", log, priority=1), Broken("broken", log), strict=True).astart()

    with pytest.raises(loopai.StartupError, match="no broker"):
        asyncio.run(main())
    assert log == ["start hook", "stop hook"]
