"""``loopai events list``: a header row, ISO 8601 times in JSON, and --limit, --since, --type, --handler;
a --type that matches no event type is a usage error, not an empty list."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from loopai.delivery import SqliteOutbox
from loopai.testing import make_event


@pytest.fixture
def outbox(project) -> Path:
    """An outbox with three events, each for handlers ``a`` and ``b``; ``b`` took the first one."""
    path = project.root / "events.sqlite3"
    box = SqliteOutbox(path)
    try:
        for event_type in ("program.execution.failed", "validation.failed", "validation.completed"):
            event = make_event(event_type)
            box.record(event, ["a", "b"])
            if event_type == "program.execution.failed":
                box.delivered(str(event.event_id), "b", 1)
            time.sleep(0.01)  # distinct emission times: the order is the outbox's
    finally:
        box.close()
    return path


def test_the_table_has_a_header_row(cli, outbox) -> None:
    listed = cli("events", "list", "--outbox", str(outbox))

    header, *rows = listed.out.splitlines()
    assert header.split() == ["EMITTED", "(UTC)", "EVENT", "ID", "TYPE", "HANDLER", "STATUS", "TRIES", "LAST", "ERROR"]
    assert len(rows) == 6
    assert rows[0].split()[3:6] == ["program.execution.failed", "a", "pending"]
    assert listed.err.endswith("1 delivered, 0 dead, 5 pending\n")


def test_json_times_are_iso_8601(cli, outbox) -> None:
    before = datetime.now(timezone.utc)

    [first, *_] = cli("events", "list", "--outbox", str(outbox), "--json").json

    assert first["status"] == "pending"
    for key in ("emitted_at", "updated_at", "next_attempt_at"):
        assert isinstance(first[key], str) and first[key].endswith("Z")
        when = datetime.fromisoformat(first[key].replace("Z", "+00:00"))
        assert abs((before - when).total_seconds()) < 60


def test_json_has_no_next_attempt_for_a_delivery_that_is_done(cli, outbox) -> None:
    rows = cli("events", "list", "--outbox", str(outbox), "--json").json

    (done,) = [row for row in rows if row["status"] == "delivered"]
    assert done["next_attempt_at"] is None


def test_type_handler_since_and_limit_narrow_the_list(cli, outbox) -> None:
    def listed(*options: str) -> list[tuple[str, str]]:
        done = cli("events", "list", "--outbox", str(outbox), "--json", *options)
        assert done.code == 0, done.err
        return [(row["event_type"], row["handler"]) for row in done.json]

    assert listed("--type", "validation.*", "--handler", "b") == [
        ("validation.failed", "b"),
        ("validation.completed", "b"),
    ]
    assert listed("--type", "program.execution.failed") == [
        ("program.execution.failed", "a"),
        ("program.execution.failed", "b"),
    ]
    assert listed("--limit", "2") == [("validation.completed", "a"), ("validation.completed", "b")]
    assert len(listed("--since", "1h")) == 6
    assert listed("--since", "2999-01-01T00:00:00Z") == []
    assert len(listed("--since", "2000-01-01")) == 6
    assert listed("--pending", "--handler", "b", "--limit", "1") == [("validation.completed", "b")]


def test_a_bad_since_limit_or_type_is_a_usage_error(cli, outbox) -> None:
    since = cli("events", "list", "--outbox", str(outbox), "--since", "last tuesday")
    limit = cli("events", "list", "--outbox", str(outbox), "--limit", "none")
    typo = cli("events", "list", "--outbox", str(outbox), "--type", "validation.complete")
    unknown = cli("events", "list", "--outbox", str(outbox), "--type", "deploy*")

    assert since.code == limit.code == typo.code == unknown.code == 2
    assert "no event type matches 'validation.complete'; did you mean 'validation.completed'" in typo.err
    assert "no event type matches 'deploy*' (the types: accuracy.*, canary.*, latency.*, program.*" in unknown.err
    assert "'last tuesday' is neither an ISO 8601 time (2025-03-14T09:00:00Z) nor an age (30m, 12h, 7d)" in since.err
    assert "not a whole number: 'none'" in limit.err


def test_a_handler_glob_that_matches_no_handler_is_noted_with_those_there_are(cli, outbox) -> None:
    listed = cli("events", "list", "--outbox", str(outbox), "--handler", "nope*")

    assert listed.code == 0 and listed.out == ""
    assert "note: --handler 'nope*' matches no handler of these deliveries (their handlers: a, b)" in listed.err


def test_only_one_status_filter_at_a_time(cli, outbox) -> None:
    both = cli("events", "list", "--outbox", str(outbox), "--dead", "--pending")

    assert both.code == 2
    assert "argument --pending: not allowed with argument --dead" in both.err


def test_replay_without_ids_says_what_to_name(cli, outbox) -> None:
    done = cli("events", "replay", "--outbox", str(outbox))

    assert done.code == 2
    assert (
        done.err == "loopai events replay: name the event ids to replay, or --all-dead, or --quarantined (see --help)\n"
    )


@pytest.mark.parametrize("command", [["list"], ["prune", "--older-than", "1d"], ["deliver"]])
def test_an_empty_file_is_no_outbox_yet_and_is_left_untouched(cli, project, command) -> None:
    empty = project.root / "empty.sqlite3"
    empty.write_bytes(b"")

    done = cli("events", *command, "--outbox", str(empty))

    assert done.code == 0, done.err
    assert f"{empty} holds no outbox yet (an empty file): nothing was emitted" in done.err
    assert empty.read_bytes() == b""  # a listing never writes tables into a file it was pointed at
