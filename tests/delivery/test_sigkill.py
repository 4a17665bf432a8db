"""A process killed with SIGKILL mid-delivery loses nothing: the next host's start() delivers what was pending."""

from __future__ import annotations

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

# The delivering process: a host with the http handler and a file outbox, emitting the given
# event ids from threads (all stored at once, delivered concurrently) or one after another.
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
        return {"pending": 0, "delivered": 0, "dead": 0}
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


def restart_and_deliver(http_handler, url: str, path, max_retries: int = 5) -> loopai.Host:
    """A new process, as far as the outbox can tell: a new host on the same file, started."""
    host = loopai.Host(
        plugins=[http_handler(url)], outbox=path, environ={}, max_retries=max_retries, retry_backoff=0.01
    )
    return host.start()


@pytest.mark.parametrize("how", ["threads", "loop"])
def test_nothing_emitted_is_lost_when_the_delivering_process_is_killed(
    how, child, receiver, outbox_path, http_handler, assert_accounted, whsec
):
    ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    answered = 6 if how == "threads" else 5
    receiver.answer(answered)
    receiver.hold()  # every later request waits: the process is mid-delivery when killed
    process = child(receiver.url, how, ids)
    in_flight = EVENTS if how == "threads" else answered + 1
    assert receiver.wait_for(in_flight, timeout=20), process.stdout.read() if process.poll() is not None else ""
    wait_until(lambda: counts_of(outbox_path)["delivered"] == answered)
    kill(process)

    emitted = stored_events(outbox_path)
    assert len(emitted) == in_flight and emitted <= set(ids)
    assert counts_of(outbox_path) == {"pending": in_flight - answered, "delivered": answered, "dead": 0}

    receiver.release()
    with restart_and_deliver(http_handler, receiver.url, outbox_path) as host:
        assert_accounted(host.outbox, len(emitted))
        assert host.outbox.counts()["delivered"] == len(emitted)
    received = receiver.event_ids()
    assert set(received) == emitted  # every emitted event reached the receiver at least once
    # The deliveries in flight when the process died were received twice, with the same id.
    assert len(received) == len(emitted) + (in_flight - answered)
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)


def test_a_process_killed_while_waiting_to_retry_loses_nothing_and_keeps_counting_attempts(
    child, receiver, outbox_path, http_handler, assert_accounted
):
    ids = [str(uuid.uuid4())]
    receiver.fail(1, status=503, retry_after="30")  # the process sleeps 30 s before its retry
    process = child(receiver.url, "loop", ids)
    assert receiver.wait_for(1, timeout=20)
    wait_until(lambda: [r.attempts for r in deliveries_of(outbox_path)] == [1])
    kill(process)

    (record,) = deliveries_of(outbox_path)
    assert (record.status, record.attempts) == ("pending", 1)
    assert "answered 503" in record.last_error

    with restart_and_deliver(http_handler, receiver.url, outbox_path) as host:
        (record,) = host.outbox.deliveries()
        assert (record.status, record.attempts, record.last_error) == ("delivered", 2, None)
        assert_accounted(host.outbox, 1)
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2"]


def test_a_killed_process_whose_receiver_stays_down_ends_in_dead_letters(
    child, receiver, outbox_path, http_handler, down_url, assert_accounted
):
    ids = [str(uuid.uuid4()) for _ in range(5)]
    receiver.hold()
    process = child(receiver.url, "threads", ids)
    assert receiver.wait_for(5, timeout=20)
    kill(process)
    receiver.release()
    with restart_and_deliver(http_handler, down_url, outbox_path, max_retries=1) as host:
        counts = assert_accounted(host.outbox, 5)
        assert counts["dead"] == 5
        assert all("ConnectError" in r.last_error for r in host.outbox.deliveries("dead"))
