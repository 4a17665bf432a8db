"""A database that restarts mid-run: the process rides it out, and no count is lost."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import timedelta

import psycopg
import pytest

pytestmark = pytest.mark.postgres


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
