"""Worker processes sharing one PostgreSQL outbox, for real: each delivery once, a SIGKILLed worker taken
over after its lease (the same webhook-id), a database restarted under a run losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import standardwebhooks

import loopai
from loopai.delivery import PostgresOutbox

pytestmark = [pytest.mark.postgres, pytest.mark.processes]
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")

HANDLER = "http-webhook-handler"


@pytest.fixture
def workers(tmp_path, outbox_url, write_config, receiver):
    """``workers(n, *args, lease=...)``: start n ``loopai events deliver ARGS`` processes on the outbox at
    ``outbox_url`` (the http handler posting to the receiver); killed (if still alive) at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(count: int, *args: str, **delivery: object) -> list[subprocess.Popen[str]]:
        write_config(receiver.url, **delivery)
        env = {**os.environ, "LOOPAI_OUTBOX": outbox_url}
        command = [sys.executable, "-m", "loopai", "events", "deliver", *args]
        fresh = [
            subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        started.extend(fresh)
        return fresh

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def record(url: str, count: int) -> list[str]:
    outbox = PostgresOutbox(url)
    try:
        events = [loopai.WebhookEvent(event_type="program.execution.failed", payload={"n": n}) for n in range(count)]
        outbox.record_many([(event, [HANDLER]) for event in events])
        return [str(event.event_id) for event in events]
    finally:
        outbox.close()


def following(process: subprocess.Popen[str]) -> str:
    """Wait until a ``deliver --follow`` process says it delivers (SIGTERM stops it cleanly from then on)."""
    assert process.stderr is not None
    while line := process.stderr.readline():
        if line.startswith("delivering from"):
            return line
    raise AssertionError(f"the worker ended first (exit status {process.wait()})")


def counts(url: str) -> dict[str, int]:
    outbox = PostgresOutbox(url)
    try:
        return outbox.counts()
    finally:
        outbox.close()


def test_four_worker_processes_deliver_each_event_once_to_a_real_receiver(
    outbox_url, workers, receiver, whsec, postgres_server
):
    ids = record(outbox_url, 240)
    receiver.slow(0.05, times=40)  # slow answers: deliveries overlap across the processes

    processes = workers(4, "--follow", max_in_flight=4)
    said = [following(p) for p in processes]
    deadline = time.monotonic() + 120
    while counts(outbox_url)["delivered"] < 240 and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in processes:  # a sidecar stops on SIGTERM, after draining
        process.send_signal(signal.SIGTERM)
    finished = [p.communicate(timeout=60) for p in processes]

    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err for _, err in finished]
    assert all(line.startswith("delivering from postgresql://loopai:***@127.0.0.1:") for line in said), said
    assert sorted(receiver.event_ids()) == sorted(ids)  # every one, and none twice
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)
    delivered = [int(out.split(f"{HANDLER}: ")[1].split()[0]) for out, _ in finished]
    assert sum(delivered) == 240 and sum(1 for n in delivered if n) >= 2  # shared, not one doing it all
    assert counts(outbox_url) == {"pending": 0, "delivered": 240, "dead": 0, "quarantined": 0}
    for out, err in finished:
        assert postgres_server.password not in out + err


def test_a_worker_killed_mid_delivery_is_taken_over_after_its_lease_with_the_same_webhook_id(
    outbox_url, workers, receiver
):
    receiver.hold()  # the first attempt is under way when its worker dies
    pair = workers(2, "--follow", "--max-seconds", "60", lease=2)
    for process in pair:
        following(process)
    (event_id,) = record(outbox_url, 1)
    assert receiver.wait_for(1, timeout=30)
    time.sleep(3)  # longer than the lease: the worker, alive, keeps renewing it
    assert len(receiver.requests) == 1

    holder = next(p for p in pair if p.pid == lease_holder(outbox_url))
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    killed = time.monotonic()
    receiver.release()
    assert receiver.wait_for(2, timeout=30), "the other worker never took the delivery over"
    taken_over = receiver.requests[1].at - killed
    other = next(p for p in pair if p is not holder)
    other.send_signal(signal.SIGTERM)
    other.communicate(timeout=30)

    assert receiver.event_ids() == [event_id, event_id]  # the same webhook-id both times
    assert 1.0 < taken_over < 2 + 5  # once the lease ran out (plus a poll): not before, not much later
    assert counts(outbox_url) == {"pending": 0, "delivered": 1, "dead": 0, "quarantined": 0}


def lease_holder(url: str) -> int:
    """The process id of the worker that holds the only leased delivery (``host:pid:token``)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT lease_owner FROM loopai_outbox_deliveries WHERE lease_owner IS NOT NULL").fetchone()
    (owner,) = row
    return int(owner.split(":")[1])


def test_a_database_restarted_mid_run_loses_nothing_emitted(tmp_path, outbox_url, receiver, whsec, postgres_server):
    (tmp_path / "loopai.toml").write_text(
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        f'url = "{receiver.url}"\nsecret = "{whsec}"\nevents = ["program.execution.completed"]\n\n'
        "[delivery]\ndrain_timeout = 60\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(LOOPAI_STATE_URL=outbox_url, LOOPAI_CACHE_DIR=str(tmp_path / "cache"), XDG_STATE_HOME=str(tmp_path))
    task = str(uuid.uuid4())
    lines = [json.dumps({"id": str(uuid.uuid4()), "program_id": task, "task_id": task}) + "\n" for _ in range(1500)]
    output = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "loopai", "run", "-", "--output", str(output), "--plugins", HANDLER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write("".join(lines[:500]))
    process.stdin.flush()
    assert receiver.wait_for(100, timeout=60)  # connected, recording and delivering: now cut every connection
    down = threading.Thread(target=lambda: (postgres_server.stop(), time.sleep(1.0), postgres_server.start()))
    down.start()
    for start in range(500, len(lines), 100):  # records keep coming while the server is down
        process.stdin.write("".join(lines[start : start + 100]))
        process.stdin.flush()
        time.sleep(0.1)
    down.join()
    out, err = process.communicate(timeout=180)

    assert process.returncode == 0, err
    assert len(output.read_text(encoding="utf-8").splitlines()) == 1500
    stored = counts(outbox_url)
    assert stored["delivered"] + stored["pending"] + stored["dead"] == 1500  # every event emitted is there
    assert stored == {"pending": 0, "delivered": 1500, "dead": 0, "quarantined": 0}, err
    assert len(set(receiver.event_ids())) == 1500  # at least once each (a mark lost with a connection: twice)
    assert postgres_server.password not in out + err
