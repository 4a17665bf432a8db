"""``loopai events deliver`` once and as a sidecar (``--follow``), and every ``events`` command facing
unreadable rows, a damaged file and another program's file, as subprocesses on real files.

Marked ``processes`` (run on one Python by nox): every test but the two of ``--follow``, whose signal
handling runs on every Python. tests/delivery/test_outbox_file.py faces the same files in-process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

import loopai
from loopai.delivery import SqliteOutbox as Outbox


def record_only(outbox_path, events) -> None:
    """Emit ``events`` as a service that only records would (``[delivery] workers = false``)."""

    class Named(loopai.WebhookHandlerPlugin):  # a stand-in with the http handler's name: never called here
        name = "http-webhook-handler"

        def handle_event(self, event, context):
            raise AssertionError("a host with workers = false must not deliver")

    config = loopai.LoopaiConfig(delivery={"workers": False})
    with loopai.Host(config, plugins=[Named()], outbox=outbox_path, environ={}) as host:
        reports = host.emit_many(events)
    assert all(r.pending == ("http-webhook-handler",) for r in reports)
    (row,) = host.delivery_report()
    assert (row.delivered, row.in_flight) == (0, 0) and row.pending >= len(events)


@pytest.mark.processes
def test_deliver_once_delivers_what_is_pending_and_says_so(outbox_path, receiver, event, write_config, run_cli, whsec):
    import standardwebhooks

    events = [event() for _ in range(5)]
    record_only(outbox_path, events)
    write_config(receiver.url)
    result = run_cli("events", "deliver")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http-webhook-handler: 5 delivered, 0 retried, 0 dead, 0 pending\n"
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in events)
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)
    again = run_cli("events", "deliver")
    assert again.returncode == 0 and "0 delivered" in again.stdout and len(receiver.requests) == 5


@pytest.mark.processes
def test_deliver_refuses_when_a_handler_the_file_names_cannot_load(outbox_path, receiver, event, write_config, run_cli):
    record_only(outbox_path, [event()])
    config = write_config(receiver.url)
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[plugins.webhook_handlers.pager]\nfactory = "no_such_module:Pager"\n',
        encoding="utf-8",
    )
    factory_line = len(config.read_text(encoding="utf-8").splitlines())
    result = run_cli("events", "deliver")
    assert result.returncode == 2
    assert result.stderr.count("webhook_handlers.pager.factory: cannot import 'no_such_module:Pager'") == 1
    assert f"loopai.toml:{factory_line}: webhook_handlers.pager.factory" in result.stderr
    assert "loopai events deliver: nothing was delivered" in result.stderr
    assert receiver.requests == []  # the pending delivery waits for a configuration that loads


@pytest.mark.processes
@pytest.mark.parametrize(
    ("flags", "why"),
    [
        ((), "idle: validate_configuration() refused its settings: http-webhook-handler: the url setting is required"),
        (("--disable-plugins", "http-*"), "it is installed but not selected (denied by --disable-plugins (http-*)"),
    ],
)
def test_deliver_says_why_a_handler_with_pending_deliveries_delivers_nothing(
    outbox_path, event, run_cli, tmp_path, flags, why
):
    record_only(outbox_path, [event(), event()])
    result = run_cli("events", "deliver", *flags, cwd=tmp_path)  # no configuration: the handler has no url
    assert result.returncode == 1
    assert result.stdout == "http-webhook-handler: 0 delivered, 0 retried, 0 dead, 2 pending\n"
    assert f"http-webhook-handler: its deliveries stay pending: {why}" in result.stderr


@pytest.mark.processes
def test_deliver_with_nothing_pending_says_so_without_a_line_per_idle_handler(outbox_path, event, run_cli, tmp_path):
    record_only(outbox_path, [])  # an outbox with nothing in it; the handlers on defaults are idle
    result = run_cli("events", "deliver", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(": nothing was pending\n") and "console-webhook-handler" not in result.stdout


@pytest.mark.processes
def test_deliver_once_stops_at_max_seconds_and_says_what_is_left(outbox_path, receiver, event, write_config, run_cli):
    receiver.fail(1, status=429, retry_after="60")
    record_only(outbox_path, [event()])
    write_config(receiver.url)
    started = time.monotonic()
    result = run_cli("events", "deliver", "--max-seconds", "1")
    assert result.returncode == 1
    assert time.monotonic() - started < 15
    assert result.stdout == "http-webhook-handler: 0 delivered, 1 retried, 0 dead, 1 pending\n"


def test_deliver_follow_is_a_sidecar_for_a_service_that_only_records(
    tmp_path, outbox_path, receiver, event, write_config
):
    write_config(receiver.url, poll_interval=0.1)
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "loopai", "events", "deliver", "--follow", "--max-seconds", "60"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "(Ctrl-C or SIGTERM to stop)" in sidecar.stderr.readline()
        first, second = [event() for _ in range(3)], [event() for _ in range(4)]
        record_only(outbox_path, first)
        assert receiver.wait_for(3, timeout=10)
        record_only(outbox_path, second)
        assert receiver.wait_for(7, timeout=10)
        sidecar.send_signal(signal.SIGTERM)
        out, err = sidecar.communicate(timeout=30)
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.communicate()
    assert sidecar.returncode == 0, err
    assert out == "http-webhook-handler: 7 delivered, 0 retried, 0 dead, 0 pending\n"
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in first + second)


def test_deliver_follow_reloads_its_configuration_on_sighup(
    tmp_path, outbox_path, receiver, down_url, event, write_config
):
    write_config(down_url, poll_interval=0.1)
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "loopai", "events", "deliver", "--follow", "--max-seconds", "60"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "SIGHUP reloads the configuration" in sidecar.stderr.readline()
        write_config(receiver.url, poll_interval=0.1)  # the handler now points at a receiver that answers
        sidecar.send_signal(signal.SIGHUP)
        said = sidecar.stderr.readline()
        assert "reloaded (plugin set 2)" in said and "http-webhook-handler" in said, said
        events = [event() for _ in range(3)]
        record_only(outbox_path, events)
        assert receiver.wait_for(3, timeout=10)
        sidecar.send_signal(signal.SIGTERM)
        _, err = sidecar.communicate(timeout=30)
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.communicate()
    assert sidecar.returncode == 0, err
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in events)


# -- what the commands say about rows they cannot read, a damaged file, another program's file ---------------


def add_unreadable_rows(path, status: str = "pending") -> tuple[str, str]:
    newer, corrupt = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"event_id": newer, "event_type": "model.drift.detected", "payload": {}}
    db = sqlite3.connect(path)
    try:
        for event_id, event_type, text in (
            (newer, "model.drift.detected", json.dumps(body)),
            (corrupt, "task.created", "{"),
        ):
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (event_id, event_type, text, time.time()))
            db.execute(
                "INSERT INTO deliveries (event_id, handler, status, updated_at) "
                "VALUES (?, 'http-webhook-handler', ?, ?)",
                (event_id, status, time.time()),
            )
        db.commit()
    finally:
        db.close()
    return newer, corrupt


@pytest.mark.processes
def test_unreadable_rows_never_stop_deliver_list_or_replay(outbox_path, receiver, event, write_config, run_cli):
    good = [event() for _ in range(3)]
    record_only(outbox_path, good)
    newer, corrupt = add_unreadable_rows(outbox_path)
    write_config(receiver.url)

    delivered = run_cli("events", "deliver")
    assert delivered.returncode == 0, delivered.stderr
    assert "Traceback" not in delivered.stderr
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in good)
    assert (
        "http-webhook-handler: 2 deliveries set aside, their stored event unreadable: "
        "see loopai events list --quarantined"
    ) in delivered.stderr

    listed = run_cli("events", "list", "--quarantined")
    assert listed.returncode == 0
    header, *lines = listed.stdout.splitlines()
    assert header.startswith("EMITTED (UTC)")
    assert len(lines) == 2 and all("quarantined" in line for line in lines)
    by_id = {line.split()[2]: line for line in lines}
    assert "model.drift.detected" in by_id[newer] and "quarantined: the stored event cannot be read" in by_id[newer]
    assert "Invalid JSON" in by_id[corrupt]
    assert "3 delivered, 0 dead, 0 pending, 2 quarantined" in listed.stderr

    replayed = run_cli("events", "replay", "--all-dead")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 0 dead deliveries; 0 still dead" in replayed.stdout
    assert "note: 2 quarantined deliveries were not replayed" in replayed.stderr
    one = run_cli("events", "replay", newer)
    assert one.returncode == 1 and f"{newer}: not replayed: it has no dead delivery" in one.stderr
    assert "quarantined: the stored event cannot be read" in one.stderr
    assert len(receiver.requests) == 3


@pytest.mark.processes
def test_dead_letters_whose_stored_events_cannot_be_read_are_said_set_aside_by_a_replay(
    outbox_path, receiver, event, write_config, run_cli
):
    good = [event()]
    record_only(outbox_path, good)
    add_unreadable_rows(outbox_path, status="dead")
    write_config(receiver.url)

    replayed = run_cli("events", "replay", "--all-dead")

    assert replayed.returncode == 1, replayed.stderr  # asked to deliver them, and they were not
    assert (
        "replayed 2 dead deliveries; 0 still dead, 2 set aside (quarantined: their stored events cannot be read)"
    ) in replayed.stdout
    assert receiver.event_ids() == [str(good[0].event_id)]  # the pending one, delivered meanwhile


@pytest.mark.processes
def test_quarantined_deliveries_are_replayed_after_an_upgrade_and_set_aside_again_when_still_unreadable(
    outbox_path, receiver, event, write_config, run_cli
):
    # A rolling upgrade: an old replica set aside an event of a type only newer ones know.
    record_only(outbox_path, [event()])
    newer, corrupt = add_unreadable_rows(outbox_path)
    write_config(receiver.url)
    assert run_cli("events", "deliver").returncode == 0
    db = sqlite3.connect(outbox_path)
    try:  # now this loopai reads it: as after the upgrade, for the event the newer replica wrote
        db.execute("UPDATE events SET event_type = 'task.created', body = replace(body, 'model.drift.detected', "
                   "'task.created') WHERE event_id = ?", (newer,))  # fmt: skip
        db.commit()
    finally:
        db.close()

    only_dead = run_cli("events", "replay", "--all-dead")
    assert "after an upgrade, --quarantined replays them" in only_dead.stderr
    replayed = run_cli("events", "replay", "--quarantined")

    assert replayed.returncode == 1, replayed.stderr  # the corrupt one cannot be read, now either
    assert "replayed 2 quarantined deliveries; 0 still dead, 1 quarantined again" in replayed.stdout
    assert "1 delivery is quarantined again: this loopai cannot read their stored events either" in replayed.stderr
    assert newer in receiver.event_ids() and corrupt not in receiver.event_ids()
    listed = run_cli("events", "list", "--quarantined")
    assert [line.split()[2] for line in listed.stdout.splitlines()[1:]] == [corrupt]


@pytest.mark.processes
def test_a_loopai_run_goes_on_over_an_outbox_with_unreadable_rows(
    tmp_path, outbox_path, receiver, event, write_config, run_cli
):
    record_only(outbox_path, [event()])
    add_unreadable_rows(outbox_path)
    write_config(receiver.url)
    records = tmp_path / "in.jsonl"
    records.write_text(
        json.dumps({"id": str(uuid.uuid4()), "program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())}) + "\n"
    )
    result = run_cli("run", str(records))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert len(receiver.requests) == 2  # the left-over event and the record's one (no validator ran)
    assert "QUARANTINED" in result.stderr


def damaged(path, event) -> None:
    outbox = Outbox(path)
    try:
        events = [event(payload={"text": "x" * 200}) for _ in range(300)]
        outbox.record_many([(evt, ["http-webhook-handler"]) for evt in events])
        for evt in events[::3]:
            outbox.dead(str(evt.event_id), "http-webhook-handler", 4, "ConnectionError: down")
    finally:
        outbox.close()
    with open(path, "r+b") as file:  # pages 3 to 7: the tables' and indexes' first pages
        file.seek(2 * 4096)
        file.write(os.urandom(5 * 4096))


@pytest.mark.processes
@pytest.mark.parametrize(
    "command",
    [["list"], ["list", "--json"], ["replay", "--all-dead"], ["deliver"], ["prune", "--older-than", "0"]],
)
def test_a_damaged_outbox_is_named_and_every_command_fails(
    outbox_path, receiver, event, write_config, run_cli, command
):
    damaged(outbox_path, event)
    write_config(receiver.url)
    result = run_cli("events", *command)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"outbox {outbox_path} is damaged (" in result.stderr and ".recover" in result.stderr
    assert "Traceback" not in result.stderr and "replayed 0" not in result.stdout
    assert receiver.requests == []


@pytest.mark.processes
def test_a_loopai_run_on_a_damaged_outbox_stops_and_names_it(tmp_path, outbox_path, event, run_cli):
    damaged(outbox_path, event)
    records = tmp_path / "in.jsonl"
    record = {"id": str(uuid.uuid4()), "program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())}
    records.write_text(json.dumps({**record, "status": "error"}) + "\n")
    result = run_cli("run", str(records))  # the console handler takes failed runs: their event must be stored
    assert result.returncode == 2, result.stderr
    assert f"outbox {outbox_path} is damaged (" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # the line whose event could not be stored is not written


def foreign_file(path) -> str:
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);"
    )
    db.commit()
    db.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.processes
@pytest.mark.parametrize("command", [["list"], ["replay", "--all-dead"], ["deliver"], ["prune", "--older-than", "0"]])
def test_another_programs_database_is_refused_untouched_by_every_command(tmp_path, run_cli, command):
    foreign = tmp_path / "app.db"
    before = foreign_file(foreign)
    result = run_cli("events", *command, "--outbox", str(foreign))
    assert result.returncode == 2
    assert f"outbox {foreign}: is another program's SQLite database (tables: invoices)" in result.stderr
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("app.db")) == ["app.db"]


@pytest.mark.processes
def test_a_loopai_run_refuses_another_programs_database_as_its_outbox(tmp_path, run_cli):
    foreign = tmp_path / "app.db"
    before = foreign_file(foreign)
    records = tmp_path / "in.jsonl"
    records.write_text(json.dumps({"id": str(uuid.uuid4()), "program_id": str(uuid.uuid4())}) + "\n")
    result = run_cli("run", str(records), env={"LOOPAI_OUTBOX": str(foreign)})
    assert result.returncode == 2
    assert "is another program's SQLite database (tables: invoices)" in result.stderr
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == before
