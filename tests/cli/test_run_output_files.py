"""``loopai run -o FILE`` never writes results over a database (another run's outbox, say), and ``-q``
keeps stderr to errors: a webhook handler's circuit opening is not said, with one process or with
workers. Real runs, against an endpoint where nothing listens."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from pathlib import Path

import pytest


def _down_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port that was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/loopai"


@pytest.fixture
def down_handler(project) -> Path:
    """A loopai.toml whose http handler posts where nothing listens: every delivery fails, its circuit
    opens after 2 failures (the deliveries stay pending: their retries are not due before the run ends)."""
    return project.write(
        "loopai.toml",
        f"""
        autoload = false

        [plugins.webhook_handlers.http-webhook-handler.configuration]
        url = "{_down_url()}"
        timeout = 2

        [delivery]
        circuit_failures = 2
        """,
    )


def _pending(outbox: Path) -> int:
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        return int(db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0])


def test_an_output_that_is_another_runs_outbox_is_refused_and_its_events_kept(project, proc, down_handler) -> None:
    records = str(project.records(each=5))
    first = proc("run", records, "-o", "b.jsonl")
    outbox = project.root / "b.outbox.sqlite3"
    assert first.code == 0, first.err
    pending = _pending(outbox)
    assert pending == 5
    before = outbox.read_bytes()

    again = proc("run", records, "-o", "b.outbox.sqlite3")

    assert again.code == 2
    assert again.err == (
        "loopai run: --output b.outbox.sqlite3 is an SQLite database (an outbox or state database, say): "
        "writing the results there would destroy it; choose another output file\n"
    )
    assert outbox.read_bytes() == before
    assert _pending(outbox) == pending
    listed = proc("events", "list", "--outbox", "b.outbox.sqlite3")
    assert listed.code == 0, listed.err
    assert "0 dead, 5 pending" in listed.out + listed.err
    assert not (project.root / "b.outbox.outbox.sqlite3").exists()  # refused before anything was opened


def test_an_output_that_is_a_results_file_is_written_over_as_before(project, cli) -> None:
    records = str(project.records(each=2))
    (project.root / "out.jsonl").write_text("an earlier run's results\n", encoding="utf-8")

    done = cli("run", records, "-o", "out.jsonl", "-q")

    assert done.code == 0, done.err
    assert len((project.root / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_quiet_says_no_circuit_opening(project, proc, down_handler, workers) -> None:
    records = str(project.records(each=6))

    quiet = proc("run", records, "-o", "quiet.jsonl", "-q", "--workers", workers)
    said = proc("run", records, "-o", "said.jsonl", "--workers", workers)

    assert quiet.code == said.code == 0, quiet.err + said.err
    assert quiet.err == ""
    assert said.err.count("loopai run: webhook handler 'http-webhook-handler': circuit open after 2 consecutive") == 1
