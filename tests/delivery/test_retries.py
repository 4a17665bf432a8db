"""Retries: backoff with jitter, Retry-After from a real receiver, dead letters when the receiver is down."""

from __future__ import annotations

import itertools
import time

import pytest
import standardwebhooks

import loopai


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


def test_retries_back_off_exponentially_with_jitter(make_host, event):
    base, retries = 0.04, 4
    ratios: list[float] = []
    for _ in range(3):
        handler = Flaky(retries)
        host = make_host(handler, config=dispatch(max_retries=retries, retry_backoff=base), retry_backoff=None)
        evt = event()
        assert host.emit(evt).ok
        measured = gaps(handler.times)
        ceilings = [base * 2**i for i in range(retries)]  # 0.04, 0.08, 0.16, 0.32
        for gap, ceiling in zip(measured, ceilings):
            assert ceiling * 0.5 - 0.005 <= gap <= ceiling + 0.15, (measured, ceilings)
            ratios.append(gap / ceiling)
        assert measured[3] > 2 * measured[0]  # it grows
        (record,) = host.outbox.deliveries(event_ids=[str(evt.event_id)])
        assert (record.status, record.attempts) == ("delivered", 5)
    # Jitter: each wait is a random fraction (0.5 to 1) of its ceiling, not the ceiling itself.
    assert min(ratios) < 0.9 and max(ratios) - min(ratios) > 0.05, ratios


def test_backoff_is_capped_by_retry_max_backoff(make_host, event):
    handler = Flaky(4)
    config = dispatch(max_retries=4, retry_backoff=0.04, retry_max_backoff=0.05)
    host = make_host(handler, config=config, retry_backoff=None)
    assert host.emit(event()).ok
    assert max(gaps(handler.times)) <= 0.05 + 0.1


def test_no_retries_are_made_past_max_retries(make_host, event):
    handler = Flaky(10)
    host = make_host(handler, max_retries=2)
    report = host.emit(event())
    assert len(handler.times) == 3 and report.failures[0].attempts == 3
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts, record.last_error) == (
        "dead",
        3,
        "webhook-handler 'flaky' raised ConnectionError: call #3 failed (after 3 attempts)",
    )


# -- the real HTTP handler against a real receiver -------------------------------------------


def test_retry_after_from_the_receiver_is_honoured(make_host, http_handler, receiver, event, whsec):
    receiver.fail(1, status=503, retry_after="1")
    receiver.fail(1, status=429, retry_after="0.5")
    host = make_host(http_handler(receiver.url), max_retries=3).start()  # retry_backoff 0.001: only Retry-After waits
    evt = event()
    assert host.emit(evt).ok
    first, second, third = receiver.requests
    assert 0.95 <= second.at - first.at <= 2.0
    assert 0.45 <= third.at - second.at <= 1.5
    assert [r.headers["X-Loopai-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert {r.event_id for r in receiver.requests} == {str(evt.event_id)}  # receivers dedupe by webhook-id
    for request in receiver.requests:
        assert standardwebhooks.Webhook(whsec).verify(request.body, request.headers) == evt.model_dump(mode="json")
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts, record.last_error) == ("delivered", 3, None)


def test_a_retry_after_longer_than_retry_max_backoff_is_waited_in_full(make_host, http_handler, receiver, event):
    receiver.fail(1, status=503, retry_after="1")
    host = make_host(http_handler(receiver.url)).start()  # started: close() shuts the handler's client
    host.retry_max_backoff = 0.1
    assert host.emit(event()).ok
    first, second = receiver.requests
    assert second.at - first.at >= 0.95


def test_a_long_retry_after_is_capped_by_retry_after_limit(make_host, http_handler, receiver, event):
    assert loopai.Host(environ={}).retry_after_limit == 300  # the documented default
    receiver.fail(1, status=503, retry_after="3600")
    host = make_host(http_handler(receiver.url)).start()
    host.retry_max_backoff, host.retry_after_limit = 0.05, 0.3
    started = time.monotonic()
    assert host.emit(event()).ok
    assert 0.25 <= time.monotonic() - started < 2.0 and len(receiver.requests) == 2


def test_a_failed_attempt_keeps_the_receivers_answer_while_pending(make_host, http_handler, receiver, event):
    receiver.fail(1, status=503, retry_after="0.3")
    host = make_host(http_handler(receiver.url)).start()
    seen: list[object] = []

    class Watch(loopai.WebhookHandlerPlugin):
        name = "watch"
        priority = 0  # after the http handler (100)

        def handle_event(self, event, context):
            seen.extend(host.outbox.deliveries())

    host.registry.register(Watch())
    host.emit(event())
    http = next(r for r in seen if r.handler == "http-webhook-handler")
    assert http.status == "delivered" and http.attempts == 2


def test_a_receiver_that_is_down_gives_a_dead_letter_with_the_connection_error(
    make_host, http_handler, down_url, event, assert_accounted, whsec
):
    host = make_host(http_handler(down_url), max_retries=2).start()
    report = host.emit(event())
    assert not report.ok and report.failures[0].attempts == 3
    (record,) = host.outbox.deliveries("dead")
    assert record.attempts == 3
    assert "ConnectError" in record.last_error and down_url in record.last_error
    assert whsec not in record.last_error
    assert_accounted(host.outbox, 1)


def test_a_receiver_going_down_mid_run_leaves_dead_letters_and_nothing_pending(
    make_host, http_handler, receiver, event, assert_accounted
):
    host = make_host(http_handler(receiver.url), max_retries=1).start()
    for _ in range(5):
        assert host.emit(event()).ok
    receiver.stop()
    for _ in range(5):
        assert not host.emit(event()).ok
    counts = assert_accounted(host.outbox, 10)
    assert (counts["delivered"], counts["dead"]) == (5, 5)


def test_a_client_error_is_dead_at_once(make_host, http_handler, receiver, event):
    receiver.fail(1, status=400)
    host = make_host(http_handler(receiver.url), max_retries=3).start()
    assert not host.emit(event()).ok
    assert len(receiver.requests) == 1
    (record,) = host.outbox.deliveries("dead")
    assert record.attempts == 1 and "answered 400" in record.last_error


def test_a_slow_receiver_times_out_and_the_retry_delivers_the_same_event_again(
    make_host, http_handler, receiver, event
):
    receiver.slow(1.0)
    host = make_host(http_handler(receiver.url, timeout=0.2)).start()
    evt = event()
    assert host.emit(evt).ok
    assert receiver.event_ids() == [str(evt.event_id)] * 2  # at least once: the receiver saw it twice
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts) == ("delivered", 2)


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_retryable_answers_are_retried(make_host, http_handler, receiver, event, status):
    receiver.fail(2, status=status)
    host = make_host(http_handler(receiver.url), max_retries=2).start()
    assert host.emit(event()).ok and len(receiver.requests) == 3
