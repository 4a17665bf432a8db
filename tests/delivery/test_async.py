"""host.aemit with an outbox: records and returns; workers deliver concurrently, async handlers on the app's loop."""

from __future__ import annotations

import asyncio
import time

import pytest
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


def test_aemit_stores_the_event_and_pending_deliveries_before_any_handler_runs(make_host, outbox_path, event, settle):
    one, two = AsyncPeeker("one", outbox_path), AsyncPeeker("two", outbox_path)
    host = make_host(one, two)
    evt = event()
    report = asyncio.run(host.aemit(evt))
    assert sorted(report.pending) == ["one", "two"] and report.delivered == () and report.ok
    settle(host)
    assert one.seen["one"] == "pending" and two.seen["two"] == "pending"
    assert {r.status for r in host.outbox.deliveries()} == {"delivered"}


def test_aemit_returns_at_once_and_handlers_deliver_concurrently(make_host, event, assert_accounted, settle):
    handlers = [Sleeper(f"async-{i}", 0.3) for i in range(3)] + [BlockingSleeper(f"sync-{i}", 0.3) for i in range(2)]
    host = make_host(*handlers)
    started = time.monotonic()
    report = asyncio.run(host.aemit(event()))
    assert len(report.pending) == 5 and not report.failures
    assert time.monotonic() - started < 0.3  # recorded, not delivered: no handler ran in the caller
    settle(host)
    assert time.monotonic() - started < 0.3 * 5 * 0.6  # far less than one after the other (1.5 s)
    assert_accounted(host.outbox, 5)


def test_aemit_keeps_attempts_and_the_last_error_of_dead_letters(make_host, event, assert_accounted, settle):
    host = make_host(Sleeper("ok"), Sleeper("flaky", failures=1), Sleeper("broken", failures=-1), max_retries=2)
    evt = event()
    report = asyncio.run(host.aemit(evt))
    assert sorted(report.pending) == ["broken", "flaky", "ok"] and report.failures == ()
    settle(host)
    records = {r.handler: r for r in host.outbox.deliveries()}
    assert (records["ok"].status, records["ok"].attempts) == ("delivered", 1)
    assert (records["flaky"].status, records["flaky"].attempts) == ("delivered", 2)
    assert (records["broken"].status, records["broken"].attempts) == ("dead", 3)
    assert "broken failed call #3" in records["broken"].last_error
    assert {row.handler: (row.delivered, row.retried, row.dead) for row in host.delivery_report()} == {
        "ok": (1, 0, 0),
        "flaky": (1, 1, 0),
        "broken": (0, 2, 1),
    }
    assert_accounted(host.outbox, 3)


@pytest.mark.parametrize("circuit_failures", [0, 5])
def test_emitted_equals_delivered_plus_dead_plus_pending_for_many_concurrent_aemits(
    make_host, event, assert_accounted, settle, circuit_failures
):
    host = make_host(
        Sleeper("ok", 0.01),
        Sleeper("flaky", 0.01, failures=7),
        Sleeper("broken", failures=-1),
        delivery={"circuit_failures": circuit_failures},
    )

    async def main() -> list[loopai.EmitReport]:
        return await asyncio.gather(*(host.aemit(event()) for _ in range(25)))

    reports = asyncio.run(main())
    assert sum(len(r.pending) for r in reports) == 75
    settle(host)
    counts = assert_accounted(host.outbox, 75, settled=circuit_failures == 0)
    rows = host.delivery_report()
    broken = next(row for row in rows if row.handler == "broken")
    if circuit_failures:  # the circuit opened: what "broken" did not try waits, pending
        assert broken.circuit == "open" and broken.pending > 0
        # ("flaky" fails 7 times first: its circuit may open too, depending on the order attempts finish)
        assert counts["pending"] == sum(row.pending for row in rows if row.circuit == "open")
    else:
        assert counts["dead"] == 25 and broken.dead == 25


def test_aemit_delivers_one_event_id_once_even_when_emitted_concurrently(make_host, event, assert_accounted, settle):
    handler = Sleeper("slow", 0.1)
    host = make_host(handler)
    evt = event()

    async def main() -> list[loopai.EmitReport]:
        first = await asyncio.gather(host.aemit(evt), host.aemit(evt), host.aemit(evt))
        return [*first, await host.aemit(evt)]

    reports = asyncio.run(main())
    assert sum(len(r.pending) for r in reports) == 1
    settle(host)
    assert handler.calls == 1
    assert_accounted(host.outbox, 1)


def test_events_to_a_slow_receiver_are_delivered_concurrently(
    make_host, http_handler, receiver, event, whsec, assert_accounted, settle
):
    receiver.slow(0.5, times=4)
    host = make_host(http_handler(receiver.url)).start()
    events = [event() for _ in range(4)]

    async def main() -> list[loopai.EmitReport]:
        return await asyncio.gather(*(host.aemit(e) for e in events))

    started = time.monotonic()
    reports = asyncio.run(main())
    assert all(r.ok and r.pending == ("http-webhook-handler",) for r in reports)
    settle(host)
    assert time.monotonic() - started < 1.5  # not 4 x 0.5 s: up to 8 in flight
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in events)
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)
    assert_accounted(host.outbox, 4)


def test_retry_after_is_honoured_and_a_receiver_that_is_down_gives_dead_letters(
    make_host, http_handler, receiver, down_url, event, settle, tmp_path
):
    receiver.fail(1, status=503, retry_after="0.5")
    up = make_host(http_handler(receiver.url)).start()
    assert asyncio.run(up.aemit(event())).ok
    settle(up)
    first, second = receiver.requests
    assert second.at - first.at >= 0.45
    # An outbox of its own: on up's, up's workers (same handler name) could deliver to the live receiver.
    down = make_host(http_handler(down_url), max_retries=1, outbox=tmp_path / "down.sqlite3").start()
    assert asyncio.run(down.aemit(event())).ok  # recorded: the failure is the workers' to tell
    settle(down)
    (dead,) = down.outbox.deliveries("dead")
    assert dead.attempts == 2 and "ConnectError" in dead.last_error
    assert [(row.dead, row.retried) for row in down.delivery_report()] == [(1, 1)]


class LoopWatcher(loopai.WebhookHandlerPlugin):
    """An async handler that notes the event loop its startup and its deliveries run on."""

    def __init__(self, name: str):
        super().__init__(name=name)
        self.started_on: asyncio.AbstractEventLoop | None = None
        self.delivered_on: list[asyncio.AbstractEventLoop] = []

    async def startup(self, host):
        self.started_on = asyncio.get_running_loop()

    async def handle_event(self, event, context):
        self.delivered_on.append(asyncio.get_running_loop())


def test_async_handlers_deliver_on_the_applications_loop_after_astart(make_host, event, assert_accounted):
    watcher = LoopWatcher("watcher")
    host = make_host(watcher)

    async def app() -> asyncio.AbstractEventLoop:
        async with host:
            await host.aemit_many([event() for _ in range(3)])
            assert await host.adrain(10)
            assert_accounted(host.outbox, 3)
        return asyncio.get_running_loop()

    loop = asyncio.run(app())
    assert watcher.started_on is loop and watcher.delivered_on == [loop] * 3


def test_aclose_drains_what_was_emitted(make_host, event, outbox_path):
    handler = Sleeper("slowish", 0.05)
    host = make_host(handler)

    async def app() -> None:
        async with host:
            for _ in range(5):
                await host.aemit(event())

    asyncio.run(app())
    assert handler.calls == 5
    assert [row.delivered for row in host.delivery_report()] == [5]  # kept after the close
    outbox = Outbox(outbox_path)
    try:
        assert outbox.counts()["delivered"] == 5
    finally:
        outbox.close()
