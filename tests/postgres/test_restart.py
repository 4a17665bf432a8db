"""A database that restarts mid-run: the process rides it out, and no count is lost."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import traceback
import uuid
from datetime import datetime, timedelta, timezone

import pytest

pytestmark = pytest.mark.postgres
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")


def _counted(url):
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT sum(total_executions) FROM loopai_task_statistics").fetchone()
    return row[0] or 0


def _wait_until_counted(url, count, timeout=60.0):
    deadline = time.monotonic() + timeout
    while _counted(url) < count:
        assert time.monotonic() < deadline, f"the process never flushed {count} executions"
        time.sleep(0.05)


def test_a_server_restart_mid_run_loses_no_count(pg, loopai, postgres_server, postgres_url):
    records = pg.spaced(3000, timedelta(milliseconds=2))  # 6 intervals of 1 s
    output = loopai.workdir / "out.jsonl"
    # Results to a file: a pipe nobody reads while we write would block the process.
    process = loopai.start("run", "-", "--output", str(output), *pg.RUN, stdin=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(pg.lines(records[:1000]))
    process.stdin.flush()
    _wait_until_counted(postgres_url, 1000)  # connected, claimed and flushed: now cut every connection
    down = threading.Thread(target=lambda: (postgres_server.stop(), time.sleep(1.0), postgres_server.start()))
    down.start()
    for start in range(1000, len(records), 250):  # records keep coming while the server is down
        process.stdin.write(pg.lines(records[start : start + 250]))
        process.stdin.flush()
        time.sleep(0.1)
    down.join()
    out, err = process.communicate(timeout=120)

    assert process.returncode == 0, err
    results = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(results) == len(records)
    assert len(pg.sampled(results)) == 6
    with psycopg.connect(postgres_url) as conn:
        counts = conn.execute("SELECT total_executions, sampled_executions FROM loopai_task_statistics").fetchall()
    assert counts == [(len(records), 6)]
    assert postgres_server.password not in out + err
    # The outage is said once, in loopai's words, and so is its end; not each attempt to reconnect.
    assert err.count("is unreachable") == 1 and "; retrying for up to 30 s" in err, err
    assert "is reachable again, after " in err
    assert "psycopg.pool" not in err


def test_past_the_unavailable_timeout_a_call_fails_naming_the_database_and_keeps_its_counts(
    postgres_server, postgres_url
):
    from datetime import datetime, timezone
    from uuid import uuid4

    from loopai.database import Database, DatabaseUnavailable, upgrade
    from loopai.state import PostgresStateStore

    database = Database(postgres_url)
    with database.connect() as conn:
        upgrade(conn, database.url.shown)
    store = PostgresStateStore(postgres_url, unavailable_timeout=1.0)
    store.open()
    task, now = uuid4(), datetime.now(timezone.utc)
    for _ in range(10):
        store.record(task, sampled=False, failed=False, executed_at=now)
    store.flush()
    postgres_server.stop()
    try:
        for _ in range(5):  # counted while the database is away
            store.record(task, sampled=False, failed=False, executed_at=now)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as raised:
            store.claim_sample(task, now, timedelta(seconds=1))
        waited = time.monotonic() - started
    finally:
        postgres_server.start()
    store.close()  # the database is back: what was counted meanwhile is written now

    assert 1.0 <= waited < 10
    message = str(raised.value)
    assert "has been unreachable for 1 s ([state] unavailable_timeout)" in message
    assert postgres_server.url(password=False).rsplit("/", 1)[0].replace("loopai@", "loopai:***@") in message
    assert postgres_server.password not in message
    assert _counted(postgres_url) == 15


def _away_for_good(postgres_server, after: float) -> threading.Thread:
    """Stop the server ``after`` seconds from now (the test starts it again)."""
    down = threading.Thread(target=lambda: (time.sleep(after), postgres_server.stop()))
    down.start()
    return down


def test_a_run_whose_database_stays_away_ends_once_with_its_summary(pg, loopai, postgres_server):
    loopai.env["LOOPAI_STATE__UNAVAILABLE_TIMEOUT"] = "2"
    loopai.env["LOOPAI_PLUGINS__WEBHOOK_HANDLERS__CONSOLE_WEBHOOK_HANDLER__ENABLED"] = "false"
    records = pg.spaced(20_000, timedelta(milliseconds=2))
    output = loopai.workdir / "out.jsonl"
    process = loopai.start("run", "-", "--output", str(output), *pg.RUN, stdin=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(pg.lines(records[:500]))
    process.stdin.flush()
    try:
        down = _away_for_good(postgres_server, 0.5)
        for start in range(500, len(records), 100):  # records keep coming: the run is still reading
            if process.poll() is not None:
                break
            try:
                process.stdin.write(pg.lines(records[start : start + 100]))
                process.stdin.flush()
            except BrokenPipeError:
                break
            time.sleep(0.05)
        stopped = time.monotonic()
        _, err = process.communicate(timeout=60)
        waited = time.monotonic() - stopped
        down.join()
    finally:
        postgres_server.start()

    assert process.returncode == 2, err
    assert waited < 20, waited  # about [state] unavailable_timeout: not once per step of closing
    assert "Traceback" not in err and "psycopg" not in err
    assert postgres_server.password not in err
    said = [line for line in err.splitlines() if "has been unreachable for 2 s ([state] unavailable_timeout)" in line]
    assert said[0].startswith("loopai run: state database postgresql://loopai:***@") and len(said) <= 2, said
    summary = err[err.index("loopai run: ", err.index(said[0]) + 1) :]
    assert " - stopped early: state database " in summary and "TASK" in summary
    results = output.read_text(encoding="utf-8")
    assert results.endswith("\n") and len(results.splitlines()) >= 500  # whole lines, those written kept


def test_ctrl_c_twice_while_the_database_is_away_stops_now_and_says_what_was_not_written(
    pg, loopai, postgres_server, postgres_url
):
    # The default [state] unavailable_timeout (30 s): the second Ctrl-C must not sit it out.
    records = pg.spaced(50, timedelta(milliseconds=2))
    output = loopai.workdir / "out.jsonl"
    process = loopai.start("run", "-", "--output", str(output), *pg.RUN, stdin=subprocess.PIPE)
    assert process.stdin is not None
    try:
        process.stdin.write(pg.lines(records[:20]))
        process.stdin.flush()
        _wait_until_counted(postgres_url, 20)
        postgres_server.stop()
        process.stdin.write(pg.lines(records[20:]))  # counted in memory, their flush waits for the server
        process.stdin.flush()
        time.sleep(1.0)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        postgres_server.start()

    assert process.returncode == 130, err
    assert took < 10, (took, err)
    assert "Traceback" not in err and "psycopg" not in err
    lost = [line for line in err.splitlines() if "no longer waited for (stopping)" in line]
    assert len(lost) == 1 and lost[0].startswith("loopai run: state database postgresql://loopai:***@"), err
    assert lost[0].endswith("30 execution(s) counted by this process were not written"), lost
    assert len(output.read_text(encoding="utf-8").splitlines()) == len(records)  # every result line written


def test_the_flushers_failure_is_raised_afresh_each_time_without_a_growing_traceback(postgres_server, postgres_url):
    from loopai.database import Database, DatabaseUnavailable, upgrade
    from loopai.state import PostgresStateStore

    database = Database(postgres_url)
    with database.connect() as conn:
        upgrade(conn, database.url.shown)
    database.close()
    store = PostgresStateStore(postgres_url, unavailable_timeout=0.5, flush_interval=0.05)
    store.open()
    task = uuid.uuid4()
    store.statistics(task)
    postgres_server.stop()
    try:
        raised = []
        deadline = time.monotonic() + 30
        while len(raised) < 50:  # as a service's batch meets it, record after record
            assert time.monotonic() < deadline, "the flusher never gave up"
            try:  # what a sampler's call does: read the task's counts, then count the execution
                store.statistics(task)
                store.record(task, sampled=False, failed=False, executed_at=datetime.now(timezone.utc))
                time.sleep(0.05)
            except DatabaseUnavailable as exc:
                raised.append((exc, len(traceback.extract_tb(exc.__traceback__))))
    finally:
        postgres_server.start()
        with contextlib.suppress(DatabaseUnavailable):
            store.close()

    depths = [depth for _, depth in raised]
    assert depths[-1] == depths[0], depths  # was: one more frame chain with every raise
    assert len({id(exc) for exc, _ in raised}) == len(raised)  # threads never share one
    assert all("has been unreachable for 0.5 s" in str(exc) for exc, _ in raised), raised[0]
