"""The outbox file for real: claims and leases between connections, unreadable rows quarantined, damaged pages
named, another program's SQLite file refused untouched, outboxes of earlier versions adopted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

import loopai
from loopai.delivery import APPLICATION_ID, SCHEMA_VERSION
from loopai.delivery import SqliteOutbox as Outbox


def write_rows(path, rows: list[tuple[str, str, str]], handler: str = "hook") -> None:
    """Insert ``(event_id, event_type, body)`` rows with a pending delivery each, as another program
    (or a newer loopai) would, through plain sqlite3."""
    db = sqlite3.connect(path)
    try:
        now = time.time()
        for event_id, event_type, body in rows:
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (event_id, event_type, body, now))
            db.execute(
                "INSERT INTO deliveries (event_id, handler, status, updated_at, next_attempt_at) "
                "VALUES (?, ?, 'pending', ?, 0)",
                (event_id, handler, now),
            )
        db.commit()
    finally:
        db.close()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- claims and leases ------------------------------------------------------------------------


def test_a_claimed_delivery_is_leased_to_one_outbox_until_released_or_expired(outbox_path, event):
    first, second = Outbox(outbox_path), Outbox(outbox_path)  # two connections, as two processes
    try:
        evt = event()
        first.record(evt, ["hook"])
        (claim,) = first.claim("hook", 10, lease=60)
        assert (claim.event, claim.handler, claim.attempts, claim.dry_run) == (evt, "hook", 0, False)
        assert second.claim("hook", 10, lease=60) == []  # leased to the first
        assert first.next_due(["hook"]) is None and second.next_due(["hook"]) is None
        first.release([(str(evt.event_id), "hook")])
        assert [c.event.event_id for c in second.claim("hook", 10, lease=0.2)] == [evt.event_id]
        assert first.claim("hook", 10, lease=60) == []
        time.sleep(0.25)  # the second's lease expired: anyone may take it over
        assert [c.event.event_id for c in first.claim("hook", 10, lease=60)] == [evt.event_id]
    finally:
        first.close()
        second.close()


def test_claims_take_the_oldest_due_first_and_skip_what_is_scheduled_later(outbox_path, event):
    outbox = Outbox(outbox_path)
    try:
        events = [event() for _ in range(5)]
        for evt in events:
            outbox.record(evt, ["hook"])
        later = events[1]
        outbox.retry(str(later.event_id), "hook", 1, "ConnectionError: no", at=time.time() + 60)
        claimed = outbox.claim("hook", 3, lease=60)
        assert [c.event.event_id for c in claimed] == [events[0].event_id, events[2].event_id, events[3].event_id]
        assert 55 < outbox.next_due(["hook"]) - time.time() < 61 or outbox.next_due(["hook"]) <= time.time()
        (record,) = outbox.deliveries(event_ids=[str(later.event_id)])
        assert (record.status, record.attempts, record.last_error) == ("pending", 1, "ConnectionError: no")
    finally:
        outbox.close()


def test_events_recorded_in_one_commit_are_claimed_in_the_order_they_were_emitted(outbox_path, event):
    outbox = Outbox(outbox_path)
    try:
        events = [event() for _ in range(50)]
        outbox.record_many([(evt, ["hook"]) for evt in events])
        claimed = [c.event.event_id for c in outbox.claim("hook", 50, lease=60)]
        assert claimed == [evt.event_id for evt in events]
    finally:
        outbox.close()


CLAIMER = """
import sys, time
from loopai.delivery import SqliteOutbox
outbox = SqliteOutbox(sys.argv[1])
print(len(outbox.claim("hook", 10, lease=3600)), flush=True)
time.sleep(60)
"""


def test_the_leases_of_a_killed_process_end_at_once(tmp_path, outbox_path, event):
    outbox = Outbox(outbox_path)
    try:
        outbox.record_many([(event(), ["hook"]) for _ in range(3)])
        process = subprocess.Popen([sys.executable, "-c", CLAIMER, str(outbox_path)], stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == "3"  # claimed for an hour
            assert outbox.claim("hook", 10, lease=60) == []  # alive: its leases hold
        finally:
            process.kill()
            process.wait(10)
            process.stdout.close()
        assert len(outbox.claim("hook", 10, lease=60, now=time.time() + 11)) == 3  # gone: taken over
    finally:
        outbox.close()


# -- rows this loopai cannot read: quarantined, never a crash -------------------------------------------


def test_unreadable_rows_are_quarantined_with_their_reason_and_the_rest_is_delivered(
    make_host, outbox_path, event, settle
):
    good = [event() for _ in range(3)]
    outbox = Outbox(outbox_path)
    outbox.record_many([(evt, ["hook"]) for evt in good])
    outbox.close()
    newer, corrupt = str(uuid.uuid4()), str(uuid.uuid4())
    future = json.loads(good[0].model_dump_json()) | {"event_id": newer, "event_type": "model.drift.detected"}
    write_rows(
        outbox_path, [(newer, "model.drift.detected", json.dumps(future)), (corrupt, "task.created", "{not json")]
    )

    calls: list[str] = []

    class Hook(loopai.WebhookHandlerPlugin):
        name = "hook"

        def handle_event(self, event, context):
            calls.append(str(event.event_id))

    host = settle(make_host(Hook()).start())
    assert sorted(calls) == sorted(str(e.event_id) for e in good)
    assert host.outbox.counts() == {"pending": 0, "delivered": 3, "dead": 0, "quarantined": 2}
    rows = {r.event_id: r for r in host.outbox.deliveries("quarantined")}
    assert rows[newer].event_type == "model.drift.detected"
    assert "cannot be read by this version of loopai, perhaps written by a newer one (event_type: Input should be" in (
        rows[newer].last_error
    )
    assert "the stored event is not valid JSON (the row was damaged) (body: Invalid JSON" in rows[corrupt].last_error
    assert [(row.pending, row.quarantined) for row in host.delivery_report()] == [(0, 2)]
    host.emit(event())  # the outbox keeps working
    settle(host)
    assert len(calls) == 4


# -- damaged pages: named, never a silent nothing ---------------------------------------------------------


def damage(path, *, pages: range = range(3, 8)) -> None:
    """Overwrite some of the file's inner pages with garbage (the header stays)."""
    size = 4096
    with open(path, "r+b") as file:
        for page in pages:
            file.seek((page - 1) * size)
            file.write(os.urandom(size))


def filled_outbox(path, event, count: int = 400) -> None:
    outbox = Outbox(path)
    try:
        events = [event(payload={"text": "x" * 200, "n": n}) for n in range(count)]
        outbox.record_many([(evt, ["hook"]) for evt in events])
        for evt in events[::2]:
            outbox.dead(str(evt.event_id), "hook", 4, "ConnectionError: down")
    finally:
        outbox.close()
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0  # all in the file


def test_a_damaged_outbox_is_named_with_what_to_do(outbox_path, event):
    filled_outbox(outbox_path, event)
    damage(outbox_path)
    outbox = Outbox(outbox_path)  # the header is intact: it opens
    try:
        with pytest.raises(loopai.OutboxError) as caught:
            outbox.deliveries()
        message = str(caught.value)
        assert message.startswith(f"outbox {outbox_path} is damaged (")
        assert "malformed" in message and f"sqlite3 {outbox_path} .recover" in message
        assert caught.value.path == str(outbox_path)
    finally:
        outbox.close()


def test_workers_stop_on_a_damaged_outbox_and_the_host_says_so(make_host, outbox_path, event):
    filled_outbox(outbox_path, event)
    damage(outbox_path)

    class Hook(loopai.WebhookHandlerPlugin):
        name = "hook"

        def handle_event(self, event, context):
            pass

    host = make_host(Hook()).start()  # starting says it, and does not crash
    assert any("is damaged" in problem for problem in host.problems)
    assert isinstance(host.delivery_failure, loopai.OutboxError)
    host.close()  # closing still works: nothing raises out of it
    with pytest.raises(loopai.OutboxError, match="is damaged"):  # an emit cannot keep its promise: it says so
        make_host(Hook()).emit_many([event() for _ in range(50)])


# -- whose file it is ---------------------------------------------------------------------------------------


def test_another_programs_sqlite_file_is_refused_untouched(tmp_path):
    foreign = tmp_path / "notes.db"
    db = sqlite3.connect(foreign)
    db.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes VALUES (1, 'hi');")
    db.commit()
    db.close()
    before = digest(foreign)
    with pytest.raises(loopai.ConfigError) as caught:
        Outbox(foreign)
    assert str(caught.value) == (
        f"outbox {foreign}: is another program's SQLite database (tables: notes), not a loopai outbox; loopai "
        "leaves it untouched: name another file with --outbox, LOOPAI_OUTBOX or [delivery] outbox"
    )
    assert digest(foreign) == before and sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


@pytest.mark.parametrize("how", ["events list", "run"])
def test_a_file_that_is_not_sqlite_is_named_with_what_to_do_and_left_alone(tmp_path, run_cli, how):
    (tmp_path / "t.db").write_text("hello\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("", encoding="utf-8")

    if how == "run":
        done = run_cli("run", "in.jsonl", env={"LOOPAI_OUTBOX": "t.db"})
    else:
        done = run_cli("events", "list", "--outbox", "t.db")

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(
        "outbox t.db: is not a SQLite database (file is not a database), so not a loopai outbox; loopai leaves it "
        "untouched: name another file with --outbox, LOOPAI_OUTBOX or [delivery] outbox"
    ), done.stderr
    assert (tmp_path / "t.db").read_text(encoding="utf-8") == "hello\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("t.db")) == ["t.db"]


def modes(folder) -> dict[str, int]:
    """The permission bits of everything under ``folder``, by path relative to it."""
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in sorted(folder.rglob("*"))}


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_new_outbox_file_and_its_wal_and_shm_are_readable_by_this_user_only(tmp_path, event):
    with umask(0o022):  # the usual one: files 0644, folders 0755
        outbox = Outbox(tmp_path / "box.sqlite3")
        try:
            outbox.record(event(), ["hook"])
            seen = modes(tmp_path)  # while open: the -wal and -shm files exist
        finally:
            outbox.close()

    assert seen == {"box.sqlite3": 0o600, "box.sqlite3-shm": 0o600, "box.sqlite3-wal": 0o600}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_an_existing_outbox_file_keeps_the_mode_it_was_given(tmp_path, event):
    chosen = tmp_path / "shared.sqlite3"
    chosen.touch()
    chosen.chmod(0o640)  # an operator's choice: a group of readers

    with umask(0o022):
        outbox = Outbox(chosen)
        try:
            outbox.record(event(), ["hook"])
            seen = modes(tmp_path)
        finally:
            outbox.close()

    assert seen == {"shared.sqlite3": 0o640, "shared.sqlite3-shm": 0o640, "shared.sqlite3-wal": 0o640}


def test_a_file_marked_by_another_application_is_refused_even_with_our_tables(tmp_path, outbox_path, event):
    Outbox(outbox_path).close()
    db = sqlite3.connect(outbox_path)
    db.execute("PRAGMA application_id = 1234")
    db.commit()
    db.close()
    before = digest(outbox_path)
    with pytest.raises(loopai.ConfigError, match=r"is not a loopai outbox \(its SQLite application id is 0x4d2"):
        Outbox(outbox_path)
    assert digest(outbox_path) == before


def test_an_outbox_of_a_newer_loopai_is_refused(outbox_path):
    Outbox(outbox_path).close()
    db = sqlite3.connect(outbox_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(loopai.ConfigError, match=r"was written by a newer loopai .* upgrade loopai-core"):
        Outbox(outbox_path)


# The format before this one: a WITHOUT ROWID deliveries table, recording through a view and trigger.
SECOND_SCHEMA = """
CREATE TABLE events (event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, body TEXT NOT NULL, emitted_at REAL NOT NULL);
CREATE TABLE deliveries (
    event_id TEXT NOT NULL REFERENCES events(event_id), handler TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, dry_run INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL, PRIMARY KEY (event_id, handler)
) WITHOUT ROWID;
CREATE INDEX deliveries_open ON deliveries(status) WHERE status != 'delivered';
CREATE VIEW recorded AS SELECT e.event_id, e.event_type, e.body, e.emitted_at, d.handler, d.dry_run
    FROM events e JOIN deliveries d USING (event_id);
CREATE TRIGGER record_delivery INSTEAD OF INSERT ON recorded BEGIN
    INSERT OR IGNORE INTO events VALUES (NEW.event_id, NEW.event_type, NEW.body, NEW.emitted_at);
    INSERT OR IGNORE INTO deliveries (event_id, handler, status, dry_run, updated_at)
        VALUES (NEW.event_id, NEW.handler, 'pending', NEW.dry_run, NEW.emitted_at);
END;
"""


def test_an_unmarked_outbox_of_an_earlier_version_is_adopted_marked_and_keeps_its_deliveries(outbox_path, event):
    left, dead = event(), event()
    db = sqlite3.connect(outbox_path)
    db.executescript(SECOND_SCHEMA)
    for evt in (left, dead):
        db.execute(
            "INSERT INTO recorded VALUES (?, ?, ?, ?, 'hook', 0)",
            (str(evt.event_id), evt.event_type.value, evt.model_dump_json(), time.time()),
        )
    db.execute(
        "UPDATE deliveries SET status = 'dead', attempts = 4, last_error = 'gave up' WHERE event_id = ?",
        (str(dead.event_id),),
    )
    db.commit()
    db.close()
    outbox = Outbox(outbox_path)
    try:
        assert [c.event.event_id for c in outbox.claim("hook", 10, lease=60)] == [left.event_id]
        assert outbox.requeue() == 1
    finally:
        outbox.close()
    db = sqlite3.connect(outbox_path)
    try:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "recorded" not in names and "open_deliveries" in names
    finally:
        db.close()


@pytest.mark.skipif(os.name != "posix", reason="needs RLIMIT_FSIZE")
def test_delivered_marks_that_cannot_be_written_wait_for_a_caller_not_a_thread_traceback(tmp_path) -> None:
    # Marks are written by a timer a moment after a delivery; when the disk refuses (here: a file
    # size limit of 1 byte, as a full disk), the failure is met by the next caller, in its thread.
    script = f"""
import resource, signal, sys, threading, time
import loopai
from loopai.delivery import SqliteOutbox
failures = []
threading.excepthook = lambda args: failures.append(args.exc_value)
outbox = SqliteOutbox({str(tmp_path / "outbox.sqlite3")!r})
outbox.record(loopai.WebhookEvent(event_type="program.execution.completed"), ["hook"])
(claim,) = outbox.claim("hook", 1, lease=60)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
outbox.delivered(str(claim.event.event_id), "hook", 1)
time.sleep(0.5)  # the timer's flush ran, and failed
print("thread failures:", failures)
try:
    outbox.flush()
except loopai.OutboxError as exc:
    print("caller:", exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "thread failures: []"
    assert lines[1].startswith("caller: outbox ") and "outbox.sqlite3" in lines[1], lines
