"""Tests of ErrorRateSampler: contract, behaviour, settings, packaging.

``loopai_host`` is a fixture of loopai's pytest plugin (installed with loopai-core).
"""

from __future__ import annotations

import importlib.metadata
import uuid

import loopai
import pytest
from loopai.testing import TASK_ID, HostFactory, check_plugin, make_execution

from loopai_error_rate_sampler import ErrorRateSampler

LOOPAI_TOML = """
[plugins.samplers.error-rate-sampler.configuration]
threshold = 0.25
min_executions = 8
"""


def test_keeps_the_plugin_contract() -> None:
    check_plugin(ErrorRateSampler)
    check_plugin(ErrorRateSampler, settings={"threshold": 1.0, "min_executions": 1})


def test_samples_while_the_error_rate_is_high(loopai_host: HostFactory) -> None:
    sampler = ErrorRateSampler()
    host = loopai_host(sampler, config=LOOPAI_TOML)
    # 7 successes: too few to judge the rate.
    decisions = [host.should_sample(make_execution()) for _ in range(6)]
    context = loopai.SamplingContext()
    asked_directly = sampler.should_sample(make_execution(), context)
    assert asked_directly.reason == "7 of 8 executions needed to judge the rate"
    decisions.append(host.should_sample(make_execution()))
    assert not any(d.should_sample for d in decisions)
    # 3 failures in 10: 30% >= 25%; every execution is sampled, successes too.
    failures = [host.should_sample(make_execution(status="error")) for _ in range(3)]
    assert [f.should_sample for f in failures] == [False, False, True]  # 1/8, 2/9, 3/10
    success = host.should_sample(make_execution())
    assert (
        success.should_sample and success.reason == "error rate 27.3% (3/11) is at or above 25.0%"
    )
    assert success.decision is not None and success.decision.metadata["failed"] == 3
    # Successes bring the rate down again.
    for _ in range(2):
        host.should_sample(make_execution())
    assert not host.should_sample(make_execution()).should_sample  # 3/14
    assert "(3/15) is below 25.0%" in sampler.should_sample(make_execution(), context).reason
    stats = host.statistics(TASK_ID)
    assert (stats.total_executions, stats.failed_executions) == (14, 3)


def test_each_task_has_its_own_rate(loopai_host: HostFactory) -> None:
    host = loopai_host(ErrorRateSampler({"threshold": 0.5, "min_executions": 2}))
    failing, healthy = uuid.uuid4(), uuid.uuid4()
    for _ in range(3):
        host.should_sample(make_execution(status="timeout", task_id=failing))
        host.should_sample(make_execution(task_id=healthy))
    assert host.should_sample(make_execution(task_id=failing)).should_sample
    assert not host.should_sample(make_execution(task_id=healthy)).should_sample


def test_is_asked_before_samplers_of_lower_priority(loopai_host: HostFactory) -> None:
    class Always(loopai.SamplerPlugin):
        priority = 100

        def should_sample(self, execution, context):
            return loopai.SamplingDecision(should_sample=True, reason="always")

    host = loopai_host(Always(), ErrorRateSampler({"threshold": 0.1, "min_executions": 1}))
    report = host.should_sample(make_execution(status="error"))
    assert report.winner == "error-rate-sampler" and report.asked == 1


def test_without_a_host_it_samples_nothing() -> None:
    sampler = ErrorRateSampler()
    decision = sampler.should_sample(make_execution(status="error"), loopai.SamplingContext())
    assert not decision.should_sample and "not started by a host" in decision.reason


def test_lets_its_host_go(loopai_host: HostFactory) -> None:
    sampler = ErrorRateSampler()
    host = loopai_host(sampler)
    host.close()
    assert sampler.error_rate(make_execution()) is None


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_executions": 0}, "min_executions"),
        ({"rate": 0.1}, "rate"),
    ],
)
def test_settings_are_checked(settings: dict[str, object], field: str) -> None:
    with pytest.raises(loopai.PluginSettingsError, match=field):
        ErrorRateSampler(settings)


def test_is_installed_as_an_entry_point() -> None:
    group, name = "loopai.samplers", "error-rate-sampler"
    found = importlib.metadata.entry_points(group=group, name=name)
    assert [entry_point.load() for entry_point in found] == [ErrorRateSampler]
