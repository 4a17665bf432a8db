"""``loopai events list`` / ``replay`` / ``prune`` as subprocesses, against a receiver that goes down and comes back.

Each test runs the commands as processes: marked ``processes`` (tests/cli/test_events_list.py runs
``events list`` in-process on every Python)."""

from __future__ import annotations

import json

import pytest
import standardwebhooks

import loopai

pytestmark = pytest.mark.processes

CONFIG = """
autoload = false  # only the plugins named here: the http handler, not the console one

[dispatch]
max_retries = 1
retry_backoff = 0.01

[plugins.webhook_handlers.http-webhook-handler.configuration]
url = "{url}"
secret = "${{LOOPAI_WEBHOOK_SECRET}}"
timeout = 5

[delivery]
circuit_failures = 0  # these tests count dead letters; the circuit breaker has tests of its own
"""


@pytest.fixture
def configured(tmp_path, receiver, monkeypatch, whsec):
    """A loopai.toml in tmp_path (the CLI's working directory) pointing the http handler at the receiver."""
    monkeypatch.setenv("LOOPAI_WEBHOOK_SECRET", whsec)
    path = tmp_path / "loopai.toml"
    path.write_text(CONFIG.format(url=receiver.url), encoding="utf-8")
    return path


def emit_all(config, events) -> list[loopai.EmitReport]:
    """Emit ``events`` through a host of ``config``; closing it drains the deliveries."""
    with loopai.Host.from_config(config) as host:
        assert not host.problems, host.problems
        assert [c.name for c in host._current().handlers[loopai.WebhookEventType.PROGRAM_EXECUTION_FAILED]] == [
            "http-webhook-handler"
        ]
        reports = [host.emit(e) for e in events]
        assert all(r.pending == ("http-webhook-handler",) for r in reports)
    return reports


def listed(run_cli, *options: str) -> list[dict]:
    result = run_cli("events", "list", "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_and_replay_dead_letters_once_the_receiver_is_back(
    configured, receiver, event, run_cli, outbox_path, whsec, assert_accounted
):
    delivered = event()
    emit_all(configured, [delivered])
    receiver.stop()
    dead = [event() for _ in range(3)]
    emit_all(configured, dead)

    everything = listed(run_cli)
    assert [r["event_id"] for r in everything] == [str(e.event_id) for e in [delivered, *dead]]
    assert {r["handler"] for r in everything} == {"http-webhook-handler"}
    assert [r["status"] for r in everything] == ["delivered", "dead", "dead", "dead"]
    letters = listed(run_cli, "--dead")
    assert [r["event_id"] for r in letters] == [str(e.event_id) for e in dead]
    for letter in letters:
        assert letter["attempts"] == 2 and "ConnectError" in letter["last_error"]
        assert letter["event_type"] == "program.execution.failed"
    assert listed(run_cli, "--pending") == []

    text = run_cli("events", "list")
    assert text.returncode == 0
    assert text.stdout.count("dead") == 3 and str(dead[0].event_id) in text.stdout
    assert "1 delivered, 3 dead, 0 pending" in text.stderr and "quarantined" not in text.stderr
    assert whsec not in text.stdout + text.stderr

    receiver.start()  # the receiver is back, on the same port
    one = run_cli("events", "replay", str(dead[0].event_id))
    assert one.returncode == 0, one.stderr
    assert "replayed 1 dead delivery; 0 still dead" in one.stdout
    assert receiver.event_ids() == [str(delivered.event_id), str(dead[0].event_id)]
    assert [r["event_id"] for r in listed(run_cli, "--dead")] == [str(e.event_id) for e in dead[1:]]

    rest = run_cli("events", "replay", "--all-dead")
    assert rest.returncode == 0, rest.stderr
    assert "replayed 2 dead deliveries; 0 still dead" in rest.stdout
    assert sorted(receiver.event_ids()) == sorted(str(e.event_id) for e in [delivered, *dead])
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)
    assert [r["status"] for r in listed(run_cli)] == ["delivered"] * 4
    from loopai.delivery import SqliteOutbox as Outbox

    outbox = Outbox(outbox_path)
    try:
        assert_accounted(outbox, 4)
    finally:
        outbox.close()


def test_a_replay_that_fails_again_says_what_is_still_dead(configured, receiver, event, run_cli, whsec):
    receiver.stop()
    evt = event()
    emit_all(configured, [evt])
    again = run_cli("events", "replay", "--all-dead")
    assert again.returncode == 1
    assert "replayed 1 dead delivery; 1 still dead" in again.stdout
    assert str(evt.event_id) in again.stderr and "ConnectError" in again.stderr
    assert whsec not in again.stdout + again.stderr
    (letter,) = listed(run_cli, "--dead")
    assert letter["attempts"] == 2  # counted afresh by the replay


def test_replaying_ids_that_are_not_dead_names_each_and_fails(configured, event, run_cli, receiver):
    evt = event()
    emit_all(configured, [evt])
    unknown = "0b4c1c36-0000-4000-8000-000000000000"
    result = run_cli("events", "replay", str(evt.event_id), unknown)
    assert result.returncode == 1, result.stderr
    assert "replayed 0 dead deliveries" in result.stdout
    assert f"{evt.event_id}: not replayed: it has no dead delivery (http-webhook-handler delivered)" in result.stderr
    assert f"{unknown}: not replayed: no such event" in result.stderr
    assert len(receiver.requests) == 1


def test_replaying_a_dead_id_with_an_unknown_one_replays_it_and_names_the_other(configured, event, run_cli, receiver):
    receiver.stop()
    evt = event()
    emit_all(configured, [evt])
    receiver.start()
    unknown = "0b4c1c36-0000-4000-8000-000000000001"
    result = run_cli("events", "replay", unknown, str(evt.event_id))
    assert result.returncode == 0, result.stderr
    assert "replayed 1 dead delivery; 0 still dead" in result.stdout
    assert f"{unknown}: not replayed: no such event" in result.stderr
    assert receiver.event_ids() == [str(evt.event_id)]


def test_list_and_replay_find_the_outbox_when_an_unrelated_variable_is_unset(
    tmp_path, configured, event, run_cli, monkeypatch
):
    monkeypatch.delenv("LOOPAI_OUTBOX")
    configured.write_text(configured.read_text(encoding="utf-8") + 'outbox = "${STATE:-state}/o.db"\n')
    evt = event()
    emit_all(configured, [evt])
    monkeypatch.delenv("LOOPAI_WEBHOOK_SECRET")  # the handler's secret is not needed to look at the outbox
    assert (tmp_path / "state" / "o.db").exists()
    assert [r["event_id"] for r in listed(run_cli)] == [str(evt.event_id)]
    result = run_cli("events", "replay", str(evt.event_id))
    assert result.returncode == 1 and "not replayed: it has no dead delivery" in result.stderr


def test_replay_of_a_dead_letter_needs_the_variables_its_handlers_use(
    configured, receiver, event, run_cli, monkeypatch
):
    receiver.stop()
    evt = event()
    emit_all(configured, [evt])
    monkeypatch.delenv("LOOPAI_WEBHOOK_SECRET")
    result = run_cli("events", "replay", "--all-dead")
    assert result.returncode == 2
    assert "environment variable LOOPAI_WEBHOOK_SECRET is not set" in result.stderr


def test_list_marks_dry_runs(configured, outbox_path, event, run_cli):
    from loopai.delivery import SqliteOutbox as Outbox

    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["http-webhook-handler"], dry_run=True)
    outbox.close()
    (record,) = listed(run_cli)
    assert record["dry_run"] is True
    assert "(dry run)" in run_cli("events", "list").stdout


def test_replay_needs_ids_or_all_dead(configured, run_cli):
    result = run_cli("events", "replay")
    assert result.returncode == 2 and "--all-dead" in result.stderr


def test_list_before_anything_was_emitted(run_cli, outbox_path):
    result = run_cli("events", "list", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "no outbox" in result.stderr and not outbox_path.exists()


def test_list_reads_the_outbox_named_by_the_configuration_or_the_option(
    tmp_path, configured, receiver, event, run_cli, monkeypatch
):
    monkeypatch.delenv("LOOPAI_OUTBOX")
    configured.write_text(configured.read_text(encoding="utf-8") + 'outbox = "state/out.sqlite3"\n')
    evt = event()
    emit_all(configured, [evt])
    assert (tmp_path / "state" / "out.sqlite3").exists()
    assert [r["event_id"] for r in listed(run_cli)] == [str(evt.event_id)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("events", "list", "--json", "--config", str(configured), cwd=elsewhere)
    assert [r["event_id"] for r in json.loads(result.stdout)] == [str(evt.event_id)]
    other = run_cli("events", "list", "--json", "--outbox", str(tmp_path / "none.sqlite3"))
    assert json.loads(other.stdout) == []


def test_list_pending_shows_deliveries_not_finished(configured, outbox_path, event, run_cli):
    from loopai.delivery import SqliteOutbox as Outbox

    evt = event()
    outbox = Outbox(outbox_path)
    outbox.record(evt, ["http-webhook-handler"])
    outbox.close()
    (pending,) = listed(run_cli, "--pending")
    assert (pending["event_id"], pending["status"], pending["attempts"]) == (str(evt.event_id), "pending", 0)
    assert listed(run_cli, "--dead") == []


def test_replay_honours_plugin_selection_and_says_what_stays_pending(configured, receiver, event, run_cli):
    receiver.stop()
    evt = event()
    emit_all(configured, [evt])
    receiver.start()
    result = run_cli("events", "replay", "--all-dead", "--disable-plugins", "http-webhook-handler")
    assert result.returncode == 1
    assert "replayed 1 dead delivery; 0 still dead, 1 still pending" in result.stdout
    assert "'http-webhook-handler' stay pending" in result.stderr
    assert receiver.requests == []
    result = run_cli("events", "replay", "--all-dead")  # nothing dead now, but the pending one goes out
    assert result.returncode == 0 and "replayed 0 dead deliveries; 0 still dead" in result.stdout
    assert receiver.event_ids() == [str(evt.event_id)]


def test_prune_removes_what_was_delivered_and_keeps_what_was_not(configured, receiver, event, run_cli):
    delivered, failing = event(), event()
    emit_all(configured, [delivered])
    receiver.fail(2)  # max_retries = 1: two failures make a dead letter
    emit_all(configured, [failing])
    assert {r["event_id"]: r["status"] for r in listed(run_cli)} == {
        str(delivered.event_id): "delivered",
        str(failing.event_id): "dead",
    }
    kept = run_cli("events", "prune", "--older-than", "1d")
    assert kept.returncode == 0, kept.stderr
    assert "removed 0 delivered deliveries and 0 events" in kept.stdout
    pruned = run_cli("events", "prune", "--older-than", "0")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 delivered delivery and 1 event from" in pruned.stdout
    assert "left: 0 delivered, 1 dead, 0 pending" in pruned.stderr
    assert [r["event_id"] for r in listed(run_cli)] == [str(failing.event_id)]
    everything = run_cli("events", "prune", "--older-than", "0s", "--dead").stdout
    assert "removed 1 delivered, dead or quarantined delivery" in everything
    assert listed(run_cli) == []


@pytest.mark.parametrize("age", ["soon", "-1h", "3x", "nan"])
def test_prune_refuses_an_age_it_cannot_read(configured, run_cli, age):
    result = run_cli("events", "prune", f"--older-than={age}")
    assert result.returncode == 2
    assert f"argument --older-than: {age!r} is not an age" in result.stderr


@pytest.mark.parametrize("command", [["list"], ["replay", "--all-dead"], ["prune", "--older-than", "1d"]])
def test_a_file_that_is_not_an_outbox_is_named_and_left_alone(tmp_path, run_cli, command):
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a database\n", encoding="utf-8")
    result = run_cli("events", *command, "--outbox", str(garbage))
    assert result.returncode == 2
    assert f"outbox {garbage}: is not a SQLite database (file is not a database)" in result.stderr
    assert "name another file with --outbox, LOOPAI_OUTBOX or [delivery] outbox" in result.stderr  # what to do
    assert "Traceback" not in result.stderr
    assert garbage.read_text(encoding="utf-8") == "not a database\n"
