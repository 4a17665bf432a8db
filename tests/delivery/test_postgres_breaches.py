"""A threshold breach and its flag in one transaction: one event per crossing, cluster-wide, never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

import loopai
from loopai.config import TaskSettings

pytestmark = pytest.mark.postgres
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")

BREACH = "accuracy.threshold.breached"


class Verdict(loopai.ValidatorPlugin):
    """Says what the record's input says: ``{"ok": true}`` is valid."""

    name = "verdict"

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=bool(execution.input.get("ok")), validator_type=self.name)


class Taker(loopai.WebhookHandlerPlugin):
    """Takes breach events only; remembers their ids."""

    name = "taker"

    def __init__(self):
        super().__init__()
        self.supported_events = [loopai.WebhookEventType.ACCURACY_THRESHOLD_BREACHED]
        self.got: list[str] = []

    def handle_event(self, event, context):
        self.got.append(str(event.event_id))


def execution(task: uuid.UUID, ok: bool) -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=task, input={"ok": ok}, latency_ms=5.0)


@pytest.fixture
def shared_host(outbox_url, monkeypatch):
    """``shared_host(task)``: a host with PostgreSQL state and its outbox in the same database, watching
    ``task`` (window 4, accuracy 0.5), the ``verdict`` validator and the ``taker`` handler."""
    monkeypatch.delenv("LOOPAI_OUTBOX")
    hosts: list[loopai.Host] = []

    def make(task: uuid.UUID) -> tuple[loopai.Host, Taker]:
        taker = Taker()
        config = loopai.LoopaiConfig(state={"url": outbox_url})
        tasks = {task: TaskSettings(window=4, accuracy_threshold=0.5)}
        host = loopai.Host(config, plugins=[Verdict(), taker], outbox=True, tasks=tasks, environ={}).start()
        hosts.append(host)
        return host, taker

    yield make
    for host in hosts:
        host.close()


def breaches_stored(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id FROM loopai_outbox_events WHERE event_type = %s", [BREACH]).fetchall()
    return [str(row[0]) for row in rows]


def test_a_breach_is_recorded_with_its_flag_and_emitting_it_afterwards_records_nothing_twice(shared_host, outbox_url):
    task = uuid.uuid4()
    host, taker = shared_host(task)
    assert host.outbox is not None and host.outbox.path.endswith(outbox_url.rsplit("/", 1)[1])

    observations = [host.observe(execution(task, False), host.validate(execution(task, False))) for _ in range(4)]
    crossed = [o for o in observations if o.crossings]

    # Observing alone (no emit) stored the event: it was written with the flag.
    (observation,) = crossed
    (event,) = observation.events({loopai.WebhookEventType.ACCURACY_THRESHOLD_BREACHED})
    assert breaches_stored(outbox_url) == [str(event.event_id)]
    # The caller emits what the record raised, as `loopai run` does: reported, not stored again.
    (report,) = host.emit_many([event])
    assert list(report.pending) == ["taker"]
    assert host.drain(10)
    assert taker.got == [str(event.event_id)]
    assert host.outbox.counts() == {"pending": 0, "delivered": 1, "dead": 0, "quarantined": 0}


def test_process_reports_the_breach_it_recorded_under_the_same_id(shared_host, outbox_url):
    task = uuid.uuid4()
    host, taker = shared_host(task)

    reports = [host.process(execution(task, False)) for _ in range(4)]
    assert host.drain(10)

    raised = [r for r in reports if r.observation.crossings]
    (report,) = raised
    (emitted,) = report.emitted  # the one event a handler takes
    assert emitted.event_type is loopai.WebhookEventType.ACCURACY_THRESHOLD_BREACHED
    assert list(emitted.pending) == ["taker"]
    assert taker.got == breaches_stored(outbox_url)
    assert len(taker.got) == 1


def test_a_breach_whose_event_cannot_be_stored_leaves_its_flag_as_it_was(shared_host, outbox_url):
    task = uuid.uuid4()
    host, _ = shared_host(task)
    with psycopg.connect(outbox_url) as conn:  # the outbox refuses every delivery for a while
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the outbox is full'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON loopai_outbox_deliveries FOR EACH ROW EXECUTE FUNCTION refuse()"
        )

    failed = None
    for _ in range(4):
        try:
            host.observe(execution(task, False), host.validate(execution(task, False)))
        except loopai.ConfigError as exc:  # the database refused the transaction: flag and event alike
            failed = exc
    assert failed is not None and "the outbox is full" in str(failed)
    with psycopg.connect(outbox_url) as conn:
        assert conn.execute("SELECT accuracy_breached FROM loopai_task_windows").fetchall() in ([], [(False,)])
        conn.execute("DROP TRIGGER refuse ON loopai_outbox_deliveries")

    # The crossing was not lost: the next record of the task writes it, and its event.
    crossings = []
    for _ in range(5):
        observation = host.observe(execution(task, False), host.validate(execution(task, False)))
        crossings += observation.crossings
        if crossings:
            break
        time.sleep(0.2)
    assert [c.metric for c in crossings] == ["accuracy"]
    assert len(breaches_stored(outbox_url)) == 1
    with psycopg.connect(outbox_url) as conn:
        assert conn.execute("SELECT accuracy_breached FROM loopai_task_windows").fetchall() == [(True,)]


# -- many processes ------------------------------------------------------------------------------

TASK = "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"
OUTPUT_SCHEMA = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["positive", "negative"]}}}


def invalid_records(count: int, first: int) -> str:
    lines = []
    for n in range(first, first + count):
        record = {
            "id": str(uuid.UUID(int=n + 1, version=4)),
            "program_id": str(uuid.UUID(int=1, version=4)),
            "task_id": TASK,
            "output": {"label": "unknown"},
            "latency_ms": 10.0,
            "status": "success",
        }
        lines.append(json.dumps(record) + "\n")
    return "".join(lines)


@pytest.mark.processes
def test_four_processes_crossing_one_threshold_store_one_event_delivered_once(
    tmp_path, outbox_url, receiver, whsec, monkeypatch
):
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        f'url = "{receiver.url}"\nsecret = "{whsec}"\nevents = ["{BREACH}"]\n\n'
        "[delivery]\ndrain_timeout = 30\n",
        encoding="utf-8",
    )
    (tmp_path / "tasks.json").write_text(
        json.dumps({TASK: {"output_schema": OUTPUT_SCHEMA, "window": 20, "accuracy_threshold": 0.5}}), encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(LOOPAI_STATE_URL=outbox_url, LOOPAI_CACHE_DIR=str(tmp_path / "cache"), XDG_STATE_HOME=str(tmp_path))
    command = [sys.executable, "-m", "loopai", "run", "-", "--tasks", "tasks.json", "--plugins"]
    command.append("json-schema-validator,http-webhook-handler")
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    processes = [subprocess.Popen(command, text=True, env=env, cwd=tmp_path, **pipes) for _ in range(4)]
    finished = [p.communicate(invalid_records(300, 300 * n), timeout=180) for n, p in enumerate(processes)]

    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err for _, err in finished]
    listed = [line for out, _ in finished for line in out.splitlines() if BREACH in json.loads(line)["events"]]
    assert len(listed) == 1  # one process won the crossing
    (stored,) = breaches_stored(outbox_url)
    assert receiver.wait_for(1, timeout=10)
    time.sleep(0.5)  # anything more would have come by now
    assert receiver.event_ids() == [stored]
    for out, err in finished:
        assert outbox_url.split(":")[2].split("@")[0] not in out + err  # the password
