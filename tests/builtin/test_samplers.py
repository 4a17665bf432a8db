"""percentage-sampler and time-based-sampler, through real hosts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import loopai
from loopai_builtin import PercentageSampler, TimeBasedSampler

T0 = datetime(2025, 10, 27, 12, 0, tzinfo=timezone.utc)


def decisions(host, records, context=None):
    return [host.should_sample(r, context.model_copy() if context else None).should_sample for r in records]


# -- percentage-sampler ------------------------------------------------------------------------


def test_a_seed_makes_runs_reproducible(record, make_host):
    task = uuid.uuid4()
    records = [record(task_id=task) for _ in range(300)]
    first = decisions(make_host(PercentageSampler({"sampling_rate": 0.3, "seed": 42})), records)
    second = decisions(make_host(PercentageSampler({"sampling_rate": 0.3, "seed": 42})), records)
    other = decisions(make_host(PercentageSampler({"sampling_rate": 0.3, "seed": 7})), records)
    assert first == second
    assert first != other


def test_with_a_seed_a_tasks_decisions_do_not_depend_on_other_tasks_records(record, make_host):
    # What lets `loopai run --workers` write what one process writes: each worker sees only its
    # tasks' records, in order, and must sample exactly the records one process samples.
    tasks = [uuid.uuid4() for _ in range(3)]
    alone = {
        task: decisions(make_host(PercentageSampler({"seed": 5})), [record(task_id=task) for _ in range(300)])
        for task in tasks
    }
    mixed = [record(task_id=tasks[n % 3 if n % 7 else 0]) for n in range(300)]
    together = decisions(make_host(PercentageSampler({"seed": 5})), mixed)
    for task in tasks:
        mine = [sampled for r, sampled in zip(mixed, together, strict=True) if r.task_id == task]
        assert mine == alone[task][: len(mine)]
    assert 10 < sum(together) < 60  # the default rate: 0.1 of 300


def test_reconfiguring_restarts_from_the_seed(record):
    sampler = PercentageSampler({"seed": 3})
    context = loopai.SamplingContext()
    values = [sampler.should_sample(record(), context).metadata["random_value"] for _ in range(5)]
    sampler.configure({"seed": 3})
    assert [sampler.should_sample(record(), context).metadata["random_value"] for _ in range(5)] == values


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_the_observed_rate_is_close_to_the_setting(record, make_host, rate):
    host = make_host(PercentageSampler({"sampling_rate": rate, "seed": 2025}))
    task = uuid.UUID(int=2025)  # the draws follow the seed and the task: a random task made this flaky (about 1 in 200)
    sampled = sum(decisions(host, [record(task_id=task) for _ in range(5000)]))
    assert abs(sampled / 5000 - rate) < 0.02
    assert host.statistics(task).sampled_executions == sampled


def test_the_default_rate_is_ten_percent(record):
    sampler = PercentageSampler()
    assert sampler.config.sampling_rate == 0.1
    assert sampler.priority == 100
    assert sampler.should_sample(record(), loopai.SamplingContext()).metadata["sampling_rate"] == 0.1


def test_decision_metadata_carries_the_hosts_statistics(record, make_host):
    host = make_host(PercentageSampler({"sampling_rate": 0.5, "seed": 11}))
    task = uuid.uuid4()
    decisions(host, [record(task_id=task) for _ in range(40)])
    before = host.statistics(task)
    # A report carries the winning decision: make this one win with a rate of 1 in the context.
    report = host.should_sample(record(task_id=task), loopai.SamplingContext(task_id=task, sampling_rate=1.0))
    decision = report.decision
    assert decision.sampler_type == "percentage-sampler"
    meta = decision.metadata
    assert set(meta) == {
        "sampling_rate",
        "random_value",
        "total_executions",
        "sampled_executions",
        "actual_sampling_rate",
    }
    assert meta["sampling_rate"] == 1.0
    assert meta["total_executions"] == before.total_executions == 40
    assert 0 < meta["sampled_executions"] == before.sampled_executions < 40
    assert meta["actual_sampling_rate"] == pytest.approx(before.sampled_executions / 40)
    assert 0 <= meta["random_value"] < 1
    assert decision.reason == f"random value {meta['random_value']:.4f} < sampling rate 1"


def test_actual_rate_is_zero_before_any_execution(record):
    meta = PercentageSampler().should_sample(record(), loopai.SamplingContext()).metadata
    assert (meta["total_executions"], meta["actual_sampling_rate"]) == (0, 0.0)


def test_a_rate_in_the_context_wins_when_above_zero(record, make_host):
    host = make_host(PercentageSampler({"sampling_rate": 0.0, "seed": 1}))
    task = uuid.uuid4()
    records = [record(task_id=task) for _ in range(200)]
    assert all(decisions(host, records, loopai.SamplingContext(task_id=task, sampling_rate=1.0)))
    assert not any(decisions(host, records, loopai.SamplingContext(task_id=task, sampling_rate=0.0)))


def test_a_rate_above_one_is_refused_with_the_field_named():
    with pytest.raises(
        loopai.PluginSettingsError, match=r"percentage-sampler\.sampling_rate: must be <= 1 \(got 1\.5\)"
    ):
        PercentageSampler({"sampling_rate": 1.5})


# -- time-based-sampler ------------------------------------------------------------------------


def minutes(task, count, step=1.0, record=None):
    return [record(task_id=task, executed_at=T0 + timedelta(minutes=i * step)) for i in range(count)]


def test_first_execution_then_once_per_interval(record, make_host):
    host = make_host(TimeBasedSampler())  # 5 minutes by default
    task = uuid.uuid4()
    records = minutes(task, 21, record=record)
    reports = [host.should_sample(r) for r in records]
    assert [i for i, r in enumerate(reports) if r.should_sample] == [0, 5, 10, 15, 20]
    assert reports[0].reason == "first execution of the task"
    assert reports[0].sampler_type == "time-based-sampler"
    assert reports[5].decision.metadata["elapsed_seconds"] == 300
    assert reports[5].reason == "300 s since the last sample (interval 300 s)"
    assert host.statistics(task).last_sample_time == T0 + timedelta(minutes=20)


def test_each_task_has_its_own_clock(record, make_host):
    host = make_host(TimeBasedSampler({"interval": "10m"}))
    a, b = uuid.uuid4(), uuid.uuid4()
    pairs = list(zip(minutes(a, 12, 2, record=record), minutes(b, 12, 3, record=record), strict=True))
    sampled = {a: [], b: []}
    for ra, rb in pairs:
        for r in (ra, rb):
            if host.should_sample(r).should_sample:
                sampled[r.task_id].append(r.executed_at - T0)
    assert sampled[a] == [timedelta(minutes=m) for m in (0, 10, 20)]
    assert sampled[b] == [timedelta(minutes=m) for m in (0, 12, 24)]


def test_a_decision_not_to_sample_says_when_the_next_is_due(record):
    context = loopai.SamplingContext(last_sample_time=T0, total_executions=1, sampled_executions=1)
    decision = TimeBasedSampler({"interval": "5m"}).should_sample(
        record(executed_at=T0 + timedelta(minutes=2)), context
    )
    assert not decision.should_sample
    assert decision.reason == "next sample due at 2025-10-27T12:05:00+00:00 (interval 300 s)"
    assert decision.metadata == {
        "interval_seconds": 300,
        "elapsed_seconds": 120,
        "last_sample_time": "2025-10-27T12:00:00+00:00",
        "next_sample_at": "2025-10-27T12:05:00+00:00",
    }


def test_the_sampler_keeps_no_state_of_its_own(record, make_host):
    sampler = TimeBasedSampler({"interval": 60})
    first, second = make_host(sampler), make_host(sampler)
    task = uuid.uuid4()
    assert first.should_sample(record(task_id=task, executed_at=T0)).should_sample
    # Another host never sampled this task: its first execution is sampled even 10 s later.
    assert second.should_sample(record(task_id=task, executed_at=T0 + timedelta(seconds=10))).should_sample
    assert not first.should_sample(record(task_id=task, executed_at=T0 + timedelta(seconds=10))).should_sample


def test_works_from_async_callers(record, make_host):
    host = make_host(TimeBasedSampler({"interval": "1m"}))
    task = uuid.uuid4()

    async def run():
        return [(await host.ashould_sample(r)).should_sample for r in minutes(task, 4, 0.5, record=record)]

    assert asyncio.run(run()) == [True, False, True, False]


def test_time_based_comes_after_percentage_and_sees_its_samples(record, make_host):
    # percentage-sampler (100) samples everything on the first two records; the time-based
    # sampler (50) then measures its interval from the last of those.
    percentage = PercentageSampler({"sampling_rate": 0.0})
    host = make_host(TimeBasedSampler({"interval": "5m"}), percentage)
    task = uuid.uuid4()
    records = minutes(task, 9, record=record)
    context = loopai.SamplingContext(task_id=task, sampling_rate=1.0)
    assert [host.should_sample(r, context.model_copy()).sampler_type for r in records[:2]] == ["percentage-sampler"] * 2
    rest = [host.should_sample(r).should_sample for r in records[2:]]
    assert rest == [False, False, False, False, True, False, False]  # minute 6 = 1 + 5


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(300, 300), ("5m", 300), ("1h30m", 5400), ("90s", 90), ("250ms", 0.25), ("PT5M", 300), ("00:05:00", 300)],
)
def test_interval_spellings(given, seconds):
    assert TimeBasedSampler({"interval": given}).config.interval.total_seconds() == seconds


@pytest.mark.parametrize("given", [0, "-5s", "soon"])
def test_bad_intervals_are_refused(given):
    with pytest.raises(loopai.PluginSettingsError, match=r"time-based-sampler\.interval"):
        TimeBasedSampler({"interval": given})
