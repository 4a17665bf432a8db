"""The host's task layer: the tasks table's contexts, thresholds and events, and state kept in a StateStore.

Task monitoring used to live in the ``loopai run`` engine; any embedding application now gets the
same threshold events from the host, and a time-based sample is claimed once per interval however
many threads ask.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import loopai
from loopai.config import TaskSettings
from loopai.state import MemoryStateStore, Watch

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
TASK = uuid.UUID("6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b")
SCHEMA = {"type": "object", "required": ["label"]}


def record(**fields: Any) -> loopai.ExecutionRecord:
    fields.setdefault("task_id", TASK)
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), **fields)


class LabelRequired(loopai.ValidatorPlugin):
    """Valid when the output has the keys the task's output schema requires."""

    def validate(self, execution, context):
        required = (context.output_schema or {}).get("required", [])
        output = execution.output if isinstance(execution.output, dict) else {}
        ok = all(key in output for key in required)
        return loopai.ValidationResult(is_valid=ok, validator_type="label-required")


class Recorder(loopai.WebhookHandlerPlugin):
    def __init__(self) -> None:
        super().__init__(name="recorder")
        self.events: list[loopai.WebhookEvent] = []

    def handle_event(self, event, context):
        self.events.append(event)


class Rates(loopai.SamplerPlugin):
    """Never samples; keeps the sampling rate of every context it is offered."""

    def __init__(self) -> None:
        super().__init__(name="rates")
        self.seen: list[float] = []

    def should_sample(self, execution, context):
        self.seen.append(context.sampling_rate)
        return loopai.SamplingDecision(should_sample=False)


def test_the_tasks_table_gives_validate_and_should_sample_their_default_contexts():
    rates = Rates()
    seen = rates.seen

    config = loopai.parse_config(
        {"tasks": {str(TASK): {"output_schema": SCHEMA, "sampling_rate": 0.25}}}, label="loopai.toml"
    )
    host = loopai.Host(config, plugins=[LabelRequired(), rates], environ={})

    assert not host.validate(record(output={"other": 1})).is_valid  # the task's schema was used
    assert host.validate(record(output={"label": "x"})).is_valid
    assert host.validate(record(task_id=uuid.uuid4(), output={"other": 1})).is_valid  # unknown task: no schema
    host.should_sample(record())
    assert seen == [0.25]


def test_process_raises_the_same_threshold_events_as_loopai_run_once_per_crossing():
    recorder = Recorder()
    tasks = {TASK: TaskSettings(name="sentiment", output_schema=SCHEMA, accuracy_threshold=0.9, window=4)}
    host = loopai.Host(plugins=[LabelRequired(), recorder], tasks=tasks, environ={})
    good, bad = {"label": "ok"}, {"nope": 1}

    outputs = [good, good, good, good, bad, bad, bad, good, good, good, good, good, bad]
    reports = [host.process(record(output=output)) for output in outputs]

    breaches = [e for e in recorder.events if e.event_type is loopai.WebhookEventType.ACCURACY_THRESHOLD_BREACHED]
    # Window of 4: 3/4 valid after the first bad record (below 0.9): one crossing; it recovers at 4/4
    # (after four good ones), and the last bad record crosses again.
    assert [index for index, r in enumerate(reports) if r.observation.crossings] == [4, 12]
    assert len(breaches) == 2
    assert breaches[0].payload["task"] == "sentiment" and breaches[0].payload["value"] == 0.75
    first = [e.event_type.value for e in recorder.events[:2]]
    assert first == ["program.execution.completed", "validation.completed"]
    assert reports[4].observation.raised[-1] == (
        loopai.WebhookEventType.ACCURACY_THRESHOLD_BREACHED,
        loopai.EventSeverity.ERROR,
    )


def test_hosts_sharing_a_state_store_raise_a_crossing_once():
    state = MemoryStateStore()
    tasks = {TASK: TaskSettings(output_schema=SCHEMA, accuracy_threshold=0.9, window=2)}
    first, second = (loopai.Host(plugins=[LabelRequired()], tasks=tasks, state=state, environ={}) for _ in range(2))

    crossings = [
        host.observe(execution, host.validate(execution)).crossings
        for host, execution in [(first, record(output={"x": 1})), (second, record(output={"x": 1}))]
    ]
    assert [len(c) for c in crossings] == [0, 1]  # the second host saw the first one's record
    assert first.statistics(TASK) == second.statistics(TASK)


def test_a_time_based_sample_is_claimed_once_per_interval_by_racing_threads():
    from loopai_builtin import TimeBasedSampler

    host = loopai.Host(plugins=[TimeBasedSampler({"interval": "1h"})], environ={})
    start = threading.Barrier(16)
    sampled: list[bool] = []

    def ask(offset: int) -> None:
        execution = record(executed_at=T0 + timedelta(seconds=offset))
        start.wait()
        sampled.append(host.should_sample(execution).should_sample)

    threads = [threading.Thread(target=ask, args=(offset,)) for offset in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sampled.count(True) == 1  # every thread saw "first execution of the task"; one claim won
    stats = host.statistics(TASK)
    assert (stats.total_executions, stats.sampled_executions) == (16, 1)


def test_a_state_store_claim_needs_the_whole_interval():
    state = MemoryStateStore()
    hour = timedelta(hours=1)
    assert state.claim_sample(TASK, T0, hour)
    assert not state.claim_sample(TASK, T0 + timedelta(minutes=59), hour)
    assert state.claim_sample(TASK, T0 + hour, hour)
    assert state.statistics(TASK).last_sample_time == T0 + hour


def test_a_rolling_window_is_reset_when_the_watch_changes():
    state = MemoryStateStore()
    tight, loose = Watch(2, accuracy_threshold=0.9), Watch(2, accuracy_threshold=0.1)
    assert state.observe(TASK, tight, False, None) == []
    assert [c.metric for c in state.observe(TASK, tight, False, None)] == ["accuracy"]
    assert state.observe(TASK, loose, False, None) == []  # a new window: not full yet


def test_loopai_exports_the_state_and_outbox_protocols():
    from loopai.delivery import SqliteOutbox

    assert isinstance(MemoryStateStore(), loopai.StateStore)
    outbox = SqliteOutbox(":memory:")
    try:
        assert isinstance(outbox, loopai.Outbox)
    finally:
        outbox.close()


def test_lanes_kept_by_a_caller_follow_a_change_of_the_tasks_table():
    """``loopai run`` and ``batch/run`` keep each task's contexts from record to record; a reload or
    ``host.tasks.define`` that changes the table must reach the records after it."""
    from loopai.run import Lanes, TaskSummary

    rates = Rates()
    host = loopai.Host(
        plugins=[LabelRequired(), rates],
        environ={},
        tasks={TASK: TaskSettings(output_schema=SCHEMA, sampling_rate=0.25)},
    )
    summaries: dict[uuid.UUID, TaskSummary] = {}
    lanes = Lanes(host, summaries)
    with host:
        lane = lanes.fresh()[TASK]
        assert not host.validate(record(output={}), lane.validation).is_valid
        host.should_sample(record(), lane.sampling)
        assert lanes.fresh()[TASK] is lane  # kept while the table stays

        host.tasks.define({TASK: TaskSettings(name="renamed", sampling_rate=0.5)})
        lane = lanes.fresh()[TASK]
        assert host.validate(record(output={}), lane.validation).is_valid  # no schema any more
        host.should_sample(record(), lane.sampling)
    assert rates.seen == [0.25, 0.5]
    assert list(summaries) == [TASK]  # the task's summary stays the one the caller counts in
