"""Retries: scheduled in the outbox with backoff and jitter, Retry-After from a real receiver as a schedule,
dead letters when the receiver is down."""

from __future__ import annotations

import itertools
import time

import pytest
import standardwebhooks

import loopai
from loopai.delivery import SqliteOutbox as Outbox


class Flaky(loopai.WebhookHandlerPlugin):
    """Fails its first ``failures`` calls; records when each call started."""

    def __init__(self, failures: int, name: str = "flaky"):
        super().__init__(name=name)
        self.failures = failures
        self.times: list[float] = []

    def handle_event(self, event, context):
        self.times.append(time.monotonic())
        if len(self.times) <= self.failures:
            raise ConnectionError(f"call #{len(self.times)} failed")


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def dispatch(**settings) -> loopai.LoopaiConfig:
    return loopai.LoopaiConfig(dispatch=settings)


# -- backoff ------------------------------------------------------------------------------


def test_retries_back_off_exponentially_with_jitter(make_host, event, settle):
    base, retries = 0.04, 4
    ratios: list[float] = []
    for _ in range(3):
        handler = Flaky(retries)
        host = make_host(handler, config=dispatch(max_retries=retries, retry_backoff=base), retry_backoff=None)
        evt = event()
        assert host.emit(evt).ok
        settle(host)
        measured = gaps(handler.times)
        ceilings = [base * 2**i for i in range(retries)]  # 0.04, 0.08, 0.16, 0.32
        for gap, ceiling in zip(measured, ceilings):
            assert ceiling * 0.5 - 0.005 <= gap <= ceiling + 0.15, (measured, ceilings)
            ratios.append(gap / ceiling)
        assert measured[3] > 2 * measured[0]  # it grows
        (record,) = host.outbox.deliveries(event_ids=[str(evt.event_id)])
        assert (record.status, record.attempts) == ("delivered", 5)
        # The next round's host shares this outbox file: left open, this host's workers could claim
        # the next event for their own "flaky" (which no longer fails) and deliver it first.
        host.close()
    # Jitter: each wait is a random fraction (0.5 to 1) of its ceiling, not the ceiling itself.
    assert min(ratios) < 0.9 and max(ratios) - min(ratios) > 0.05, ratios


def test_backoff_is_capped_by_retry_max_backoff(make_host, event, settle):
    handler = Flaky(4)
    config = dispatch(max_retries=4, retry_backoff=0.04, retry_max_backoff=0.05)
    host = make_host(handler, config=config, retry_backoff=None)
    assert host.emit(event()).ok
    settle(host)
    assert len(handler.times) == 5 and max(gaps(handler.times)) <= 0.05 + 0.1


def test_no_retries_are_made_past_max_retries(make_host, event, settle):
    handler = Flaky(10)
    host = make_host(handler, max_retries=2)
    host.emit(event())
    settle(host)
    assert len(handler.times) == 3
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts, record.last_error) == (
        "dead",
        3,
        f"webhook-handler 'flaky' raised ConnectionError: call #3 failed (at {__file__}:27) (after 3 attempts)",
    )


def test_retries_are_scheduled_and_never_hold_up_emit(make_host, event, settle):
    handler = Flaky(3)
    host = make_host(handler, config=dispatch(max_retries=3, retry_backoff=0.2), retry_backoff=None)
    started = time.monotonic()
    for _ in range(20):
        host.emit(event())
    assert time.monotonic() - started < 0.2  # twenty emits, well under one backoff: nothing waited
    settle(host)
    assert host.outbox.counts()["delivered"] == 20


# -- the real HTTP handler against a real receiver -------------------------------------------


def test_retry_after_from_the_receiver_is_honoured(make_host, http_handler, receiver, event, whsec, settle):
    receiver.fail(1, status=503, retry_after="1")
    receiver.fail(1, status=429, retry_after="0.5")
    host = make_host(http_handler(receiver.url), max_retries=3).start()  # retry_backoff 0.001: only Retry-After waits
    evt = event()
    assert host.emit(evt).ok
    settle(host)
    first, second, third = receiver.requests
    assert 0.95 <= second.at - first.at <= 2.0
    assert 0.45 <= third.at - second.at <= 1.5
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert {r.event_id for r in receiver.requests} == {str(evt.event_id)}  # receivers dedupe by webhook-id
    for request in receiver.requests:
        assert standardwebhooks.Webhook(whsec).verify(request.body, request.headers) == evt.model_dump(mode="json")
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts, record.last_error) == ("delivered", 3, None)


def test_a_retry_after_is_a_schedule_other_events_go_out_meanwhile(make_host, http_handler, receiver, event, settle):
    receiver.fail(1, status=429, retry_after="120")
    host = make_host(http_handler(receiver.url), delivery={"max_in_flight": 1}).start()
    waiting, others = event(), [event() for _ in range(3)]
    started = time.monotonic()
    host.emit(waiting)
    assert receiver.wait_for(1)
    host.emit_many(others)
    settle(host, timeout=5)  # nothing is due before the deadline: the retry waits for its time
    assert time.monotonic() - started < 5
    assert receiver.event_ids() == [str(e.event_id) for e in [waiting, *others]]
    records = {r.event_id: r for r in host.outbox.deliveries()}
    held = records[str(waiting.event_id)]
    assert (held.status, held.attempts) == ("pending", 1) and "answered 429" in held.last_error
    assert 110 < held.next_attempt_at - time.time() <= 120  # due when the receiver said, kept in the outbox
    assert all(records[str(e.event_id)].status == "delivered" for e in others)


def test_a_retry_after_longer_than_retry_max_backoff_is_waited_in_full(
    make_host, http_handler, receiver, event, settle
):
    receiver.fail(1, status=503, retry_after="1")
    host = make_host(http_handler(receiver.url)).start()  # started: close() shuts the handler's client
    host.retry_max_backoff = 0.1
    assert host.emit(event()).ok
    settle(host)
    first, second = receiver.requests
    assert second.at - first.at >= 0.95


@pytest.mark.parametrize("how", ["setting", "attribute"])
def test_a_long_retry_after_is_capped_by_retry_after_limit(make_host, http_handler, receiver, event, settle, how):
    assert loopai.Host(environ={}).retry_after_limit == 300  # the documented default
    receiver.fail(1, status=503, retry_after="3600")
    if how == "setting":
        host = make_host(http_handler(receiver.url), delivery={"retry_after_limit": 0.3}).start()
    else:
        host = make_host(http_handler(receiver.url)).start()
        host.retry_after_limit = 0.3
    host.retry_max_backoff = 0.05
    started = time.monotonic()
    assert host.emit(event()).ok
    settle(host)
    assert 0.25 <= time.monotonic() - started < 2.0 and len(receiver.requests) == 2


def test_a_failed_attempt_keeps_the_receivers_answer_while_pending(
    make_host, http_handler, receiver, event, outbox_path, settle
):
    receiver.fail(1, status=503, retry_after="0.5")
    host = make_host(http_handler(receiver.url)).start()
    evt = event()
    host.emit(evt)
    assert receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while True:  # between the two attempts, another connection sees the failed one
        other = Outbox(outbox_path)
        try:
            (row,) = other.deliveries()
        finally:
            other.close()
        if row.attempts == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert (row.status, row.attempts) == ("pending", 1) and "answered 503" in row.last_error
    settle(host)
    (row,) = host.outbox.deliveries()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)


def test_a_receiver_that_is_down_gives_a_dead_letter_with_the_connection_error(
    make_host, http_handler, down_url, event, assert_accounted, whsec, settle
):
    host = make_host(http_handler(down_url), max_retries=2).start()
    assert host.emit(event()).ok
    settle(host)
    (record,) = host.outbox.deliveries("dead")
    assert record.attempts == 3
    assert "ConnectError" in record.last_error and down_url in record.last_error
    assert whsec not in record.last_error
    assert [(row.retried, row.dead) for row in host.delivery_report()] == [(2, 1)]
    assert_accounted(host.outbox, 1)


def test_a_receiver_going_down_mid_run_leaves_dead_letters_and_nothing_pending(
    make_host, http_handler, receiver, event, assert_accounted, settle
):
    host = make_host(http_handler(receiver.url), max_retries=1, delivery={"circuit_failures": 0}).start()
    for _ in range(5):
        host.emit(event())
    settle(host)
    receiver.stop()
    for _ in range(5):
        host.emit(event())
    settle(host)
    counts = assert_accounted(host.outbox, 10)
    assert (counts["delivered"], counts["dead"]) == (5, 5)


def test_a_client_error_is_dead_at_once(make_host, http_handler, receiver, event, settle):
    receiver.fail(1, status=400)
    host = make_host(http_handler(receiver.url), max_retries=3).start()
    host.emit(event())
    settle(host)
    assert len(receiver.requests) == 1
    (record,) = host.outbox.deliveries("dead")
    assert record.attempts == 1 and "answered 400" in record.last_error


def test_a_slow_receiver_times_out_and_the_retry_delivers_the_same_event_again(
    make_host, http_handler, receiver, event, settle
):
    receiver.slow(1.0)
    host = make_host(http_handler(receiver.url, timeout=0.2)).start()
    evt = event()
    host.emit(evt)
    settle(host)
    assert receiver.event_ids() == [str(evt.event_id)] * 2  # at least once: the receiver saw it twice
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts) == ("delivered", 2)


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_retryable_answers_are_retried(make_host, http_handler, receiver, event, status, settle):
    receiver.fail(2, status=status)
    host = make_host(http_handler(receiver.url), max_retries=2).start()
    host.emit(event())
    settle(host)
    assert len(receiver.requests) == 3 and host.outbox.counts()["delivered"] == 1
