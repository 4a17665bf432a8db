"""Closing a host: calls in flight waited for, later calls refused, late async startups on the
application's loop, no thread left behind; and drain on a host never started."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai.delivery import SqliteOutbox
from loopai.host._closing import close_host

CLOSED = "host is closed: build a new one"


def record() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())


def event() -> loopai.WebhookEvent:
    return loopai.WebhookEvent(event_type="task.created")


def make_host(*plugins: object, **options: Any) -> loopai.Host:
    options.setdefault("environ", {})
    return loopai.Host(plugins=plugins, **options)


class Conn(loopai.ValidatorPlugin):
    """A validator whose client its shutdown closes; its call takes ``delay`` seconds."""

    def __init__(self, log: list[str], delay: float = 0.5, name: str = "conn") -> None:
        super().__init__(name=name)
        self.log = log
        self.delay = delay
        self.client: object | None = None

    def startup(self, host):
        self.client = object()

    def shutdown(self, host):
        self.log.append("shutdown")
        self.client = None

    def validate(self, execution, context):
        self.log.append("validate")
        time.sleep(self.delay)
        if self.client is None:
            raise RuntimeError("client closed under me")
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


class AsyncConn(Conn):
    async def avalidate(self, execution, context):
        self.log.append("validate")
        await asyncio.sleep(self.delay)
        if self.client is None:
            raise RuntimeError("client closed under me")
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)

    validate = avalidate  # type: ignore[assignment]


class Hook(loopai.WebhookHandlerPlugin):
    """A handler that needs its startup: without it, a delivery fails."""

    supported_events = frozenset({loopai.WebhookEventType.TASK_CREATED})

    def __init__(self) -> None:
        super().__init__(name="hook")
        self.client: object | None = None
        self.handled: list[str] = []

    def startup(self, host):
        self.client = object()

    def shutdown(self, host):
        self.client = None

    def handle_event(self, event, context):
        if self.client is None:
            raise RuntimeError("client not open")
        self.handled.append(str(event.event_id))


# -- 1. close waits for the calls in flight ------------------------------------------------------


def test_close_waits_for_a_call_in_flight_before_the_shutdown_hooks() -> None:
    log: list[str] = []
    host = make_host(Conn(log)).start()
    out: list[loopai.ValidationReport] = []
    caller = threading.Thread(target=lambda: out.append(host.validate(record())))
    caller.start()
    while "validate" not in log:
        time.sleep(0.005)
    host.close()
    log.append("close returned")
    caller.join()
    assert log == ["validate", "shutdown", "close returned"]
    assert out[0].is_valid and not out[0].failures


def test_aclose_waits_for_an_async_call_in_flight() -> None:
    log: list[str] = []

    async def main() -> tuple[loopai.ValidationReport, float]:
        host = make_host(AsyncConn(log, delay=0.3))
        async with host:
            call = asyncio.ensure_future(host.avalidate(record()))
            while "validate" not in log:
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            await host.aclose()
            log.append("close returned")
            assert call.done()
            return call.result(), time.perf_counter() - started

    report, took = asyncio.run(main())
    assert log == ["validate", "shutdown", "close returned"]
    assert report.is_valid and not report.failures
    assert took >= 0.2


def test_close_stops_waiting_at_its_limit_and_names_the_plugin_call_still_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    host = make_host(Conn(log, delay=1.0, name="slowpoke")).start()
    caller = threading.Thread(target=host.validate, args=(record(),))
    caller.start()
    while "validate" not in log:
        time.sleep(0.005)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="loopai"):
        close_host(host, None, calls_wait=0.2)
    assert time.perf_counter() - started < 0.9
    assert log == ["validate", "shutdown"]
    said = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert said and "validator 'slowpoke'" in said[0], caplog.text
    caller.join()


def test_close_from_inside_a_plugin_call_does_not_wait_for_itself() -> None:
    holder: dict[str, loopai.Host] = {}

    class Closer(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            holder["host"].close()
            return loopai.ValidationResult(is_valid=True, validator_type=self.name)

    host = holder["host"] = make_host(Closer(name="closer")).start()
    started = time.perf_counter()
    assert host.validate(record()).is_valid
    assert time.perf_counter() - started < 5 and host.closed


def test_sync_close_from_a_coroutine_with_calls_in_flight_does_not_freeze_its_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The calls await on the loop close() would block: waiting for them waited 30 s for nothing.
    log: list[str] = []

    async def main() -> tuple[float, list[Any]]:
        host = make_host(AsyncConn(log, delay=0.3))
        async with host:
            calls = [asyncio.ensure_future(host.avalidate(record())) for _ in range(5)]
            while log.count("validate") < 5:
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            with caplog.at_level(logging.WARNING, logger="loopai"):
                host.close()
            took = time.perf_counter() - started
            return took, await asyncio.gather(*calls, return_exceptions=True)

    took, outcomes = asyncio.run(main())

    assert took < 10, took
    said = [r.getMessage() for r in caplog.records if "called from a coroutine" in r.getMessage()]
    assert said and "5 call(s) in flight" in said[0] and "await host.aclose()" in said[0], caplog.text
    assert len(outcomes) == 5  # each ended, one way or another: nothing hangs


# -- 2. calls after close are refused; drain on a host never started --------------------------------


def test_every_call_after_close_is_refused_with_one_clear_error(tmp_path: Path) -> None:
    log: list[str] = []
    conn = Conn(log, delay=0)
    host = make_host(conn, Hook(), outbox=tmp_path / "outbox.sqlite3").start()
    host.close()
    assert host.closed
    calls = {
        "validate": lambda: host.validate(record()),
        "should_sample": lambda: host.should_sample(record()),
        "emit": lambda: host.emit(event()),
        "emit_many": lambda: host.emit_many([event()]),
        "process": lambda: host.process(record()),
        "start": host.start,
        "avalidate": lambda: asyncio.run(host.avalidate(record())),
        "ashould_sample": lambda: asyncio.run(host.ashould_sample(record())),
        "aemit": lambda: asyncio.run(host.aemit(event())),
        "aprocess": lambda: asyncio.run(host.aprocess(record())),
        "astart": lambda: asyncio.run(host.astart()),
    }
    for name, call in calls.items():
        with pytest.raises(loopai.HostStateError, match=CLOSED) as raised:
            call()
        assert not isinstance(raised.value, loopai.OutboxError), name
    with pytest.raises(loopai.LoopaiError, match=CLOSED), host:
        pass

    async def enter() -> None:
        async with host:
            pass

    with pytest.raises(loopai.LoopaiError, match=CLOSED):
        asyncio.run(enter())
    assert log == ["shutdown"]  # never called after its shutdown
    host.close()  # still idempotent
    assert host.call_order()["validator"].names() == ["conn"]  # questions about the plugins still answer


def test_a_host_closed_without_being_started_refuses_calls_and_start() -> None:
    log: list[str] = []
    conn = Conn(log, delay=0)
    conn.client = object()  # opened by the application: its startup never runs
    host = make_host(conn)
    assert host.validate(record()).is_valid  # never started: calls work, as the README shows
    host.close()
    with pytest.raises(loopai.LoopaiError, match=CLOSED):
        host.start()
    with pytest.raises(loopai.LoopaiError, match=CLOSED):
        host.validate(record())
    assert log == ["validate"]  # no startup, so no shutdown either


def test_drain_on_a_host_never_started_starts_no_delivery(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    left = SqliteOutbox(path)
    left.record(event(), ["hook"])  # left by an earlier process
    left.close()
    hook = Hook()
    host = make_host(hook, outbox=path)
    try:
        with pytest.raises(loopai.LoopaiError, match="start it first"):
            host.drain(1)
        with pytest.raises(loopai.LoopaiError, match="start it first"):
            asyncio.run(host.adrain(1))
        assert host.outbox is not None
        assert host.outbox.counts()["pending"] == 1 and host.outbox.counts()["dead"] == 0
        host.start()
        assert host.drain(10)
        assert len(hook.handled) == 1 and host.outbox.counts()["dead"] == 0
    finally:
        host.close()


def test_drain_on_a_host_never_started_waits_for_what_its_emit_started(tmp_path: Path) -> None:
    hook = Hook()
    hook.client = object()  # opened by the application: the host is used without start()
    host = make_host(hook, outbox=tmp_path / "outbox.sqlite3")
    try:
        assert host.emit(event()).pending == ("hook",)
        assert host.drain(10) and len(hook.handled) == 1
    finally:
        host.close()


# -- 3. late plugins under async with: async startup on the application's loop -----------------------


class LateValidator(loopai.ValidatorPlugin):
    def __init__(self) -> None:
        super().__init__(name="late", enabled=False)
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.threads: list[int] = []

    async def startup(self, host):
        self.loops.append(asyncio.get_running_loop())
        self.threads.append(threading.get_ident())

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


@pytest.mark.parametrize("call", ["avalidate", "ashould_sample", "aprocess", "aemit"])
def test_a_plugin_enabled_under_async_with_starts_on_the_running_loop(call: str) -> None:
    late = LateValidator()

    async def main() -> asyncio.AbstractEventLoop:
        async with make_host(late) as host:
            late.enabled = True
            if call == "aemit":
                await host.aemit(event())
            else:
                await getattr(host, call)(record())
            assert late.enabled, host.problems
            return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert late.loops == [loop]
    assert late.threads == [threading.get_ident()]


def test_a_plugin_enabled_later_still_starts_from_sync_calls() -> None:
    late = LateValidator()
    with make_host(late) as host:
        late.enabled = True
        assert [r.validator_type for r in host.validate(record()).results] == ["late"]
    assert len(late.loops) == 1  # on the host's private loop, as before


# -- 4. no thread left behind -------------------------------------------------------------------------


def test_close_joins_the_private_event_loop_thread() -> None:
    class Async(loopai.ValidatorPlugin):
        async def validate(self, execution, context):
            return loopai.ValidationResult(is_valid=True, validator_type=self.name)

    host = make_host(Async(name="async")).start()
    assert host.validate(record()).is_valid  # from sync code: on the host's private loop
    loops = [t for t in threading.enumerate() if t.name == "loopai-async-plugins"]
    assert loops
    host.close()
    assert not any(t.is_alive() for t in loops)


def test_closing_the_sqlite_outbox_ends_its_delivered_marks_timer(tmp_path: Path) -> None:
    before = {t for t in threading.enumerate() if isinstance(t, threading.Timer)}
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    evt = event()
    outbox.record(evt, ["hook"])
    outbox.delivered(str(evt.event_id), "hook", 1)  # written within 50 ms, or by close
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t not in before]
    assert timers
    outbox.close()
    assert not any(t.is_alive() for t in timers)
    again = SqliteOutbox(tmp_path / "outbox.sqlite3")
    try:
        assert again.counts()["delivered"] == 1
    finally:
        again.close()
