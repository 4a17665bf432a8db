"""A process killed with SIGKILL mid-delivery loses nothing: ``loopai events deliver`` delivers what was pending.

Each test kills a delivering process and finishes its work in another: marked ``processes``."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import standardwebhooks

import loopai
from loopai.delivery import SqliteOutbox as Outbox

pytestmark = pytest.mark.processes

# The delivering process: a host with the http handler and a file outbox, emitting the given
# event ids from threads or one after another; its workers deliver them in the background.
CHILD = """
import json, sys, threading, uuid
import loopai
from loopai_builtin import HttpWebhookHandler

url, secret, outbox, how, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
handler = HttpWebhookHandler({"url": url, "secret": secret, "timeout": 60})
host = loopai.Host(plugins=[handler], outbox=outbox, environ={}, max_retries=5).start()
events = [
    loopai.WebhookEvent(event_id=uuid.UUID(i), event_type="program.execution.failed", payload={"n": n})
    for n, i in enumerate(ids)
]
if how == "threads":
    threads = [threading.Thread(target=host.emit, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
else:
    for e in events:
        host.emit(e)
host.close()
print("finished: should have been killed", flush=True)
"""

EVENTS = 20


def wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the delivering process"
        time.sleep(0.02)


def counts_of(path) -> dict[str, int]:
    if not path.exists():
        return {"pending": 0, "delivered": 0, "dead": 0, "quarantined": 0}
    outbox = Outbox(path)
    try:
        return outbox.counts()
    finally:
        outbox.close()


def deliveries_of(path) -> list:
    if not path.exists():
        return []
    outbox = Outbox(path)
    try:
        return outbox.deliveries()
    finally:
        outbox.close()


def stored_events(path) -> set[str]:
    return {r.event_id for r in deliveries_of(path)}


def quiet(receiver, seconds: float = 0.3) -> int:
    """Wait until the receiver got no new request for ``seconds``; how many it got."""
    seen = -1
    while len(receiver.requests) != seen:
        seen = len(receiver.requests)
        time.sleep(seconds)
    return seen


@pytest.fixture
def child(tmp_path, outbox_path, whsec):
    """``child(url, how, ids)``: start the delivering process; killed (if still alive) at teardown."""
    script = tmp_path / "deliver.py"
    script.write_text(CHILD, encoding="utf-8")
    processes: list[subprocess.Popen[bytes]] = []

    def start(url: str, how: str, ids: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, str(script), url, whsec, str(outbox_path), how, json.dumps(ids)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    assert process.stdout is not None
    assert b"finished" not in process.stdout.read()


@pytest.mark.parametrize("how", ["threads", "loop"])
def test_nothing_emitted_is_lost_when_the_delivering_process_is_killed(
    how, child, receiver, outbox_path, write_config, run_cli, whsec
):
    ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    answered = 6
    receiver.answer(answered)
    receiver.hold()  # every later request waits: the process is mid-delivery when killed
    process = child(receiver.url, how, ids)
    assert receiver.wait_for(answered + 1, timeout=20), process.stdout.read() if process.poll() is not None else ""
    wait_until(lambda: counts_of(outbox_path)["delivered"] == answered)
    in_flight = quiet(receiver) - answered  # held by the receiver, the workers' slots full
    assert in_flight >= 1
    kill(process)

    assert stored_events(outbox_path) == set(ids)  # every emit returned after its event was stored
    assert counts_of(outbox_path) == {"pending": EVENTS - answered, "delivered": answered, "dead": 0, "quarantined": 0}

    receiver.release()
    write_config(receiver.url)
    result = run_cli("events", "deliver")  # the killed process's leases end at once: it is gone
    assert result.returncode == 0, result.stderr
    assert f"http-webhook-handler: {EVENTS - answered} delivered, 0 retried, 0 dead, 0 pending" in result.stdout
    assert counts_of(outbox_path) == {"pending": 0, "delivered": EVENTS, "dead": 0, "quarantined": 0}
    received = collections.Counter(receiver.event_ids())
    assert set(received) == set(ids)  # every emitted event reached the receiver at least once
    # The deliveries in flight when the process died were received twice, with the same webhook-id.
    assert sorted(received.values()) == [1] * (EVENTS - in_flight) + [2] * in_flight
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)


def test_a_process_killed_while_a_retry_is_scheduled_loses_nothing_and_keeps_the_schedule(
    child, receiver, outbox_path, http_handler
):
    ids = [str(uuid.uuid4())]
    receiver.fail(1, status=503, retry_after="2")  # the retry is scheduled 2 s later, in the outbox
    process = child(receiver.url, "loop", ids)
    assert receiver.wait_for(1, timeout=20)
    wait_until(lambda: [r.attempts for r in deliveries_of(outbox_path)] == [1])
    kill(process)

    (record,) = deliveries_of(outbox_path)
    assert (record.status, record.attempts) == ("pending", 1)
    assert "answered 503" in record.last_error
    assert record.next_attempt_at - receiver.requests[0].at > 0  # a time, not a sleep that died with the process

    # The next host keeps to the schedule (`loopai events deliver`, an operator's command, would try now).
    with loopai.Host(plugins=[http_handler(receiver.url)], outbox=outbox_path, environ={}) as host:
        assert host.drain(10)
    (record,) = deliveries_of(outbox_path)
    assert (record.status, record.attempts, record.last_error) == ("delivered", 2, None)
    first, second = receiver.requests
    assert second.at - first.at >= 1.9  # the receiver's Retry-After was kept across processes
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2"]


def test_a_killed_process_whose_receiver_stays_down_ends_in_dead_letters(
    child, receiver, outbox_path, down_url, write_config, run_cli
):
    ids = [str(uuid.uuid4()) for _ in range(5)]
    receiver.hold()
    process = child(receiver.url, "threads", ids)
    assert receiver.wait_for(5, timeout=20)
    kill(process)
    receiver.release()
    write_config(down_url, max_retries=1, circuit_failures=0)
    result = run_cli("events", "deliver")
    assert result.returncode == 1
    assert "http-webhook-handler: 0 delivered, 5 retried, 5 dead, 0 pending" in result.stdout
    assert "5 deliveries died: see loopai events list --dead" in result.stderr
    assert counts_of(outbox_path) == {"pending": 0, "delivered": 0, "dead": 5, "quarantined": 0}
    assert all("ConnectError" in r.last_error for r in deliveries_of(outbox_path))
