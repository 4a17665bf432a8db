"""``loopai events list / deliver / replay / prune`` and ``loopai db status`` against a PostgreSQL outbox, as
subprocesses: the same as against a file, and never a password printed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

import loopai
from loopai.delivery import PostgresOutbox

pytestmark = pytest.mark.postgres

HANDLER = "http-webhook-handler"


@pytest.fixture
def state_env(outbox_url, monkeypatch, tmp_path):
    """The commands' environment: ``LOOPAI_STATE_URL`` names the database, no outbox is named (so it
    lives in the state's database), and the file ``LOOPAI_OUTBOX`` would have named is not used."""
    monkeypatch.delenv("LOOPAI_OUTBOX")
    monkeypatch.setenv("LOOPAI_STATE_URL", outbox_url)
    return outbox_url


def record(url: str, count: int) -> list[str]:
    outbox = PostgresOutbox(url)
    try:
        events = [loopai.WebhookEvent(event_type="program.execution.failed", payload={"n": n}) for n in range(count)]
        outbox.record_many([(event, [HANDLER]) for event in events])
        return [str(event.event_id) for event in events]
    finally:
        outbox.close()


def listed(run_cli, *options: str) -> list[dict]:
    done = run_cli("events", "list", "--json", *options)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_deliver_list_replay_and_prune_work_on_the_state_database(
    state_env, run_cli, write_config, receiver, down_url, postgres_server, tmp_path
):
    ids = record(state_env, 4)
    outputs = []

    write_config(down_url, max_retries=0, circuit_failures=0)
    failed = run_cli("events", "deliver")
    outputs.append(failed)
    assert failed.returncode == 1 and f"{HANDLER}: 0 delivered, 0 retried, 4 dead, 0 pending" in failed.stdout
    dead = listed(run_cli, "--dead")
    assert [r["event_id"] for r in dead] == ids  # oldest first, in the order they were recorded
    assert all(r["attempts"] == 1 and "ConnectError" in r["last_error"] for r in dead)
    text = run_cli("events", "list")
    outputs.append(text)
    assert "0 delivered, 4 dead, 0 pending" in text.stderr
    assert "postgresql://loopai:***@127.0.0.1:" in text.stderr

    write_config(receiver.url)
    replayed = run_cli("events", "replay", ids[0], "not-an-event-id")
    outputs.append(replayed)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead delivery; 0 still dead" in replayed.stdout
    assert "not-an-event-id: not replayed: no such event in postgresql://loopai:***@" in replayed.stderr
    everything = run_cli("events", "replay", "--all-dead")
    outputs.append(everything)
    assert everything.returncode == 0 and "replayed 3 dead deliveries; 0 still dead" in everything.stdout
    assert sorted(receiver.event_ids()) == sorted(ids)

    pruned = run_cli("events", "prune", "--older-than", "0")
    outputs.append(pruned)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 4 delivered deliveries and 4 events from postgresql://loopai:***@" in pruned.stdout
    assert listed(run_cli) == []
    for done in outputs:
        assert postgres_server.password not in done.stdout + done.stderr


def test_outbox_names_a_database_over_loopai_outbox_and_db_status_counts_what_it_holds(
    outbox_url, run_cli, write_config, receiver, postgres_server, tmp_path
):
    ids = record(outbox_url, 3)  # LOOPAI_OUTBOX names a file: --outbox wins
    write_config(receiver.url)

    status = run_cli("db", "status", env={"LOOPAI_OUTBOX": outbox_url})
    delivered = run_cli("events", "deliver", "--outbox", outbox_url)
    after = run_cli("db", "status", "--json", env={"LOOPAI_OUTBOX": outbox_url})

    assert status.returncode == 0, status.stderr
    assert "(outbox)" in status.stdout and "outbox: 3 pending, 0 dead, 0 quarantined" in status.stdout
    assert delivered.returncode == 0 and f"{HANDLER}: 3 delivered" in delivered.stdout, delivered.stderr
    assert sorted(receiver.event_ids()) == sorted(ids)
    assert json.loads(after.stdout)["outbox"] == {"pending": 0, "dead": 0, "quarantined": 0}
    assert not (tmp_path / "outbox.sqlite3").exists()
    for done in (status, delivered, after):
        assert postgres_server.password not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [["events", "list"], ["events", "deliver", "--follow"], ["db", "status"]])
def test_a_database_that_is_down_is_exit_2_naming_it_without_its_password(run_cli, command):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://app:hunter2-s3cret@127.0.0.1:{port}/loopai"

    done = run_cli(*command, env={"LOOPAI_OUTBOX": url})

    assert done.returncode == 2
    assert f"postgresql://app:***@127.0.0.1:{port}/loopai cannot be reached" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def test_deliver_follow_exits_2_when_the_database_stays_away(
    state_env, write_config, receiver, postgres_server, tmp_path
):
    record(state_env, 2000)
    receiver.default = type(receiver.default)(delay=0.05)  # the deliverer is busy when the database goes
    write_config(receiver.url)
    env = {**os.environ, "LOOPAI_STATE__UNAVAILABLE_TIMEOUT": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "loopai", "events", "deliver", "--follow"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 5:
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.05)
        postgres_server.stop()
        try:
            _, err = process.communicate(timeout=30)  # before: it stayed, silent, delivering nothing ever again
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    finally:
        postgres_server.start()

    assert process.returncode == 2, err
    assert "has been unreachable for 1 s ([state] unavailable_timeout)" in err, err
    assert "Traceback" not in err and postgres_server.password not in err
