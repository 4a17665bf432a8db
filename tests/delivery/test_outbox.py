"""host.emit with an outbox: recorded before delivery, delivered / dead, idempotent by event id, left-overs on start."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from typing import Any

import pytest

import loopai
from loopai.delivery import APPLICATION_ID, SCHEMA_VERSION
from loopai.delivery import SqliteOutbox as Outbox

EventType = loopai.WebhookEventType


class Recorder(loopai.WebhookHandlerPlugin):
    """Records every call; fails the first ``failures`` calls (all of them with ``failures=-1``)."""

    def __init__(self, name: str, *, events: Any = None, failures: int = 0, delay: float = 0.0, priority: int = 0):
        super().__init__(name=name, priority=priority)
        if events is not None:
            self.supported_events = events
        self.failures = failures
        self.delay = delay
        self.calls: list[tuple[str, int]] = []  # (event id, retry_attempt)
        self._lock = threading.Lock()

    def handle_event(self, event, context):
        with self._lock:
            self.calls.append((str(event.event_id), context.retry_attempt))
            count = len(self.calls)
        if self.delay:
            time.sleep(self.delay)
        if self.failures < 0 or count <= self.failures:
            raise ConnectionError(f"{self.name} failed call #{count}")


class Peeker(loopai.WebhookHandlerPlugin):
    """Looks at the outbox file through its own connection from inside ``handle_event``."""

    def __init__(self, name: str, path, priority: int = 0):
        super().__init__(name=name, priority=priority)
        self.path = path
        self.seen: dict[str, str] = {}

    def handle_event(self, event, context):
        outbox = Outbox(self.path)
        try:
            self.seen = {r.handler: r.status for r in outbox.deliveries(event_ids=[str(event.event_id)])}
        finally:
            outbox.close()


def counts_in(path) -> dict[str, int]:
    outbox = Outbox(path)
    try:
        return outbox.counts()
    finally:
        outbox.close()


def statuses_elsewhere(path, event_id: Any) -> dict[str, str]:
    """Each handler's delivery status of ``event_id``, read through a connection of its own (as another
    process would read it)."""
    outbox = Outbox(path)
    try:
        return {h: r.status for h, r in by_handler(outbox, event_id).items()}
    finally:
        outbox.close()


def by_handler(outbox: Outbox, event_id: Any = None) -> dict[str, Any]:
    ids = None if event_id is None else [str(event_id)]
    return {r.handler: r for r in outbox.deliveries(event_ids=ids)}


# -- written before delivery -----------------------------------------------------------


def test_the_event_and_a_pending_delivery_per_handler_are_stored_before_any_handler_runs(
    make_host, outbox_path, event, settle
):
    first, second = Peeker("first", outbox_path, priority=10), Peeker("second", outbox_path)
    host = make_host(first, second, Recorder("other-type", events=["canary.rollback"]))
    evt = event()
    report = host.emit(evt)
    assert report.pending == ("first", "second") and report.delivered == () and report.ok
    # Stored when emit returned, read from another connection (another process would see the same).
    assert statuses_elsewhere(outbox_path, evt.event_id) == {"first": "pending", "second": "pending"}
    settle(host)
    # Each handler, reading the file from another connection, saw its own delivery pending.
    assert first.seen["first"] == "pending" and second.seen["second"] == "pending"
    assert {h: r.status for h, r in by_handler(host.outbox, evt.event_id).items()} == {
        "first": "delivered",
        "second": "delivered",
    }


def test_an_event_no_handler_takes_is_stored_without_deliveries(make_host, event, assert_accounted):
    host = make_host(Recorder("rollbacks-only", events=["canary.rollback"]))
    report = host.emit(event("task.created"))
    assert report.delivered == () and report.pending == ()
    assert host.outbox.deliveries() == []
    assert_accounted(host.outbox, 0)


# -- delivered and dead ----------------------------------------------------------------


def test_delivered_and_dead_deliveries_keep_their_attempts_and_the_last_error(make_host, event, settle):
    ok, flaky, broken = Recorder("ok"), Recorder("flaky", failures=2), Recorder("broken", failures=-1)
    host = make_host(ok, flaky, broken, max_retries=2)
    evt = event()
    report = host.emit(evt)
    assert sorted(report.pending) == ["broken", "flaky", "ok"] and report.failures == ()
    settle(host)
    assert [(row.handler, row.delivered, row.retried, row.dead) for row in host.delivery_report()] == [
        ("broken", 0, 2, 1),
        ("flaky", 1, 2, 0),
        ("ok", 1, 0, 0),
    ]
    records = by_handler(host.outbox, evt.event_id)
    assert (records["ok"].status, records["ok"].attempts, records["ok"].last_error) == ("delivered", 1, None)
    assert (records["flaky"].status, records["flaky"].attempts, records["flaky"].last_error) == ("delivered", 3, None)
    dead = records["broken"]
    assert (dead.status, dead.attempts) == ("dead", 3)
    assert "ConnectionError: broken failed call #3" in dead.last_error  # the last error, not the first
    assert [r.event_id for r in host.outbox.deliveries("dead")] == [str(evt.event_id)]
    assert dead.event_type == "program.execution.failed"


def test_a_failed_attempt_is_recorded_while_the_delivery_is_still_pending(make_host, outbox_path, event, settle):
    class SecondLook(loopai.WebhookHandlerPlugin):
        name = "second-look"
        row: Any = None

        def handle_event(self, event, context):
            if context.retry_attempt == 0:
                raise TimeoutError("first try times out")
            outbox = Outbox(outbox_path)
            try:
                (self.row,) = outbox.deliveries(event_ids=[str(event.event_id)])
            finally:
                outbox.close()

    handler = SecondLook()
    host = make_host(handler)
    host.emit(event())
    settle(host)
    assert (handler.row.status, handler.row.attempts) == ("pending", 1)
    assert handler.row.last_error == "TimeoutError: first try times out"


@pytest.mark.parametrize("circuit_failures", [0, 5])
def test_emitted_equals_delivered_plus_dead_plus_pending_after_a_mixed_run(
    make_host, event, assert_accounted, settle, circuit_failures
):
    rng = random.Random(4)

    class Coin(Recorder):
        def handle_event(self, event, context):
            super().handle_event(event, context)
            if rng.random() < 0.3:
                raise RuntimeError("coin says no")

    handlers = [
        Coin("all"),
        Coin("failures", events=["program.execution.failed", "program.execution.timeout"]),
        Coin("rollbacks", events=["canary.rollback"]),
        Recorder("never", events=["canary.rollback"], failures=-1),
    ]
    host = make_host(*handlers, max_retries=1, delivery={"circuit_failures": circuit_failures})
    kinds = ["program.execution.failed", "program.execution.timeout", "canary.rollback", "task.created"]
    expected = 0
    for i in range(60):
        evt = event(kinds[i % len(kinds)])
        report = host.emit(evt)
        matching = [h for h in handlers if evt.event_type in h.supported_events]
        expected += len(matching)
        assert sorted(report.pending) == sorted(h.name for h in matching)
        assert_accounted(host.outbox, expected, settled=False)  # while the workers deliver, too
    settle(host)
    counts = assert_accounted(host.outbox, expected, settled=not circuit_failures)
    assert counts["delivered"] > 0
    never = next(row for row in host.delivery_report() if row.handler == "never")
    if circuit_failures:  # "never" failed 5 times in a row: its circuit is open, the rest waits
        assert never.circuit == "open" and never.dead + never.pending == 15 and never.pending > 0
    else:
        assert counts["dead"] >= 15  # "never" alone gives 15; the coins add more


# -- idempotent by event id --------------------------------------------------------------


def test_emitting_the_same_event_twice_delivers_it_once_per_handler(make_host, event, assert_accounted, settle):
    one, two = Recorder("one"), Recorder("two")
    host = make_host(one, two)
    evt = event()
    assert sorted(host.emit(evt).pending) == ["one", "two"]
    again = host.emit(evt.model_copy(update={"payload": {"changed": True}}))  # same id, other content
    assert again.pending == () and again.delivered == () and again.failures == ()
    settle(host)
    assert len(one.calls) == len(two.calls) == 1
    assert_accounted(host.outbox, 2)


def test_a_dead_letter_is_not_retried_by_emitting_it_again(make_host, event, settle):
    broken = Recorder("broken", failures=-1)
    host = make_host(broken, max_retries=1)
    evt = event()
    host.emit(evt)
    settle(host)
    assert host.emit(evt).pending == ()
    settle(host)
    assert len(broken.calls) == 2  # the first emit's two tries, nothing from the second
    assert host.outbox.counts()["dead"] == 1


def test_another_host_on_the_same_outbox_does_not_deliver_an_event_again(make_host, event, settle):
    """A later host on the same outbox delivers none of what an earlier, stopped host delivered."""
    evt = event()
    first, second = Recorder("hook"), Recorder("hook")
    earlier = make_host(first)
    earlier.emit(evt)
    earlier.close()  # closing drains: the delivery is made and marked
    later = make_host(second).start()
    assert later.emit(evt).pending == ()
    settle(later)
    assert (len(first.calls), len(second.calls)) == (1, 0)


def test_a_handler_added_later_gets_an_event_the_others_already_took(make_host, event, settle):
    evt = event()
    old = Recorder("old")
    first = make_host(old)
    first.emit(evt)
    first.close()
    again, new = Recorder("old"), Recorder("new")
    later = make_host(again, new)
    assert later.emit(evt).pending == ("new",)
    settle(later)
    assert (len(old.calls), len(again.calls), len(new.calls)) == (1, 0, 1)


@pytest.mark.parametrize("emitters", [2, 8])
def test_concurrent_emits_of_one_event_deliver_it_once(make_host, event, emitters, assert_accounted, settle):
    slow = Recorder("slow", delay=0.2)
    host = make_host(slow)
    evt = event()
    barrier = threading.Barrier(emitters)
    reports: list[loopai.EmitReport] = []

    def emit() -> None:
        barrier.wait()
        reports.append(host.emit(evt))

    threads = [threading.Thread(target=emit) for _ in range(emitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sum(len(r.pending) for r in reports) == 1 and not any(r.failures for r in reports)
    settle(host)
    assert len(slow.calls) == 1
    assert_accounted(host.outbox, 1)


def test_events_emitted_from_many_threads_share_commits_and_all_are_stored(make_host, event, outbox_path, settle):
    hook = Recorder("hook")
    host = make_host(hook)
    events = [event() for _ in range(200)]
    barrier = threading.Barrier(8)

    def emit(mine: list[loopai.WebhookEvent]) -> None:
        barrier.wait()
        for evt in mine:
            assert host.emit(evt).pending == ("hook",)
            # emit returned: the event is on disk, for any other connection (another process) to read
            assert statuses_elsewhere(outbox_path, evt.event_id)["hook"] in ("pending", "delivered")

    threads = [threading.Thread(target=emit, args=(events[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    settle(host)
    assert sorted(event_id for event_id, _ in hook.calls) == sorted(str(e.event_id) for e in events)


# -- what a stopped process left pending ---------------------------------------------------


def test_start_delivers_what_was_left_pending_counting_earlier_attempts(make_host, outbox_path, event, settle):
    evt = event()
    outbox = Outbox(outbox_path)
    assert outbox.record(evt, ["hook"]) == ["hook"]
    outbox.retry(str(evt.event_id), "hook", 2, "ConnectionError: earlier process", at=time.time())
    outbox.close()
    hook = Recorder("hook")
    host = make_host(hook, max_retries=3)
    assert hook.calls == []  # not before start()
    settle(host.start())
    assert hook.calls == [(str(evt.event_id), 2)]
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts, record.last_error) == ("delivered", 3, None)


def test_a_retry_scheduled_by_an_earlier_process_waits_for_its_time(make_host, outbox_path, event, settle):
    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["hook"])
    outbox.retry(str(evt.event_id), "hook", 1, "answered 429; retry after 0.6 s", at=time.time() + 0.6)
    outbox.close()
    hook = Recorder("hook")
    started = time.monotonic()
    settle(make_host(hook).start())
    assert len(hook.calls) == 1 and time.monotonic() - started >= 0.55


def test_redeliver_turns_exhausted_pending_deliveries_into_dead_letters(make_host, outbox_path, event):
    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["hook"])
    outbox.retry(str(evt.event_id), "hook", 2, "ConnectionError: earlier process", at=time.time())
    outbox.close()
    hook = Recorder("hook", failures=-1)
    host = make_host(hook, max_retries=2)
    delivered, failures = host.redeliver()
    assert delivered == 0 and [f.plugin for f in failures] == ["hook"]
    assert hook.calls == [(str(evt.event_id), 2)]  # the one try left
    (record,) = host.outbox.deliveries()
    assert (record.status, record.attempts) == ("dead", 3)


def test_deliveries_to_a_handler_that_is_not_loaded_stay_pending_and_are_named(make_host, outbox_path, event, settle):
    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["gone", "here"])
    outbox.close()
    here = Recorder("here")
    host = settle(make_host(here).start())
    assert len(here.calls) == 1
    assert host.outbox.counts() == {"pending": 1, "delivered": 1, "dead": 0, "quarantined": 0}
    assert any("'gone'" in problem and "pending" in problem for problem in host.problems)
    host.close()
    back = Recorder("gone")
    settle(make_host(back).start())
    assert len(back.calls) == 1


def test_a_dry_run_is_recorded_and_redelivered_as_a_dry_run(make_host, outbox_path, event, settle):
    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["hook"], dry_run=True)
    outbox.close()

    class Dry(Recorder):
        def handle_event(self, event, context):
            self.calls.append((str(event.event_id), int(context.is_dry_run)))

    hook = Dry("hook")
    settle(make_host(hook).start())
    assert hook.calls == [(str(evt.event_id), 1)]


class DryAware(Recorder):
    def handle_event(self, event, context):
        self.calls.append((str(event.event_id), int(context.is_dry_run)))


@pytest.mark.parametrize("caller", ["sync", "async"])
def test_a_dry_run_does_not_use_up_the_event_id(make_host, event, caller, assert_accounted, settle):
    hook = DryAware("hook")
    host = make_host(hook)
    evt = event()
    if caller == "sync":
        reports = [host.emit(evt, dry_run=True), host.emit(evt), host.emit(evt)]
    else:

        async def emits() -> list[loopai.EmitReport]:
            return [await host.aemit(evt, dry_run=True), await host.aemit(evt), await host.aemit(evt)]

        reports = asyncio.run(emits())
    # The dry run is delivered inline (never recorded); the real emit is recorded once.
    assert [(r.delivered, r.pending) for r in reports] == [(("hook",), ()), ((), ("hook",)), ((), ())]
    settle(host)
    assert hook.calls == [(str(evt.event_id), 1), (str(evt.event_id), 0)]
    (record,) = host.outbox.deliveries()
    assert (record.status, record.dry_run) == ("delivered", False)
    assert_accounted(host.outbox, 1)


def test_a_dry_run_recorded_by_an_earlier_version_is_taken_over_by_a_real_emit(make_host, outbox_path, event, settle):
    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["hook"], dry_run=True)
    outbox.delivered(str(evt.event_id), "hook", 1)
    (dry,) = outbox.deliveries()
    assert (dry.status, dry.dry_run, dry.to_dict()["dry_run"]) == ("delivered", True, True)
    outbox.close()
    hook = DryAware("hook")
    host = make_host(hook)
    assert host.emit(evt).pending == ("hook",)
    settle(host)
    assert host.emit(evt).pending == ()
    assert hook.calls == [(str(evt.event_id), 0)]
    (real,) = host.outbox.deliveries()
    assert (real.status, real.dry_run, real.attempts) == ("delivered", False, 1)


def test_a_delivered_mark_from_one_process_wins_over_another_giving_up(outbox_path, event):
    evt, other = event(), event()
    # Two connections to one file, as two processes have: one delivers, the other gives up.
    taker, loser = Outbox(outbox_path), Outbox(outbox_path)
    try:
        taker.record(evt, ["hook"])
        taker.delivered(str(evt.event_id), "hook", 1)
        taker.flush()
        loser.retry(str(evt.event_id), "hook", 2, "ConnectionError: timed out", at=time.time())
        loser.dead(str(evt.event_id), "hook", 3, "gave up")
        assert loser.requeue([str(evt.event_id)]) == 0
        (record,) = loser.deliveries()
        assert (record.status, record.attempts, record.last_error) == ("delivered", 1, None)
        # The other order: given up first, received after all: delivered.
        loser.record(other, ["hook"])
        loser.dead(str(other.event_id), "hook", 4, "gave up")
        taker.delivered(str(other.event_id), "hook", 4)
        taker.flush()
        assert by_handler(loser, other.event_id)["hook"].status == "delivered"
        assert loser.counts() == {"pending": 0, "delivered": 2, "dead": 0, "quarantined": 0}
    finally:
        taker.close()
        loser.close()


# -- pruning --------------------------------------------------------------------------------


def test_prune_removes_old_finished_deliveries_and_the_events_left_without_any(outbox_path, event, monkeypatch):
    outbox = Outbox(outbox_path)
    try:
        done, dead, waiting, half, recent = (event() for _ in range(5))
        for evt in (done, dead, waiting):
            outbox.record(evt, ["hook"])
        outbox.record(half, ["hook", "other"])
        outbox.delivered(str(done.event_id), "hook", 1)
        outbox.dead(str(dead.event_id), "hook", 4, "gave up")
        outbox.delivered(str(half.event_id), "hook", 1)  # "other" still pending
        monkeypatch.setattr(time, "time", lambda: 1e10)  # these all happen much later
        outbox.record(recent, ["hook"])
        outbox.delivered(str(recent.event_id), "hook", 1)
        monkeypatch.undo()

        # Finished more than a day before that "later": the first four events' deliveries.
        assert outbox.prune(86_400, now=1e10) == (2, 1)  # done's and half's "hook"; done's event
        remaining = {(r.event_id, r.handler): r.status for r in outbox.deliveries()}
        assert remaining == {
            (str(dead.event_id), "hook"): "dead",  # dead letters stay for replay...
            (str(waiting.event_id), "hook"): "pending",  # ...pending ones always
            (str(half.event_id), "other"): "pending",  # and the event a pending delivery still needs
            (str(recent.event_id), "hook"): "delivered",  # too young
        }
        assert outbox.prune(86_400, dead=True, now=1e10) == (1, 1)
        assert {r.event_id for r in outbox.deliveries()} == {
            str(waiting.event_id),
            str(half.event_id),
            str(recent.event_id),
        }
        # the pending deliveries still have their events: they can be delivered
        assert {r.event_id for r in outbox.deliveries("pending")} == {str(waiting.event_id), str(half.event_id)}
        assert {c.event.event_id for c in outbox.claim("other", 10, lease=60)} == {half.event_id}
    finally:
        outbox.close()


def test_prune_works_in_batches_and_leaves_nothing_orphaned(outbox_path, event, monkeypatch):
    monkeypatch.setattr("loopai.delivery._sqlite._PRUNE_BATCH", 7)
    outbox = Outbox(outbox_path)
    try:
        events = [event() for _ in range(30)]
        for evt in events:
            outbox.record(evt, ["a", "b"])
            outbox.delivered(str(evt.event_id), "a", 1)
            outbox.delivered(str(evt.event_id), "b", 1)
        assert outbox.prune(0, now=time.time() + 1) == (60, 30)
        assert outbox.counts() == {"pending": 0, "delivered": 0, "dead": 0, "quarantined": 0}
    finally:
        outbox.close()
    db = sqlite3.connect(outbox_path)
    try:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    finally:
        db.close()


# -- where the outbox is --------------------------------------------------------------------


def test_without_an_outbox_nothing_is_written(make_host, outbox_path, event):
    hook = Recorder("hook")
    host = make_host(hook, outbox=False)
    assert host.outbox is None and host.emit(event()).ok
    assert not outbox_path.exists()


@pytest.fixture
def no_autoload(monkeypatch):
    """from_config discovers installed plugins (the console handler among them): not here."""
    monkeypatch.setenv("LOOPAI_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.mark.usefixtures("no_autoload")
def test_from_config_opens_the_outbox_named_by_loopai_outbox(tmp_path, outbox_path, event):
    with loopai.Host.from_config(plugins=[Recorder("hook")]) as host:
        assert host.outbox is not None and host.outbox.path == str(outbox_path)
        host.emit(event())
    assert counts_in(outbox_path)["delivered"] == 1


@pytest.mark.usefixtures("no_autoload")
def test_the_configured_outbox_is_relative_to_the_configuration_file(tmp_path, monkeypatch, event):
    monkeypatch.delenv("LOOPAI_OUTBOX")
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "loopai.toml"
    config.write_text('[delivery]\noutbox = "state/events.sqlite3"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with loopai.Host.from_config(config, plugins=[Recorder("hook")]) as host:
        host.emit(event())
    assert counts_in(tmp_path / "conf" / "state" / "events.sqlite3")["delivered"] == 1


@pytest.mark.usefixtures("no_autoload")
def test_loopai_outbox_wins_over_the_configuration(tmp_path, outbox_path, event):
    config = tmp_path / "loopai.toml"
    config.write_text('[delivery]\noutbox = "other.sqlite3"\n', encoding="utf-8")
    with loopai.Host.from_config(config, plugins=[Recorder("hook")]) as host:
        host.emit(event())
    assert outbox_path.exists() and not (tmp_path / "other.sqlite3").exists()


@pytest.mark.usefixtures("no_autoload")
def test_the_default_outbox_is_under_the_state_directory(tmp_path, monkeypatch, event):
    monkeypatch.delenv("LOOPAI_OUTBOX")
    with loopai.Host.from_config(plugins=[Recorder("hook")]) as host:
        host.emit(event())
    assert (tmp_path / "state" / "loopai" / "outboxes" / "default.sqlite3").exists()


def test_an_unusable_outbox_is_a_config_error(tmp_path):
    (tmp_path / "not-a-db").write_bytes(b"this is not SQLite, just some bytes " * 100)
    with pytest.raises(loopai.ConfigError, match=r"is not a SQLite database .* name another file with --outbox"):
        loopai.Host(outbox=tmp_path / "not-a-db", environ={})


def test_an_outbox_path_that_is_a_directory_says_so_and_what_to_do(tmp_path):
    (tmp_path / "outbox").mkdir()
    with pytest.raises(loopai.ConfigError) as refused:
        loopai.Host(outbox=tmp_path / "outbox", environ={})
    assert refused.value.problems == [
        f"outbox {tmp_path / 'outbox'}: cannot be opened: it is a directory, not a file; "
        "name another file with --outbox, LOOPAI_OUTBOX or [delivery] outbox"
    ]


# -- the file itself ------------------------------------------------------------------------

# The schema of the first outbox files: a rowid deliveries table and a full status index.
FIRST_SCHEMA = """
CREATE TABLE events (event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, body TEXT NOT NULL, emitted_at REAL NOT NULL);
CREATE TABLE deliveries (
    event_id TEXT NOT NULL REFERENCES events(event_id), handler TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, dry_run INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL, PRIMARY KEY (event_id, handler)
);
CREATE INDEX deliveries_by_status ON deliveries(status, updated_at);
"""


def test_an_outbox_file_of_the_first_format_keeps_working(make_host, outbox_path, event, assert_accounted, settle):
    left = event()
    db = sqlite3.connect(outbox_path)
    db.executescript(FIRST_SCHEMA)
    db.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        (str(left.event_id), "program.execution.failed", left.model_dump_json(), time.time()),
    )
    db.execute(
        "INSERT INTO deliveries (event_id, handler, status, updated_at) VALUES (?, 'hook', 'pending', ?)",
        (str(left.event_id), time.time()),
    )
    db.commit()
    db.close()
    hook = Recorder("hook", failures=1)
    host = settle(make_host(hook, max_retries=0).start())  # the left-over pending delivery: tried once, dead
    assert host.outbox.counts() == {"pending": 0, "delivered": 0, "dead": 1, "quarantined": 0}
    fresh = event()
    assert host.emit(fresh).ok and not host.emit(fresh).pending
    settle(host)
    assert host.outbox.requeue([str(left.event_id)]) == 1
    assert host.redeliver() == (1, [])
    assert [r.status for r in host.outbox.deliveries()] == ["delivered", "delivered"]
    assert_accounted(host.outbox, 2)
    host.close()
    db = sqlite3.connect(outbox_path)
    try:  # brought up to date in place, and marked as ours
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        db.close()


def test_the_wal_is_checkpointed_in_the_background_and_the_thread_ends_with_the_outbox(
    make_host, outbox_path, event, assert_accounted, settle
):
    before = set(threading.enumerate())
    host = make_host(Recorder("hook"))
    empty = outbox_path.stat().st_size
    for _ in range(300):  # 300 recording commits and more for the deliveries: background checkpoints
        host.emit(event())
    settle(host)
    deadline = time.monotonic() + 5
    while outbox_path.stat().st_size <= empty and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outbox_path.stat().st_size > empty  # pages copied from the WAL while the host runs
    (checkpointer,) = (t for t in threading.enumerate() if t.name == "loopai-outbox-checkpoint" and t not in before)
    assert_accounted(host.outbox, 300)
    host.close()
    assert not checkpointer.is_alive()


def test_an_outbox_that_cannot_be_opened_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    """SQLite only says "disk I/O error" when it cannot write the -wal and -shm files beside the outbox."""
    import sqlite3

    from loopai.delivery import _sqlite_file

    monkeypatch.setattr(_sqlite_file.os, "statvfs", lambda folder: _NoRoom())
    monkeypatch.setattr(_sqlite_file.sqlite3, "connect", _raises(sqlite3.OperationalError("disk I/O error")))

    with pytest.raises(loopai.ConfigError) as refused:
        loopai.Host(outbox=tmp_path / "events.sqlite3", environ={})

    assert refused.value.problems == [
        f"outbox {tmp_path / 'events.sqlite3'}: cannot be opened: the disk is full (disk I/O error); "
        "free some space and run again"
    ]


class _NoRoom:
    f_bavail = 0


def _raises(error):
    def connect(*args, **kwargs):
        raise error

    return connect
