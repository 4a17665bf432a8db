"""Host.validate / Host.avalidate: order, stopping, isolation, sync and async plugins, runtime changes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import loopai


def record(**fields: Any) -> loopai.ExecutionRecord:
    fields.setdefault("task_id", uuid.uuid4())
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), **fields)


def make_host(*plugins: object, **options: Any) -> loopai.Host:
    options.setdefault("environ", {})  # never pick up LOOPAI_* from the developer's shell
    return loopai.Host(plugins=plugins, **options)


def validator(name: str, *, priority: int = 0, valid: bool = True, calls: list[str] | None = None) -> loopai.Plugin:
    class Recording(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            if calls is not None:
                calls.append(self.name)
            return loopai.ValidationResult(is_valid=valid, validator_type=self.name)

    return Recording(name=name, priority=priority)


def bounded(function: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Run ``function`` in a thread; fail (instead of hanging the suite) if it deadlocks."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"call did not return within {seconds}s (deadlock?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def names(report: loopai.ValidationReport) -> list[str]:
    return [r.validator_type for r in report.results]


# -- order and outcome -----------------------------------------------------------------


def test_every_enabled_validator_runs_by_priority_descending_then_name():
    calls: list[str] = []
    host = make_host(
        validator("delta", priority=0, calls=calls),
        validator("bravo", priority=10, calls=calls),
        validator("alpha", priority=10, calls=calls),
        validator("charlie", priority=50, calls=calls),
    )
    report = host.validate(record())
    assert calls == ["charlie", "alpha", "bravo", "delta"]
    assert names(report) == calls
    assert report.is_valid and bool(report)
    assert report.failures == ()
    assert not report.stopped_early


def test_report_is_valid_only_when_every_validator_passed():
    host = make_host(validator("ok", priority=2), validator("bad", priority=1, valid=False), validator("ok-too"))
    report = host.validate(record())
    assert names(report) == ["ok", "bad", "ok-too"]  # a failure does not stop the run by default
    assert [r.is_valid for r in report.results] == [True, False, True]
    assert not report.is_valid and not bool(report)
    assert not report.stopped_early


def test_no_validators_is_vacuously_valid():
    report = make_host().validate(record())
    assert report.results == [] and report.is_valid


def test_validators_receive_the_execution_and_a_default_context_with_its_task():
    seen: list[tuple[Any, Any]] = []

    class Spy(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            seen.append((execution, context))
            return loopai.ValidationResult(is_valid=True)

    host = make_host(Spy())
    execution = record(output={"answer": 42})
    host.validate(execution)
    given = loopai.ValidationContext(task_id=execution.task_id, expected_output={"answer": 42})
    host.validate(execution, given)
    assert seen[0][0] is execution
    assert seen[0][1].task_id == execution.task_id and seen[0][1].expected_output is None
    assert seen[1][1] is given


@pytest.mark.parametrize("how", ["argument", "host", "config"])
def test_stop_on_failure_stops_at_the_first_invalid_result(how):
    calls: list[str] = []
    plugins = (
        validator("first", priority=3, calls=calls),
        validator("second", priority=2, valid=False, calls=calls),
        validator("third", priority=1, calls=calls),
    )
    if how == "argument":
        report = make_host(*plugins).validate(record(), stop_on_failure=True)
    elif how == "host":
        report = make_host(*plugins, stop_on_failure=True).validate(record())
    else:
        config = loopai.LoopaiConfig(dispatch={"stop_on_failure": True})
        report = make_host(*plugins, config=config).validate(record())
    assert calls == ["first", "second"]
    assert names(report) == ["first", "second"]
    assert report.stopped_early and not report.is_valid


def test_stop_on_failure_argument_false_overrides_the_host_setting():
    calls: list[str] = []
    host = make_host(
        validator("a", priority=1, valid=False, calls=calls), validator("b", calls=calls), stop_on_failure=True
    )
    report = host.validate(record(), stop_on_failure=False)
    assert calls == ["a", "b"] and not report.stopped_early


def test_stopping_at_the_last_validator_is_not_stopping_early():
    host = make_host(validator("a", priority=1), validator("b", valid=False))
    report = host.validate(record(), stop_on_failure=True)
    assert names(report) == ["a", "b"]
    assert not report.stopped_early and not report.is_valid


def test_stop_on_failure_also_stops_at_a_broken_validator():
    calls: list[str] = []

    class Broken(loopai.ValidatorPlugin):
        priority = 5

        def validate(self, execution, context):
            raise RuntimeError("boom")

    report = make_host(Broken(), validator("later", calls=calls)).validate(record(), stop_on_failure=True)
    assert calls == [] and report.stopped_early
    assert [f.plugin for f in report.failures] == ["broken"]


def mixed(count: int) -> tuple[list[loopai.Plugin], list[str]]:
    """``count`` validators by falling priority: every fourth raises, every fifth returns a
    dict, every seventh says invalid; the rest are valid. Also returns their expected kinds."""
    plugins: list[loopai.Plugin] = []
    kinds: list[str] = []
    for i in range(count):
        kind = "raises" if i % 4 == 3 else "dict" if i % 5 == 4 else "invalid" if i % 7 == 6 else "valid"

        class Mixed(loopai.ValidatorPlugin):
            def validate(self, execution, context, kind=kind):
                if kind == "raises":
                    raise RuntimeError(f"{self.name} broke")
                if kind == "dict":
                    return {"is_valid": True}
                return loopai.ValidationResult(is_valid=kind == "valid", validator_type=self.name)

        plugins.append(Mixed(name=f"v{i:03d}", priority=1000 - i))
        kinds.append(kind)
    return plugins, kinds


@pytest.mark.parametrize("count", [0, 1, 4, 7, 32, 33, 40])
def test_many_or_few_validators_give_the_same_report(count):
    # Few or many validators, raising, wrong-typed and invalid ones mixed in: the report names
    # each and keeps the order, with and without stop_on_failure.
    plugins, kinds = mixed(count)
    host = make_host(*plugins)
    report = host.validate(record())
    assert names(report) == [f"v{i:03d}" for i in range(count)]
    assert [r.is_valid for r in report.results] == [kind == "valid" for kind in kinds]
    assert report.is_valid == all(kind == "valid" for kind in kinds)
    assert [(f.plugin, f.problem) for f in report.failures] == [
        (f"v{i:03d}", "exception" if kind == "raises" else "wrong-type")
        for i, kind in enumerate(kinds)
        if kind in ("raises", "dict")
    ]
    assert not report.stopped_early

    stopped = host.validate(record(), stop_on_failure=True)
    first_bad = next((i for i, kind in enumerate(kinds) if kind != "valid"), None)
    ran = count if first_bad is None else first_bad + 1
    assert names(stopped) == [f"v{i:03d}" for i in range(ran)]
    assert stopped.stopped_early == (ran < count)
    assert stopped.is_valid == (first_bad is None)


def test_a_broken_validators_traceback_shows_the_host_lines_it_went_through():
    class Broken(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            raise RuntimeError("boom")

    failure = make_host(Broken()).validate(record()).failures[0]
    frames = traceback.extract_tb(failure.error.__traceback__)
    text = "".join(traceback.format_exception(failure.error))
    assert "RuntimeError: boom" in text
    assert all(frame.line for frame in frames), text  # every host line it went through is shown, none blank
    assert all(Path(frame.filename).is_file() for frame in frames), text  # real source files, no generated code
    assert 'raise RuntimeError("boom")' in text


def test_hosts_sharing_a_registry_each_see_its_changes():
    registry = loopai.PluginRegistry()
    first, second = (make_host(registry=registry) for _ in range(2))
    assert names(first.validate(record())) == names(second.validate(record())) == []
    registry.register(validator("late"))
    assert names(first.validate(record())) == names(second.validate(record())) == ["late"]
    registry.resolve(loopai.ValidatorPlugin, "late").enabled = False
    assert names(first.validate(record())) == names(second.validate(record())) == []


# -- isolation -------------------------------------------------------------------------


def test_raising_wrong_type_and_hanging_validators_never_stop_the_others():
    release = threading.Event()
    calls: list[str] = []

    class Raises(loopai.ValidatorPlugin):
        name = "raiser"
        priority = 50

        def validate(self, execution, context):
            raise ValueError("schema exploded")

    class ReturnsBool(loopai.ValidatorPlugin):
        name = "bool-returner"
        priority = 40

        def validate(self, execution, context):
            return True

    class ReturnsDict(loopai.ValidatorPlugin):
        name = "dict-returner"
        priority = 30

        def validate(self, execution, context):
            return {"is_valid": True}

    class Hangs(loopai.ValidatorPlugin):
        name = "hanger"
        priority = 20
        timeout = 0.2

        def validate(self, execution, context):
            release.wait(5)  # "sleeps 5 s", but lets the thread go when the test is over
            return loopai.ValidationResult(is_valid=True)

    host = make_host(Raises(), ReturnsBool(), ReturnsDict(), Hangs(), validator("good", calls=calls))
    started = time.perf_counter()
    try:
        report = host.validate(record())
    finally:
        elapsed = time.perf_counter() - started
        release.set()
    assert elapsed < 2.0
    assert calls == ["good"]
    assert names(report) == ["raiser", "bool-returner", "dict-returner", "hanger", "good"]
    assert [r.is_valid for r in report.results] == [False, False, False, False, True]
    assert not report.is_valid
    problems = {f.plugin: f.problem for f in report.failures}
    assert problems == {
        "raiser": "exception",
        "bool-returner": "wrong-type",
        "dict-returner": "wrong-type",
        "hanger": "timeout",
    }
    for failure in report.failures:
        assert failure.plugin in failure.message
        assert failure.hook == "validate"
    by_name = {f.plugin: f for f in report.failures}
    assert "schema exploded" in by_name["raiser"].message
    assert isinstance(by_name["raiser"].error, ValueError)
    assert "bool" in by_name["bool-returner"].message
    assert "dict" in by_name["dict-returner"].message
    assert "0.2" in by_name["hanger"].message
    # the failure is also visible in the invalid result that stands in for the validator
    assert by_name["raiser"].message == report.results[0].message


def test_isolation_holds_for_avalidate_too():
    class Raises(loopai.ValidatorPlugin):
        priority = 3

        def validate(self, execution, context):
            raise KeyError("missing")

    class WrongType(loopai.ValidatorPlugin):
        priority = 2

        async def validate(self, execution, context):
            return {"is_valid": True}

    class Slow(loopai.ValidatorPlugin):
        priority = 1
        timeout = 0.2

        async def validate(self, execution, context):
            await asyncio.sleep(10)

    host = make_host(Raises(), WrongType(), Slow(), validator("good"))
    started = time.perf_counter()
    report = asyncio.run(host.avalidate(record()))
    assert time.perf_counter() - started < 2.0
    assert names(report) == ["raises", "wrong-type", "slow", "good"]
    assert {f.plugin: f.problem for f in report.failures} == {
        "raises": "exception",
        "wrong-type": "wrong-type",
        "slow": "timeout",
    }
    assert report.results[-1].is_valid


def _hanging_validator(release: threading.Event) -> loopai.Plugin:
    class Hangs(loopai.ValidatorPlugin):
        name = "hanger"

        def validate(self, execution, context):
            release.wait(5)
            return loopai.ValidationResult(is_valid=True)

    return Hangs()


def test_default_timeout_comes_from_the_dispatch_settings():
    release = threading.Event()
    config = loopai.LoopaiConfig(dispatch={"default_timeout": 0.2})
    host = make_host(_hanging_validator(release), validator("good"), config=config)
    started = time.perf_counter()
    try:
        report = host.validate(record())
    finally:
        release.set()
    assert time.perf_counter() - started < 2.0
    assert [(f.plugin, f.problem) for f in report.failures] == [("hanger", "timeout")]
    assert {r.validator_type: r.is_valid for r in report.results} == {"good": True, "hanger": False}


def test_timeout_comes_from_the_plugins_configuration_entry():
    release = threading.Event()
    config = loopai.LoopaiConfig(plugins={"validators": [{"name": "hanger", "timeout": 0.2}]})
    host = make_host(_hanging_validator(release), config=config)
    assert host.problems == []
    started = time.perf_counter()
    try:
        report = host.validate(record())
    finally:
        release.set()
    assert time.perf_counter() - started < 2.0
    assert [(f.plugin, f.problem) for f in report.failures] == [("hanger", "timeout")]


def test_a_timeout_set_on_a_running_plugin_applies_from_the_next_call():
    release = threading.Event()
    hanger = _hanging_validator(release)
    host = make_host(hanger)
    release.set()  # no timeout yet: the call waits for the plugin, which returns at once
    assert host.validate(record()).failures == ()
    release.clear()
    hanger.timeout = 0.2
    try:
        report = host.validate(record())
    finally:
        release.set()
    assert [(f.plugin, f.problem) for f in report.failures] == [("hanger", "timeout")]


@pytest.mark.parametrize("caller", ["sync", "async"])
def test_a_plugin_whose_calls_hang_past_their_timeout_is_not_called_again_until_one_ends(caller):
    """A call past its timeout runs on in a thread that cannot be stopped: after five, the next calls
    are refused at once instead of each taking a thread and the timeout's wait."""
    release = threading.Event()
    hanger = _hanging_validator(release)
    hanger.timeout = 0.1
    host = make_host(hanger)
    validate = host.validate if caller == "sync" else lambda r: asyncio.run(host.avalidate(r))
    threads = threading.active_count()
    started = time.perf_counter()
    try:
        messages = [validate(record()).results[0].message for _ in range(20)]
        took = time.perf_counter() - started
        running = threading.active_count() - threads
    finally:
        release.set()
    assert messages[:5] == ["validator 'hanger' took longer than its timeout of 0.1s"] * 5
    assert (
        messages[5:]
        == [
            "validator 'hanger' was not called: 5 of its calls are still running past its timeout of 0.1s "
            '(it hangs: fix it, or set isolation = "process", whose worker is killed at the timeout)'
        ]
        * 15
    )
    assert took < 1.5  # not 20 timeouts' waits
    assert running <= 5 + 2  # the stuck calls (and a loop thread), not one per call
    deadline = time.monotonic() + 5
    while threading.active_count() > threads + 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the released calls end
    assert validate(record()).failures == ()  # called again: it answers at once now


# -- sync and async plugins from sync and async callers --------------------------------


class SyncValidator(loopai.ValidatorPlugin):
    priority = 2

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name, message=str(execution.output))


class AsyncValidator(loopai.ValidatorPlugin):
    priority = 1

    async def validate(self, execution, context):
        await asyncio.sleep(0)
        return loopai.ValidationResult(is_valid=execution.output == "ok", validator_type=self.name)


def _run_validate(host: loopai.Host, execution: loopai.ExecutionRecord, caller: str) -> loopai.ValidationReport:
    if caller == "sync":
        return bounded(lambda: host.validate(execution))

    async def inside_a_running_loop() -> loopai.ValidationReport:
        asyncio.get_running_loop()  # the point: a sync call made from loop code
        return host.validate(execution)

    if caller == "sync-in-loop":
        return bounded(lambda: asyncio.run(inside_a_running_loop()))
    return bounded(lambda: asyncio.run(host.avalidate(execution)))


@pytest.mark.parametrize("caller", ["sync", "sync-in-loop", "async"])
def test_def_and_async_def_validators_work_from_every_caller(caller):
    with make_host(SyncValidator(), AsyncValidator()) as host:
        good = _run_validate(host, record(output="ok"), caller)
        bad = _run_validate(host, record(output="nope"), caller)
    assert names(good) == ["sync-validator", "async-validator"]
    assert good.failures == () and good.is_valid
    assert good.results[0].message == "ok"
    assert [r.is_valid for r in bad.results] == [True, False]
    assert bad.failures == ()


@pytest.mark.parametrize("caller", ["sync", "sync-in-loop", "async"])
def test_a_hanging_async_validator_times_out_from_every_caller(caller):
    class Sleeper(loopai.ValidatorPlugin):
        priority = 1
        timeout = 0.2

        async def validate(self, execution, context):
            await asyncio.sleep(10)
            return loopai.ValidationResult(is_valid=True)

    with make_host(Sleeper(), validator("good")) as host:
        started = time.perf_counter()
        report = _run_validate(host, record(), caller)
        elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert [(f.plugin, f.problem) for f in report.failures] == [("sleeper", "timeout")]
    assert names(report) == ["sleeper", "good"]
    assert report.results[1].is_valid


def test_a_plain_function_returning_a_coroutine_is_awaited():
    async def judge() -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=True, validator_type="lazy")

    class Lazy(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            return judge()

    with make_host(Lazy()) as host:
        assert names(host.validate(record())) == ["lazy"]
        assert names(asyncio.run(host.avalidate(record()))) == ["lazy"]


# -- runtime changes -------------------------------------------------------------------


def test_disabling_and_enabling_a_validator_takes_effect_on_the_next_call():
    calls: list[str] = []
    flaky = validator("flaky", valid=False, calls=calls)
    host = make_host(flaky, validator("steady", calls=calls))
    assert not host.validate(record()).is_valid
    flaky.enabled = False
    report = host.validate(record())
    assert names(report) == ["steady"] and report.is_valid
    flaky.enabled = True
    assert names(host.validate(record())) == ["flaky", "steady"]
    assert calls == ["flaky", "steady", "steady", "flaky", "steady"]


def test_a_priority_change_reorders_the_next_call():
    low, high = validator("low", priority=1), validator("high", priority=100)
    host = make_host(low, high)
    assert names(host.validate(record())) == ["high", "low"]
    low.priority = 999
    assert names(host.validate(record())) == ["low", "high"]
    assert names(asyncio.run(host.avalidate(record()))) == ["low", "high"]


def test_changes_made_from_another_thread_are_seen():
    first, second = validator("first", priority=2), validator("second", priority=1)
    host = make_host(first, second)
    assert names(host.validate(record())) == ["first", "second"]

    def change() -> None:
        second.priority = 999
        first.enabled = False

    worker = threading.Thread(target=change)
    worker.start()
    worker.join()
    assert names(host.validate(record())) == ["second"]


def test_validators_registered_or_removed_after_the_host_was_built_are_seen():
    host = make_host(validator("original"))
    host.registry.register(validator("late", priority=5))
    assert names(host.validate(record())) == ["late", "original"]
    host.registry.unregister(loopai.ValidatorPlugin, "original")
    assert names(host.validate(record())) == ["late"]


def test_validating_while_another_thread_flips_plugins_never_breaks_a_call():
    plugins = [validator(f"v{i}", priority=i) for i in range(4)]
    host = make_host(*plugins)
    stop = threading.Event()
    errors: list[BaseException] = []

    def flip() -> None:
        i = 0
        while not stop.is_set():
            plugin = plugins[i % 4]
            plugin.enabled = not plugin.enabled
            plugin.priority = (plugin.priority + 7) % 11
            i += 1

    def call() -> None:
        try:
            for _ in range(300):
                report = host.validate(record())
                assert report.failures == () and report.is_valid
                assert len(set(names(report))) == len(report.results)
        except BaseException as exc:
            errors.append(exc)

    flipper = threading.Thread(target=flip)
    callers = [threading.Thread(target=call) for _ in range(4)]
    flipper.start()
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    stop.set()
    flipper.join()
    assert errors == []
    for plugin in plugins:
        plugin.enabled = True
        plugin.priority = 0
    assert names(host.validate(record())) == ["v0", "v1", "v2", "v3"]


# -- pluggy-style plugins --------------------------------------------------------------


def test_a_module_with_hookimpl_functions_is_dispatched_like_a_plugin_class():
    module = types.ModuleType("schema_check")
    seen: list[Any] = []

    @loopai.hookimpl
    def validate(execution, context):
        seen.append((execution.id, context.task_id))
        return loopai.ValidationResult(is_valid=execution.output is not None, validator_type="schema-check")

    module.validate = validate
    module.priority = 10
    host = make_host(module, validator("class-based"))
    execution = record(output=None)
    report = host.validate(execution)
    assert names(report) == ["schema-check", "class-based"]
    assert not report.is_valid
    assert seen == [(execution.id, execution.task_id)]
    assert host.registry.contains(loopai.ValidatorPlugin, "schema-check")


def test_hookimpls_may_take_a_subset_of_the_arguments_in_any_order():
    only_context = types.ModuleType("only_context")
    only_execution = types.ModuleType("only_execution")
    nothing = types.ModuleType("nothing_at_all")
    swapped = types.SimpleNamespace(name="swapped")
    got: dict[str, Any] = {}

    @loopai.hookimpl
    def validate_context(context):
        got["context"] = context
        return loopai.ValidationResult(is_valid=True, validator_type="only-context")

    @loopai.hookimpl
    def validate_execution(execution):
        got["execution"] = execution
        return loopai.ValidationResult(is_valid=True, validator_type="only-execution")

    @loopai.hookimpl
    def validate_nothing():
        return loopai.ValidationResult(is_valid=True, validator_type="nothing-at-all")

    @loopai.hookimpl
    def validate_swapped(context, execution):
        got["swapped"] = (context, execution)
        return loopai.ValidationResult(is_valid=True, validator_type="swapped")

    only_context.validate = validate_context
    only_execution.validate = validate_execution
    nothing.validate = validate_nothing
    swapped.validate = validate_swapped
    host = make_host(only_context, only_execution, nothing, swapped)
    assert host.problems == []
    execution = record()
    context = loopai.ValidationContext(task_id=execution.task_id)
    report = host.validate(execution, context)
    assert sorted(names(report)) == ["nothing-at-all", "only-context", "only-execution", "swapped"]
    assert report.failures == ()
    assert got["context"] is context
    assert got["execution"] is execution
    assert got["swapped"] == (context, execution)
    assert asyncio.run(host.avalidate(execution, context)).failures == ()


def test_an_async_hookimpl_module_works_from_sync_and_async_callers():
    module = types.ModuleType("async_mod")

    @loopai.hookimpl
    async def validate(execution):
        await asyncio.sleep(0)
        return loopai.ValidationResult(is_valid=True, validator_type="async-mod")

    module.validate = validate
    with make_host(module) as host:
        assert names(host.validate(record())) == ["async-mod"]
        assert names(asyncio.run(host.avalidate(record()))) == ["async-mod"]


def test_a_raising_hookimpl_is_named_by_its_module():
    module = types.ModuleType("fragile_rules")

    @loopai.hookimpl
    def validate(execution, context):
        raise RuntimeError("nope")

    module.validate = validate
    report = make_host(module, validator("good")).validate(record())
    assert [(f.plugin, f.problem) for f in report.failures] == [("fragile-rules", "exception")]
    assert "fragile-rules" in report.failures[0].message
    assert report.results[1].is_valid


# -- the report as data ----------------------------------------------------------------


def test_validation_report_to_dict_is_json_and_names_the_plugins():
    class Raises(loopai.ValidatorPlugin):
        name = "exploder"

        def validate(self, execution, context):
            raise RuntimeError("kaboom")

    report = make_host(Raises(), validator("fine", priority=1)).validate(record())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["is_valid"] is False
    assert data["stopped_early"] is False
    assert [r["validator_type"] for r in data["results"]] == ["fine", "exploder"]
    assert data["failures"] == [
        {
            "plugin": "exploder",
            "hook": "validate",
            "problem": "exception",
            "message": report.failures[0].message,
            "attempts": 1,
        }
    ]
    assert "kaboom" in data["failures"][0]["message"]


@pytest.mark.parametrize("call", ["validate", "should_sample", "process", "avalidate", "ashould_sample", "aprocess"])
def test_a_dict_instead_of_a_record_is_a_type_error_that_says_what_to_pass(call: str) -> None:
    fields = json.loads(record().model_dump_json())  # a record's fields, as a caller's JSON would give them
    with make_host(validator("v")) as host:
        method = getattr(host, call)
        with pytest.raises(TypeError) as raised:
            result = method(fields)
            if asyncio.iscoroutine(result):
                asyncio.run(result)
        assert str(raised.value) == (
            f"host.{call}() takes a loopai.ExecutionRecord, not dict; "
            "make one with loopai.ExecutionRecord.model_validate(...)"
        )
        assert host.validate(loopai.ExecutionRecord.model_validate(fields)).is_valid  # which works


def test_a_hook_that_returns_nothing_is_told_it_may_lack_a_return():
    class Forgetful(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            loopai.ValidationResult(is_valid=True)  # built, never returned

    [failure] = make_host(Forgetful()).validate(record()).failures
    assert failure.problem == "wrong-type"
    assert "returned None (a missing return?), but validate must return ValidationResult" in failure.message
    line = Forgetful.validate.__code__.co_firstlineno
    assert failure.message.endswith(f" (its validate: {__file__}:{line})")  # where to add the return
