"""Per-plugin usage counts: only when asked for, counting calls, failures and time, sync and async."""

from __future__ import annotations

import asyncio
import time
import uuid

import loopai


class Good(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        time.sleep(0.01)
        return loopai.ValidationResult(is_valid=True)


class Broken(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        raise ValueError("nope")


class Sometimes(loopai.SamplerPlugin):
    async def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False)


def record() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(task_id=uuid.uuid4(), program_id=uuid.uuid4(), output=1)


def test_usage_is_empty_unless_the_host_meters():
    host = loopai.Host(plugins=[Good()])
    host.validate(record())
    assert host.plugin_usage() == []


def test_calls_failures_and_time_are_counted_per_plugin_from_sync_and_async_callers():
    host = loopai.Host(plugins=[Good(), Broken(), Sometimes()], meter=True)
    for _ in range(3):
        host.validate(record())
        host.should_sample(record())
    asyncio.run(host.avalidate(record()))
    asyncio.run(host.ashould_sample(record()))
    usage = {(u.kind, u.name): u for u in host.plugin_usage()}
    assert (usage["validator", "good"].calls, usage["validator", "good"].failures) == (4, 0)
    assert usage["validator", "good"].seconds >= 4 * 0.01
    assert (usage["validator", "broken"].calls, usage["validator", "broken"].failures) == (4, 4)
    assert (usage["sampler", "sometimes"].calls, usage["sampler", "sometimes"].failures) == (4, 0)
    assert usage["validator", "broken"].to_dict()["failures"] == 4
    assert (
        usage["validator", "broken"].first_failure == f"validator 'broken' raised ValueError: nope (at {__file__}:20)"
    )
    assert usage["validator", "good"].first_failure is None


def test_a_meter_given_to_the_host_tells_its_observer_of_every_call_with_its_duration():
    from loopai.host import Meter

    seen: list[tuple[str, str, float]] = []
    host = loopai.Host(plugins=[Good(), Broken(), Sometimes()], meter=Meter(observe=lambda *call: seen.append(call)))
    host.validate(record())
    asyncio.run(host.ashould_sample(record()))
    by_plugin = {(kind, name): seconds for kind, name, seconds in seen}
    assert set(by_plugin) == {("validator", "good"), ("validator", "broken"), ("sampler", "sometimes")}
    assert by_plugin[("validator", "good")] >= 0.01  # it sleeps 10 ms
    assert [u.calls for u in host.plugin_usage()] == [1, 1, 1]  # the counts are kept as before
