"""Host.should_sample / Host.ashould_sample: first match, isolation, and the host's per-task statistics."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import types
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import loopai

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def record(**fields: Any) -> loopai.ExecutionRecord:
    fields.setdefault("task_id", uuid.uuid4())
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), **fields)


def make_host(*plugins: object, **options: Any) -> loopai.Host:
    options.setdefault("environ", {})
    return loopai.Host(plugins=plugins, **options)


def sampler(name: str, answer: bool, *, priority: int = 0, calls: list[str] | None = None) -> loopai.Plugin:
    class Fixed(loopai.SamplerPlugin):
        def should_sample(self, execution, context):
            if calls is not None:
                calls.append(self.name)
            return loopai.SamplingDecision(should_sample=answer, reason=f"{self.name} says {answer}")

    return Fixed(name=name, priority=priority)


class Spy(loopai.SamplerPlugin):
    """Samples executions whose input is "yes"; remembers what the host told it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Any, int, int, datetime | None]] = []

    def should_sample(self, execution, context):
        self.seen.append(
            (context.task_id, context.total_executions, context.sampled_executions, context.last_sample_time)
        )
        return loopai.SamplingDecision(should_sample=execution.input == "yes", reason="input said so")


# -- first match -----------------------------------------------------------------------


def test_the_first_sampler_that_says_yes_wins_and_later_ones_are_not_asked():
    calls: list[str] = []
    host = make_host(
        sampler("last", True, priority=1, calls=calls),
        sampler("never", False, priority=30, calls=calls),
        sampler("winner", True, priority=20, calls=calls),
    )
    report = host.should_sample(record())
    assert calls == ["never", "winner"]
    assert report.should_sample and bool(report)
    assert report.winner == "winner"
    assert report.reason == "winner says True"
    assert report.sampler_type == "winner"  # the decision gave none: the plugin's name
    assert report.asked == 2
    assert report.decision is not None and report.decision.reason == "winner says True"


def test_a_decision_keeps_its_own_sampler_type():
    class Typed(loopai.SamplerPlugin):
        def should_sample(self, execution, context):
            return loopai.SamplingDecision(should_sample=True, sampler_type="percentage")

    assert make_host(Typed()).should_sample(record()).sampler_type == "percentage"


def test_when_no_sampler_says_yes_nothing_is_sampled_and_the_report_says_why():
    calls: list[str] = []
    report = make_host(sampler("a", False, calls=calls), sampler("b", False, calls=calls)).should_sample(record())
    assert calls == ["a", "b"]
    assert not report.should_sample and not bool(report)
    assert report.winner is None and report.decision is None and report.sampler_type == ""
    assert report.reason  # not empty: the caller can log why


def test_with_no_samplers_nothing_is_sampled():
    report = make_host().should_sample(record())
    assert not report.should_sample
    assert "no sampler" in report.reason


def test_a_raising_sampler_counts_as_no_is_named_and_the_next_is_asked():
    class Broken(loopai.SamplerPlugin):
        priority = 10

        def should_sample(self, execution, context):
            raise ZeroDivisionError("rate is zero")

    calls: list[str] = []
    report = make_host(Broken(), sampler("backup", True, calls=calls)).should_sample(record())
    assert calls == ["backup"]
    assert report.should_sample and report.winner == "backup"
    assert [(f.plugin, f.problem, f.hook) for f in report.failures] == [("broken", "exception", "should_sample")]
    assert "broken" in report.failures[0].message and "rate is zero" in report.failures[0].message


def test_a_sampler_returning_true_instead_of_a_decision_is_wrong_type_not_yes():
    class Sloppy(loopai.SamplerPlugin):
        def should_sample(self, execution, context):
            return True

    host = make_host(Sloppy())
    for report in (host.should_sample(record()), asyncio.run(host.ashould_sample(record()))):
        assert not report.should_sample
        assert [(f.plugin, f.problem) for f in report.failures] == [("sloppy", "wrong-type")]
        assert "sloppy" in report.failures[0].message


def test_a_hanging_async_sampler_times_out_and_the_next_is_asked():
    class Stuck(loopai.SamplerPlugin):
        priority = 5
        timeout = 0.2

        async def should_sample(self, execution, context):
            await asyncio.sleep(10)

    with make_host(Stuck(), sampler("backup", True)) as host:
        for call in (lambda: host.should_sample(record()), lambda: asyncio.run(host.ashould_sample(record()))):
            started = time.perf_counter()
            report = call()
            assert time.perf_counter() - started < 2.0
            assert report.winner == "backup"
            assert [(f.plugin, f.problem) for f in report.failures] == [("stuck", "timeout")]


# -- sync and async plugins from sync and async callers --------------------------------


class SyncSampler(loopai.SamplerPlugin):
    priority = 2

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=execution.input == "sync", reason="sync")


class AsyncSampler(loopai.SamplerPlugin):
    priority = 1

    async def should_sample(self, execution, context):
        await asyncio.sleep(0)
        return loopai.SamplingDecision(should_sample=execution.input == "async", reason="async")


@pytest.mark.parametrize("caller", ["sync", "sync-in-loop", "async"])
def test_def_and_async_def_samplers_work_from_every_caller(caller):
    with make_host(SyncSampler(), AsyncSampler()) as host:

        def ask(execution: loopai.ExecutionRecord) -> loopai.SamplingReport:
            if caller == "sync":
                return host.should_sample(execution)

            async def body() -> loopai.SamplingReport:
                if caller == "async":
                    return await host.ashould_sample(execution)
                return host.should_sample(execution)  # blocking call from inside a running loop

            return asyncio.run(body())

        outcomes = {value: ask(record(input=value)) for value in ("sync", "async", "neither")}
    assert outcomes["sync"].winner == "sync-sampler"
    assert outcomes["async"].winner == "async-sampler"
    assert not outcomes["neither"].should_sample
    assert outcomes["neither"].asked == 2 and outcomes["neither"].reason == "no sampler selected it"
    assert all(o.failures == () for o in outcomes.values())


def test_pluggy_style_samplers_with_a_subset_of_arguments():
    module = types.ModuleType("rate_sampler")

    @loopai.hookimpl
    def should_sample(context):
        return loopai.SamplingDecision(should_sample=context.total_executions % 2 == 0, reason="every other")

    module.should_sample = should_sample
    host = make_host(module)
    task = uuid.uuid4()
    answers = [host.should_sample(record(task_id=task)).should_sample for _ in range(4)]
    assert answers == [True, False, True, False]
    assert host.should_sample(record(task_id=task)).winner == "rate-sampler"


def test_runtime_disable_and_priority_change_apply_to_the_next_call():
    yes, no = sampler("yes", True, priority=1), sampler("no", False, priority=2)
    host = make_host(yes, no)
    assert host.should_sample(record()).winner == "yes"
    yes.enabled = False
    assert not host.should_sample(record()).should_sample
    yes.enabled = True
    calls: list[str] = []
    first = sampler("first", True, priority=0, calls=calls)
    host.registry.register(first)
    worker = threading.Thread(target=lambda: setattr(first, "priority", 999))
    worker.start()
    worker.join()
    assert host.should_sample(record()).winner == "first"
    assert calls == ["first"]


def test_one_sampler_module_registered_under_two_names_is_reported_under_the_right_name():
    module = types.ModuleType("moody")
    answers = iter([RuntimeError("first name fails"), loopai.SamplingDecision(should_sample=True)])

    @loopai.hookimpl
    def should_sample(execution, context):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    module.should_sample = should_sample
    host = make_host()
    host.registry.register(module, name="a", kinds=[loopai.SamplerPlugin])
    host.registry.register(module, name="b", kinds=[loopai.SamplerPlugin])
    report = host.should_sample(record())
    assert [f.plugin for f in report.failures] == ["a"]
    assert (report.winner, report.asked) == ("b", 2)


def test_setting_a_sampler_modules_enabled_and_priority_takes_effect_on_the_next_call():
    module = types.ModuleType("module_sampler")

    @loopai.hookimpl
    def should_sample(execution, context):
        return loopai.SamplingDecision(should_sample=True)

    module.should_sample = should_sample
    host = make_host(module, sampler("plain", True, priority=5))
    assert host.should_sample(record()).winner == "plain"
    module.priority = 10
    assert host.should_sample(record()).winner == "module-sampler"
    module.enabled = False
    assert host.should_sample(record()).winner == "plain"
    module.enabled = True
    assert host.should_sample(record()).winner == "module-sampler"


# -- the host's per-task statistics ----------------------------------------------------


def test_a_sampler_sees_the_tasks_counts_from_before_this_execution():
    spy = Spy()
    host = make_host(spy)
    task = uuid.uuid4()
    times = [T0 + timedelta(seconds=s) for s in (0, 10, 20, 30)]
    inputs = ["no", "yes", "no", "yes"]
    for when, value in zip(times, inputs):
        host.should_sample(record(task_id=task, executed_at=when, input=value))
    assert spy.seen == [
        (task, 0, 0, None),
        (task, 1, 0, None),
        (task, 2, 1, times[1]),
        (task, 3, 1, times[1]),
    ]
    stats = host.statistics(task)
    assert (stats.total_executions, stats.sampled_executions, stats.last_sample_time) == (4, 2, times[3])


def test_statistics_are_kept_per_task():
    spy = Spy()
    host = make_host(spy)
    a, b = uuid.uuid4(), uuid.uuid4()
    host.should_sample(record(task_id=a, input="yes", executed_at=T0))
    host.should_sample(record(task_id=a, input="no"))
    host.should_sample(record(task_id=b, input="no"))
    host.should_sample(record(task_id=a, input="no"))
    host.should_sample(record(task_id=b, input="no"))
    assert spy.seen == [(a, 0, 0, None), (a, 1, 1, T0), (b, 0, 0, None), (a, 2, 1, T0), (b, 1, 0, None)]
    assert host.statistics(a).total_executions == 3 and host.statistics(a).sampled_executions == 1
    assert host.statistics(b).total_executions == 2 and host.statistics(b).last_sample_time is None


def test_statistics_for_an_unseen_task_are_zero_and_a_snapshot_cannot_change_the_host():
    host = make_host(sampler("yes", True))
    task = uuid.uuid4()
    empty = host.statistics(task)
    assert (empty.total_executions, empty.sampled_executions, empty.last_sample_time) == (0, 0, None)
    host.should_sample(record(task_id=task))
    snapshot = host.statistics(task)
    snapshot.total_executions = 1000
    assert host.statistics(task).total_executions == 1
    assert empty.total_executions == 0  # an earlier snapshot does not move either


def test_executions_nobody_sampled_and_failed_samplers_are_still_counted():
    class Broken(loopai.SamplerPlugin):
        def should_sample(self, execution, context):
            raise RuntimeError

    host = make_host(Broken())
    task = uuid.uuid4()
    host.should_sample(record(task_id=task))
    host.should_sample(record(task_id=task, status="error"))
    stats = host.statistics(task)
    assert (stats.total_executions, stats.sampled_executions, stats.failed_executions) == (2, 0, 1)


def test_a_callers_own_context_gets_the_hosts_counts_and_is_counted():
    spy = Spy()
    host = make_host(spy)
    task = uuid.uuid4()
    host.should_sample(record(task_id=task, input="yes", executed_at=T0))
    given = loopai.SamplingContext(
        task_id=task, sampling_rate=0.25, total_executions=99, configuration={"window": 5}, metadata={"from": "app"}
    )
    received: list[loopai.SamplingContext] = []

    class Keeper(loopai.SamplerPlugin):
        priority = 10

        def should_sample(self, execution, context):
            received.append(context)
            return loopai.SamplingDecision(should_sample=False)

    host.registry.register(Keeper())
    host.should_sample(record(task_id=task, input="no"), given)
    assert received[0].total_executions == 1 and received[0].sampled_executions == 1
    assert received[0].last_sample_time == T0
    assert received[0].sampling_rate == 0.25 and received[0].configuration == {"window": 5}
    assert received[0].metadata == {"from": "app"}
    assert spy.seen[-1] == (task, 1, 1, T0)
    assert host.statistics(task).total_executions == 2


def test_async_callers_share_the_same_statistics():
    spy = Spy()
    host = make_host(spy)
    task = uuid.uuid4()
    host.should_sample(record(task_id=task, input="yes", executed_at=T0))
    asyncio.run(host.ashould_sample(record(task_id=task, input="yes", executed_at=T0 + timedelta(minutes=1))))
    host.should_sample(record(task_id=task))
    assert spy.seen == [(task, 0, 0, None), (task, 1, 1, T0), (task, 2, 2, T0 + timedelta(minutes=1))]


class EveryMinute(loopai.SamplerPlugin):
    """Time-based sampling with no state of its own: the host remembers the last sample."""

    interval = timedelta(seconds=60)

    def should_sample(self, execution, context):
        due = context.last_sample_time is None or execution.executed_at - context.last_sample_time >= self.interval
        return loopai.SamplingDecision(should_sample=due, reason="interval elapsed" if due else "too soon")


def test_a_stateless_time_based_sampler_samples_once_per_interval():
    plugin = EveryMinute()
    host = make_host(plugin)
    task, other = uuid.uuid4(), uuid.uuid4()
    offsets = [0, 10, 59, 60, 61, 119, 125, 500]
    answers = [
        host.should_sample(record(task_id=task, executed_at=T0 + timedelta(seconds=s))).should_sample for s in offsets
    ]
    assert answers == [True, False, False, True, False, False, True, True]
    # another task has its own clock
    assert host.should_sample(record(task_id=other, executed_at=T0 + timedelta(seconds=10))).should_sample
    # and another host holding the very same plugin instance has its own statistics
    assert make_host(plugin).should_sample(record(task_id=task, executed_at=T0 + timedelta(seconds=501))).should_sample
    assert host.statistics(task).last_sample_time == T0 + timedelta(seconds=500)


def test_concurrent_callers_lose_no_count():
    class EvenInputs(loopai.SamplerPlugin):
        def should_sample(self, execution, context):
            return loopai.SamplingDecision(should_sample=execution.input % 2 == 0)

    host = make_host(EvenInputs())
    task = uuid.uuid4()
    records = [record(task_id=task, input=i) for i in range(500)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            barrier.wait()
            for execution in records:
                host.should_sample(execution)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = host.statistics(task)
    assert stats.total_executions == 4000
    assert stats.sampled_executions == 2000


def test_concurrent_async_callers_lose_no_count():
    host = make_host(sampler("yes", True))
    task = uuid.uuid4()

    async def main() -> None:
        await asyncio.gather(*(host.ashould_sample(record(task_id=task)) for _ in range(200)))

    asyncio.run(main())
    assert host.statistics(task).total_executions == 200
    assert host.statistics(task).sampled_executions == 200


# -- the report as data ----------------------------------------------------------------


def test_sampling_report_to_dict_is_json_and_names_the_plugins():
    class Broken(loopai.SamplerPlugin):
        name = "flaky-sampler"
        priority = 9

        def should_sample(self, execution, context):
            raise RuntimeError("down")

    report = make_host(Broken(), sampler("chooser", True)).should_sample(record())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["should_sample"] is True
    assert data["sampler_type"] == "chooser"
    assert data["reason"] == "chooser says True"
    assert data["winner"] == "chooser" and data["decision"]["reason"] == "chooser says True"
    assert [(f["plugin"], f["problem"]) for f in data["failures"]] == [("flaky-sampler", "exception")]
    assert "flaky-sampler" in data["failures"][0]["message"]
