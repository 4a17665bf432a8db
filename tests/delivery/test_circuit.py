"""The circuit breaker per handler, and closing the host: drain up to its deadline, the rest stays pending."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import loopai


def circuit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "loopai.delivery" and "circuit" in r.getMessage()]


def test_the_circuit_opens_after_consecutive_failures_waits_then_probes_and_closes(
    make_host, http_handler, receiver, event, settle, caplog, assert_accounted
):
    caplog.set_level(logging.INFO, logger="loopai.delivery")
    receiver.always(503)
    settings = {"circuit_failures": 3, "circuit_cooldown": 0.6, "max_in_flight": 1}
    host = make_host(http_handler(receiver.url), max_retries=10, delivery=settings).start()
    events = [event() for _ in range(5)]
    host.emit_many(events)
    assert receiver.wait_for(3)
    time.sleep(0.4)  # within the cool-down: nothing more reaches the dead endpoint
    assert len(receiver.requests) == 3
    (row,) = host.delivery_report()
    assert (row.circuit, row.retried, row.delivered) == ("open", 3, 0)
    assert row.pending == 5 and "answered 503" in row.last_error
    opened = receiver.requests[2].at

    assert receiver.wait_for(4, timeout=5)  # the cool-down is over: one probe, which fails again
    probe = receiver.requests[3].at
    assert probe - opened >= 0.55
    time.sleep(0.3)
    assert len(receiver.requests) == 4  # a failed probe opens the circuit for another cool-down

    receiver.always(200)  # the endpoint is back: the next probe goes through and the rest follows
    assert host.drain(5)  # a drain does not wait out a cool-down: nothing was due meanwhile
    assert receiver.wait_for(5, timeout=5)
    settle(host)
    (row,) = host.delivery_report()
    assert (row.circuit, row.delivered, row.pending, row.dead) == ("closed", 5, 0, 0)
    assert receiver.requests[4].at - probe >= 0.55
    assert_accounted(host.outbox, 5)
    lines = circuit_lines(caplog)
    assert len(lines) == 2, lines  # one when it opened (not again after the failed probe), one when it closed
    assert lines[0].startswith("webhook handler 'http-webhook-handler': circuit open after 3 consecutive failures")
    assert "answered 503" in lines[0] and "wait 0.6 s" in lines[0]
    assert lines[1] == "webhook handler 'http-webhook-handler': circuit closed, deliveries resume"


def test_an_open_circuit_holds_back_one_handler_only(make_host, http_handler, receiver, down_url, event, settle):
    class Counter(loopai.WebhookHandlerPlugin):
        name = "counter"

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def handle_event(self, event, context):
            self.calls += 1

    counter = Counter()
    host = make_host(http_handler(down_url), counter, max_retries=10, delivery={"circuit_failures": 2}).start()
    host.emit_many([event() for _ in range(20)])
    settle(host)  # nothing left due: the open circuit's deliveries wait out their cool-down
    rows = {row.handler: row for row in host.delivery_report()}
    assert counter.calls == 20 and rows["counter"].delivered == 20
    http = rows["http-webhook-handler"]
    assert http.circuit == "open" and http.delivered == 0 and http.pending == 20 and http.dead == 0


def test_a_client_error_does_not_open_the_circuit(make_host, http_handler, receiver, event, settle):
    receiver.always(400)  # the endpoint answers: it is up, each event is refused on its own merits
    host = make_host(http_handler(receiver.url), delivery={"circuit_failures": 2}).start()
    host.emit_many([event() for _ in range(6)])
    settle(host)
    (row,) = host.delivery_report()
    assert (row.circuit, row.dead, row.pending) == ("closed", 6, 0)
    assert len(receiver.requests) == 6


def test_closing_drains_up_to_its_deadline_and_the_rest_stays_pending(
    make_host, http_handler, receiver, event, outbox_path, settle, assert_accounted
):
    receiver.hold()  # every request waits until released
    bounded = loopai.LoopaiConfig(delivery={"drain_timeout": 0.5}, dispatch={"default_timeout": 2})
    host = make_host(http_handler(receiver.url, timeout=30), config=bounded).start()
    events = [event() for _ in range(12)]
    host.emit_many(events)
    assert receiver.wait_for(8)  # eight in flight, four waiting for a slot
    started = time.monotonic()
    host.close()
    closed, took = time.time(), time.monotonic() - started
    assert 0.45 <= took < 3, took  # the deadline, then the shutdown hooks; not the handler's 30 s timeout
    later = make_host(http_handler(receiver.url))
    rows = later.outbox.deliveries("pending")
    assert len(rows) == 12  # nothing was lost; the in-flight ones were handed back
    # The four never tried are due as they were; the eight whose requests are still open only once
    # those must have ended (the handler's 2 s timeout): no other worker sends them meanwhile.
    begun = [row for row in rows if row.next_attempt_at > closed + 1]
    assert len(begun) == 8 and all("in flight" in (row.last_error or "") for row in begun)
    assert all(row.attempts == 0 for row in rows)
    receiver.release()
    settle(later.start())
    assert_accounted(later.outbox, 12)
    assert {r.event_id for r in receiver.requests} == {str(e.event_id) for e in events}


def test_closing_waits_for_a_retry_due_before_the_deadline(make_host, event, settle):
    calls: list[float] = []

    class SecondTime(loopai.WebhookHandlerPlugin):
        name = "second-time"

        def handle_event(self, event, context):
            calls.append(time.monotonic())
            if len(calls) == 1:
                error = ConnectionError("busy")
                error.retry_after = 0.4  # type: ignore[attr-defined]
                raise error

    host = make_host(SecondTime(), delivery={"drain_timeout": 5})
    host.emit(event())
    host.close()
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.35
    assert [row.delivered for row in host.delivery_report()] == [1]


def test_a_host_that_is_never_closed_drains_at_exit(tmp_path, outbox_path, run_cli):
    script = tmp_path / "forgetful.py"
    script.write_text(
        "import sys, time, loopai\n"
        "class Slow(loopai.WebhookHandlerPlugin):\n"
        "    name = 'slow'\n"
        "    def handle_event(self, event, context):\n"
        "        time.sleep(0.05)\n"
        f"host = loopai.Host(plugins=[Slow()], outbox={str(outbox_path)!r}, environ={{}})\n"
        "for _ in range(10):\n"
        "    host.emit(loopai.WebhookEvent(event_type='task.created'))\n"
        "print('emitted', flush=True)\n",  # and exits without closing the host
        encoding="utf-8",
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "emitted" in done.stdout, done.stderr
    listed = run_cli("events", "list", "--outbox", str(outbox_path))
    assert "10 delivered, 0 dead, 0 pending" in listed.stderr


def test_emitting_from_many_threads_while_the_circuit_is_open_keeps_every_event(
    make_host, http_handler, down_url, event, assert_accounted, settle
):
    host = make_host(http_handler(down_url), delivery={"circuit_failures": 1}).start()
    emitted = [event() for _ in range(80)]

    def emit(mine):
        for evt in mine:
            host.emit(evt)

    threads = [threading.Thread(target=emit, args=(emitted[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    settle(host)
    assert_accounted(host.outbox, 80, settled=False)  # emitted = delivered + dead + pending
    (row,) = host.delivery_report()
    assert row.circuit == "open" and row.pending + row.dead == 80


def test_a_host_that_is_dropped_is_collected_and_its_outbox_closed(outbox_path, event):
    import gc
    import weakref

    class Hook(loopai.WebhookHandlerPlugin):
        name = "hook"

        def handle_event(self, event, context):
            pass

    host = loopai.Host(plugins=[Hook()], outbox=outbox_path, environ={})
    host.emit(event())
    gone = weakref.ref(host)
    outbox = host.outbox
    del host
    gc.collect()
    assert gone() is None  # neither the workers nor their threads keep a host alive
    with pytest.raises(loopai.OutboxError, match="closed"):
        outbox.counts()  # closed when its host was collected
