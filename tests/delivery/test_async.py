"""host.aemit with an outbox: the same records as emit, handlers (and events) delivered concurrently."""

from __future__ import annotations

import asyncio
import time

import standardwebhooks

import loopai
from loopai.delivery import SqliteOutbox as Outbox


class Sleeper(loopai.WebhookHandlerPlugin):
    """An async handler that takes ``seconds``; fails its first ``failures`` calls (all with -1)."""

    def __init__(self, name: str, seconds: float = 0.0, failures: int = 0):
        super().__init__(name=name)
        self.seconds = seconds
        self.failures = failures
        self.calls = 0

    async def handle_event(self, event, context):
        self.calls += 1
        await asyncio.sleep(self.seconds)
        if self.failures < 0 or self.calls <= self.failures:
            raise ConnectionError(f"{self.name} failed call #{self.calls}")


class BlockingSleeper(loopai.WebhookHandlerPlugin):
    """A sync handler that blocks for ``seconds`` (aemit runs it off the event loop)."""

    def __init__(self, name: str, seconds: float):
        super().__init__(name=name)
        self.seconds = seconds

    def handle_event(self, event, context):
        time.sleep(self.seconds)


class AsyncPeeker(loopai.WebhookHandlerPlugin):
    """Reads the outbox file through its own connection from inside an async ``handle_event``."""

    def __init__(self, name: str, path):
        super().__init__(name=name)
        self.path = path
        self.seen: dict[str, str] = {}

    async def handle_event(self, event, context):
        outbox = Outbox(self.path)
        try:
            self.seen = {r.handler: r.status for r in outbox.deliveries(event_ids=[str(event.event_id)])}
        finally:
            outbox.close()


def test_aemit_stores_the_event_and_pending_deliveries_before_any_handler_runs(make_host, outbox_path, event):
    one, two = AsyncPeeker("one", outbox_path), AsyncPeeker("two", outbox_path)
    host = make_host(one, two)
    evt = event()
    report = asyncio.run(host.aemit(evt))
    assert sorted(report.delivered) == ["one", "two"]
    assert one.seen["one"] == "pending" and two.seen["two"] == "pending"
    assert {r.status for r in host.outbox.deliveries()} == {"delivered"}


def test_aemit_runs_handlers_concurrently_and_records_each_delivery(make_host, event, assert_accounted):
    handlers = [Sleeper(f"async-{i}", 0.3) for i in range(3)] + [BlockingSleeper(f"sync-{i}", 0.3) for i in range(2)]
    host = make_host(*handlers)
    started = time.monotonic()
    report = asyncio.run(host.aemit(event()))
    elapsed = time.monotonic() - started
    assert len(report.delivered) == 5 and not report.failures
    assert elapsed < 0.3 * 5 * 0.6, elapsed  # far less than one after the other (1.5 s)
    assert_accounted(host.outbox, 5)


def test_aemit_keeps_attempts_and_the_last_error_of_dead_letters(make_host, event, assert_accounted):
    host = make_host(Sleeper("ok"), Sleeper("flaky", failures=1), Sleeper("broken", failures=-1), max_retries=2)
    evt = event()
    report = asyncio.run(host.aemit(evt))
    assert sorted(report.delivered) == ["flaky", "ok"] and report.failures[0].attempts == 3
    records = {r.handler: r for r in host.outbox.deliveries()}
    assert (records["ok"].status, records["ok"].attempts) == ("delivered", 1)
    assert (records["flaky"].status, records["flaky"].attempts) == ("delivered", 2)
    assert (records["broken"].status, records["broken"].attempts) == ("dead", 3)
    assert "broken failed call #3" in records["broken"].last_error
    assert_accounted(host.outbox, 3)


def test_emitted_equals_delivered_plus_dead_for_many_concurrent_aemits(make_host, event, assert_accounted):
    host = make_host(Sleeper("ok", 0.01), Sleeper("flaky", 0.01, failures=7), Sleeper("broken", failures=-1))

    async def main() -> list[loopai.EmitReport]:
        return await asyncio.gather(*(host.aemit(event()) for _ in range(25)))

    reports = asyncio.run(main())
    assert sum(len(r.delivered) + len(r.failures) for r in reports) == 75
    counts = assert_accounted(host.outbox, 75)
    assert counts["dead"] >= 25


def test_aemit_delivers_one_event_id_once_even_when_emitted_concurrently(make_host, event, assert_accounted):
    handler = Sleeper("slow", 0.1)
    host = make_host(handler)
    evt = event()

    async def main() -> list[loopai.EmitReport]:
        first = await asyncio.gather(host.aemit(evt), host.aemit(evt), host.aemit(evt))
        return [*first, await host.aemit(evt)]

    reports = asyncio.run(main())
    assert handler.calls == 1 and sum(len(r.delivered) for r in reports) == 1
    assert_accounted(host.outbox, 1)


def test_aemit_delivers_events_concurrently_to_a_slow_receiver(
    make_host, http_handler, receiver, event, whsec, assert_accounted
):
    receiver.slow(0.5, times=4)
    host = make_host(http_handler(receiver.url)).start()
    events = [event() for _ in range(4)]

    async def main() -> list[loopai.EmitReport]:
        return await asyncio.gather(*(host.aemit(e) for e in events))

    started = time.monotonic()
    reports = asyncio.run(main())
    assert time.monotonic() - started < 1.5  # not 4 x 0.5 s
    assert all(r.ok for r in reports)
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in events)
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)
    assert_accounted(host.outbox, 4)


def test_aemit_honours_retry_after_and_dead_letters_a_receiver_that_is_down(
    make_host, http_handler, receiver, down_url, event
):
    receiver.fail(1, status=503, retry_after="0.5")
    up = make_host(http_handler(receiver.url)).start()
    assert asyncio.run(up.aemit(event())).ok
    first, second = receiver.requests
    assert second.at - first.at >= 0.45
    down = make_host(http_handler(down_url), max_retries=1, outbox=up.outbox).start()
    assert not asyncio.run(down.aemit(event())).ok
    (dead,) = up.outbox.deliveries("dead")
    assert dead.attempts == 2 and "ConnectError" in dead.last_error
