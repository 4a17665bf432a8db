"""The PostgreSQL outbox against a real server: leases, quarantine, settling, listing, pruning, waking."""

from __future__ import annotations

import threading
import time

import pytest

import loopai
from loopai.delivery import PostgresOutbox

pytestmark = pytest.mark.postgres
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")


class Recorder(loopai.WebhookHandlerPlugin):
    """Takes every event; remembers the ids it got (from any thread), and when."""

    def __init__(self, name: str = "recorder", fail: bool = False):
        super().__init__(name=name)
        self.fail = fail
        self.got: list[str] = []
        self.when: list[float] = []

    def handle_event(self, event, context):
        self.got.append(str(event.event_id))
        self.when.append(time.monotonic())
        if self.fail:
            raise ConnectionError("the receiver is down")


@pytest.fixture
def outboxes(outbox_url):
    """``outboxes(n)``: n outboxes on one database, each as another process's would be (its own owner)."""
    made: list[PostgresOutbox] = []

    def make(count: int = 1) -> list[PostgresOutbox]:
        fresh = [PostgresOutbox(outbox_url) for _ in range(count)]
        made.extend(fresh)
        return fresh

    yield make
    for outbox in made:
        outbox.close()


def statuses(outbox: PostgresOutbox) -> dict[tuple[str, str], str]:
    return {(r.event_id, r.handler): r.status for r in outbox.deliveries()}


# -- claims and leases --------------------------------------------------------------------


def test_a_claim_is_one_workers_until_its_lease_runs_out_then_anothers(outboxes, event):
    first, second = outboxes(2)
    evt = event()
    assert first.record(evt, ["hook"]) == ["hook"]

    (taken,) = first.claim("hook", 10, lease=60)
    assert second.claim("hook", 10, lease=60) == []  # leased to the first
    assert first.next_due(["hook"]) is None  # nothing free to claim

    # A minute later, had the first process died (no renewal), its lease is anyone's: the same event.
    (over,) = second.claim("hook", 10, lease=60, now=time.time() + 61)
    assert over.event.event_id == taken.event.event_id == evt.event_id
    # The first one's late failure does not undo the second's claim; the second delivers it.
    first.retry(str(evt.event_id), "hook", 1, "ConnectionError: timed out", at=time.time())
    first.flush()
    assert first.claim("hook", 10, lease=60, now=time.time() + 1) == []  # still the second's
    second.delivered(str(evt.event_id), "hook", 1)
    second.flush()
    (record,) = first.deliveries()
    assert (record.status, record.attempts, record.last_error) == ("delivered", 1, None)


def test_a_worker_that_lives_keeps_its_lease_past_its_length_and_hands_it_back_when_closed(outboxes, event):
    first, second = outboxes(2)
    evt = event()
    first.record(evt, ["hook"])

    assert len(first.claim("hook", 10, lease=0.6)) == 1
    time.sleep(1.5)  # more than twice the lease: renewed every 0.2 s meanwhile
    assert second.claim("hook", 10, lease=60) == []
    first.close()  # what it held goes back, at once
    assert [c.event.event_id for c in second.claim("hook", 10, lease=60)] == [evt.event_id]


def test_workers_claiming_at_once_never_take_one_delivery_twice(outboxes, event):
    workers = outboxes(6)
    events = [event() for _ in range(300)]
    workers[0].record_many([(evt, ["hook"]) for evt in events])
    taken: list[list[str]] = [[] for _ in workers]
    start = threading.Barrier(len(workers))

    def work(n: int) -> None:
        start.wait()
        while claims := workers[n].claim("hook", 7, lease=60):
            taken[n].extend(str(c.event.event_id) for c in claims)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [event_id for mine in taken for event_id in mine]
    assert sorted(everything) == sorted(str(evt.event_id) for evt in events)  # each once, none lost
    assert sum(1 for mine in taken if mine) >= 2  # they did claim side by side


def test_claims_go_oldest_first_in_the_order_events_were_recorded(outboxes, event):
    (outbox,) = outboxes()
    events = [event() for _ in range(20)]
    outbox.record_many([(evt, ["hook"]) for evt in events])

    claimed = [c.event.event_id for c in outbox.claim("hook", 8, lease=60)]
    claimed += [c.event.event_id for c in outbox.claim("hook", 20, lease=60)]

    assert claimed == [evt.event_id for evt in events]


# -- what is stored ------------------------------------------------------------------------


def test_an_unreadable_event_is_quarantined_with_the_reason_and_the_rest_goes_on(outboxes, event, outbox_url):
    (outbox,) = outboxes()
    good, bad = event(), event()
    outbox.record_many([(good, ["hook"]), (bad, ["hook"])])
    with psycopg.connect(outbox_url) as conn:  # as a newer loopai would have written it
        conn.execute(
            "UPDATE loopai_outbox_events SET body = %s WHERE event_id = %s",
            ['{"event_type": "model.drift.detected", "payload": {}}', bad.event_id],
        )

    claimed = outbox.claim("hook", 10, lease=60)

    assert [c.event.event_id for c in claimed] == [good.event_id]
    (set_aside,) = outbox.deliveries("quarantined")
    assert set_aside.event_id == str(bad.event_id)
    assert "cannot be read by this version of loopai" in set_aside.last_error
    assert "event_type" in set_aside.last_error
    assert outbox.claim("hook", 10, lease=60, now=time.time() + 120) == [claimed[0]]  # never the bad one
    assert outbox.counts()["quarantined"] == 1
    # Replayed (loopai events replay --quarantined): pending again, and set aside again while unreadable.
    assert outbox.requeue() == 0 and outbox.requeue(status="quarantined") == 1
    assert [d.status for d in outbox.deliveries(event_ids=[str(bad.event_id)])] == ["pending"]
    assert outbox.claim("hook", 10, lease=60, now=time.time() + 240) == [claimed[0]]
    assert outbox.counts()["quarantined"] == 1
    assert outbox.prune(0, dead=True, now=time.time() + 1) == (1, 1)


def test_the_same_event_twice_is_recorded_once_per_handler_and_a_dry_run_uses_up_no_id(outboxes, event):
    (outbox,) = outboxes()
    evt, rehearsed = event(), event()

    assert outbox.record_many([(evt, ["a", "b"]), (evt, ["a", "c"])]) == [["a", "b"], ["c"]]
    assert outbox.record(evt, ["a", "b", "c"]) == []
    assert outbox.record(rehearsed, ["a"], dry_run=True) == ["a"]
    assert outbox.record(rehearsed, ["a"]) == ["a"]  # real now
    assert outbox.record(rehearsed, ["a"], dry_run=True) == []

    assert outbox.counts() == {"pending": 4, "delivered": 0, "dead": 0, "quarantined": 0}
    assert [r.dry_run for r in outbox.deliveries(event_ids=[str(rehearsed.event_id), "not-a-uuid"])] == [False]


def test_a_delivered_mark_from_one_process_wins_over_another_giving_up(outboxes, event):
    taker, loser = outboxes(2)
    evt, other = event(), event()
    taker.record(evt, ["hook"])
    taker.delivered(str(evt.event_id), "hook", 1)
    taker.flush()
    loser.retry(str(evt.event_id), "hook", 2, "ConnectionError: timed out", at=time.time())
    loser.dead(str(evt.event_id), "hook", 3, "gave up")
    loser.flush()
    assert loser.requeue([str(evt.event_id)]) == 0
    (record,) = loser.deliveries()
    assert (record.status, record.attempts, record.last_error) == ("delivered", 1, None)
    # The other order: given up first, received after all: delivered.
    loser.record(other, ["hook"])
    loser.dead(str(other.event_id), "hook", 4, "gave up")
    loser.flush()
    taker.delivered(str(other.event_id), "hook", 4)
    taker.flush()
    assert loser.counts() == {"pending": 0, "delivered": 2, "dead": 0, "quarantined": 0}


def test_prune_removes_old_finished_deliveries_in_batches_and_no_event_a_delivery_needs(
    outboxes, event, monkeypatch, outbox_url
):
    monkeypatch.setattr("loopai.delivery._postgres_admin.PRUNE_BATCH", 7)
    (outbox,) = outboxes()
    old = [event() for _ in range(20)]
    dead, waiting, half, recent = event(), event(), event(), event()
    outbox.record_many([(evt, ["a", "b"]) for evt in old] + [(dead, ["a"]), (waiting, ["a"]), (half, ["a", "b"])])
    for evt in [*old, half]:
        outbox.delivered(str(evt.event_id), "a", 1)
        if evt is not half:
            outbox.delivered(str(evt.event_id), "b", 1)
    outbox.dead(str(dead.event_id), "a", 4, "gave up")
    outbox.flush()
    time.sleep(1.2)
    outbox.record(recent, ["a"])
    outbox.delivered(str(recent.event_id), "a", 1)

    assert outbox.prune(1.0) == (41, 20)  # the old ones and half's "a"; the 20 old events
    assert statuses(outbox) == {
        (str(dead.event_id), "a"): "dead",  # dead letters stay for replay...
        (str(waiting.event_id), "a"): "pending",  # ...pending ones always
        (str(half.event_id), "b"): "pending",  # and the event a pending delivery still needs
        (str(recent.event_id), "a"): "delivered",  # too young
    }
    assert outbox.prune(1.0, dead=True) == (1, 1)
    assert [c.event.event_id for c in outbox.claim("b", 10, lease=60)] == [half.event_id]
    with psycopg.connect(outbox_url) as conn:
        assert conn.execute("SELECT count(*) FROM loopai_outbox_events").fetchone() == (3,)


def test_requeue_and_due_now_make_deliveries_due_and_wake_listeners(outboxes, event):
    recorder, watcher = outboxes(2)
    woken = threading.Event()
    stop = watcher.listen(woken.set)
    try:
        time.sleep(0.3)  # listening (the first wake says so)
        woken.clear()
        evt = event()
        recorder.record(evt, ["hook"])
        assert woken.wait(5), "recording did not wake the listener"
        recorder.claim("hook", 1, lease=60)
        recorder.dead(str(evt.event_id), "hook", 4, "gave up")
        woken.clear()
        assert recorder.requeue() == 1
        assert woken.wait(5), "requeueing did not wake the listener"
    finally:
        stop()
    (record,) = watcher.deliveries()
    assert (record.status, record.attempts) == ("pending", 0)


# -- hosts ---------------------------------------------------------------------------------


def test_a_host_delivers_through_it_and_emitted_is_delivered_plus_dead_plus_pending(
    make_host, event, outbox_url, assert_accounted, settle
):
    ok, down = Recorder("ok"), Recorder("down", fail=True)
    host = make_host(ok, down, outbox=outbox_url, max_retries=1, delivery={"circuit_failures": 0}).start()
    events = [event() for _ in range(25)]

    reports = host.emit_many(events)
    settle(host)

    assert all(sorted(report.pending) == ["down", "ok"] for report in reports)
    assert sorted(ok.got) == sorted(str(evt.event_id) for evt in events)
    assert len(down.got) == 50  # the first attempt and one retry each
    counts = assert_accounted(host.outbox, 50)
    assert (counts["delivered"], counts["dead"]) == (25, 25)
    (dead,) = {r.last_error for r in host.outbox.deliveries("dead")}
    assert "ConnectionError: the receiver is down" in dead


def test_another_process_recording_wakes_the_workers_at_once_not_at_their_next_poll(make_host, event, outbox_url):
    taker = Recorder()
    worker = make_host(taker, outbox=outbox_url, delivery={"poll_interval": 30}).start()
    recorder = make_host(Recorder(), outbox=outbox_url, delivery={"workers": False})
    worker.drain(5)  # its first look is done: from now on it waits 30 s unless woken
    time.sleep(0.3)
    evt = event()

    started = time.monotonic()
    recorder.emit(evt)
    deadline = started + 10
    while not taker.got and time.monotonic() < deadline:
        time.sleep(0.01)

    assert taker.got == [str(evt.event_id)]
    assert taker.when[0] - started < 5  # woken by NOTIFY, far sooner than the 30 s poll


def test_a_database_that_cannot_be_reached_is_an_error_at_start_naming_it_without_its_password(make_host):
    secret = "s3cr3t-pw"
    url = f"postgresql://loopai:{secret}@127.0.0.1:9/loopai"  # port 9: nothing listens
    host = make_host(Recorder(), outbox=url)
    with pytest.raises(loopai.ConfigError) as raised:
        host.start()
    message = str(raised.value)
    assert "outbox database postgresql://loopai:***@127.0.0.1:9/loopai cannot be reached" in message
    assert "[delivery] outbox, LOOPAI_OUTBOX or --outbox" in message
    assert secret not in message and secret not in repr(host.outbox)
