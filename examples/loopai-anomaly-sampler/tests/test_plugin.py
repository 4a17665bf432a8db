"""Tests of AnomalySampler: contract, behaviour, settings, packaging.

``loopai_host`` is a fixture of loopai's pytest plugin (installed with loopai-core).
"""

from __future__ import annotations

import importlib.metadata
import random
import statistics
import threading
import uuid

import loopai
import pytest
from loopai.testing import TASK_ID, HostFactory, check_plugin, make_execution

from loopai_anomaly_sampler import AnomalySampler
from loopai_anomaly_sampler.plugin import RunningStats

LOOPAI_TOML = """
[plugins.samplers.anomaly-sampler.configuration]
sigma = 3
warmup = 20
"""


def test_keeps_the_plugin_contract() -> None:
    check_plugin(AnomalySampler)
    check_plugin(AnomalySampler, settings={"sigma": 0.5, "warmup": 2, "two_sided": True})


def test_running_stats_match_the_textbook() -> None:
    rng = random.Random(7)
    values = [rng.gauss(100, 15) for _ in range(1000)]
    stats = RunningStats()
    for value in values:
        stats.add(value)
    assert stats.count == 1000
    assert stats.mean == pytest.approx(statistics.fmean(values))
    assert stats.stddev == pytest.approx(statistics.stdev(values))
    single = RunningStats()
    single.add(5.0)
    assert single.stddev == 0.0


def test_samples_a_latency_spike_after_warming_up(loopai_host: HostFactory) -> None:
    host = loopai_host(AnomalySampler(), config=LOOPAI_TOML)
    rng = random.Random(42)
    ordinary = [
        host.should_sample(make_execution(latency_ms=100 + rng.uniform(-5, 5))) for _ in range(60)
    ]
    assert not any(report.should_sample for report in ordinary)
    spike = host.should_sample(make_execution(latency_ms=180.0))
    assert spike.should_sample and spike.winner == "anomaly-sampler"
    assert spike.decision is not None and spike.decision.metadata["z"] > 3
    assert "sigma above the mean" in spike.reason
    fast = host.should_sample(make_execution(latency_ms=20.0))
    assert not fast.should_sample  # one-sided by default


def test_warmup_only_learns(loopai_host: HostFactory) -> None:
    sampler = AnomalySampler({"warmup": 5})
    host = loopai_host(sampler)
    for latency in (10.0, 11.0, 9.0, 10.0, 10_000.0):
        assert not host.should_sample(make_execution(latency_ms=latency)).should_sample
    stats = sampler.statistics(TASK_ID)
    assert stats is not None and stats.count == 5
    decision = sampler.should_sample(make_execution(latency_ms=10.0), loopai.SamplingContext())
    assert "is 0.4 sigma below the mean" in decision.reason


def test_two_sided_samples_unusually_fast_runs_too() -> None:
    sampler = AnomalySampler({"warmup": 10, "two_sided": True, "sigma": 2})
    context = loopai.SamplingContext()
    for i in range(30):
        sampler.should_sample(make_execution(latency_ms=100.0 + (i % 3)), context)
    assert sampler.should_sample(make_execution(latency_ms=50.0), context).should_sample


def test_a_steady_task_needs_more_than_jitter(loopai_host: HostFactory) -> None:
    sampler = AnomalySampler({"warmup": 10, "min_stddev_ms": 5.0})
    host = loopai_host(sampler)
    for _ in range(20):
        host.should_sample(make_execution(latency_ms=100.0))  # a standard deviation of 0
    assert not host.should_sample(make_execution(latency_ms=110.0)).should_sample  # 2 floors
    assert host.should_sample(make_execution(latency_ms=130.0)).should_sample  # 6 floors


def test_tasks_are_separate_and_bounded() -> None:
    sampler = AnomalySampler({"warmup": 2, "max_tasks": 2})
    context = loopai.SamplingContext()
    slow, fast, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for _ in range(10):
        sampler.should_sample(make_execution(latency_ms=1000.0, task_id=slow), context)
        sampler.should_sample(make_execution(latency_ms=10.0, task_id=fast), context)
    slow_stats, fast_stats = sampler.statistics(slow), sampler.statistics(fast)
    assert slow_stats is not None and slow_stats.mean == 1000.0
    assert fast_stats is not None and fast_stats.mean == 10.0
    sampler.should_sample(make_execution(latency_ms=1.0, task_id=third), context)
    assert sampler.statistics(slow) is None  # the least recently seen went


def test_no_latency_is_no_decision() -> None:
    decision = AnomalySampler().should_sample(
        make_execution(latency_ms=None), loopai.SamplingContext()
    )
    assert not decision.should_sample and decision.reason == "no latency reported"


def test_is_thread_safe() -> None:
    sampler = AnomalySampler()
    context = loopai.SamplingContext()

    def work() -> None:
        for _ in range(500):
            sampler.should_sample(make_execution(latency_ms=50.0), context)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = sampler.statistics(TASK_ID)
    assert stats is not None and stats.count == 4000 and stats.mean == 50.0


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"sigma": 0}, "sigma"),
        ({"warmup": 1}, "warmup"),
        ({"min_stddev_ms": -1}, "min_stddev_ms"),
        ({"threshold": 3}, "threshold"),
    ],
)
def test_settings_are_checked(settings: dict[str, object], field: str) -> None:
    with pytest.raises(loopai.PluginSettingsError, match=field):
        AnomalySampler(settings)


def test_is_installed_as_an_entry_point() -> None:
    group, name = "loopai.samplers", "anomaly-sampler"
    found = importlib.metadata.entry_points(group=group, name=name)
    assert [entry_point.load() for entry_point in found] == [AnomalySampler]
