"""Time-based sampling and task statistics shared by processes: one sample per interval, cluster-wide."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from loopai.database import Database, upgrade
from loopai.state import PostgresStateStore, TaskStatistics

pytestmark = pytest.mark.postgres
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")

INTERVALS = 6
PER_INTERVAL = 1000  # 1 ms apart: each process spends a while in every interval


def test_four_processes_sample_exactly_one_execution_per_interval(pg, loopai, postgres_url):
    records = pg.spaced(INTERVALS * PER_INTERVAL, timedelta(milliseconds=1))
    (loopai.workdir / "in.jsonl").write_text(pg.lines(records), encoding="utf-8")

    runs = loopai.run_many(4, "in.jsonl", *pg.RUN)

    assert [code for code, _, _ in runs] == [0, 0, 0, 0], [err for _, _, err in runs]
    chosen = sorted(r["execution_id"] for _, results, _ in runs for r in pg.sampled(results))
    # The first record of each 1 s interval, each sampled by exactly one of the four processes.
    assert chosen == sorted(records[k * PER_INTERVAL]["id"] for k in range(INTERVALS))
    with psycopg.connect(postgres_url) as conn:
        counts = conn.execute("SELECT total_executions, sampled_executions FROM loopai_task_statistics").fetchall()
    assert counts == [(4 * len(records), INTERVALS)]


def test_a_new_process_sees_the_last_sample_of_the_others(pg, loopai):
    (loopai.workdir / "first.jsonl").write_text(pg.lines([pg.record(1, at=pg.START)]), encoding="utf-8")
    first = loopai.run("run", "first.jsonl", *pg.RUN)
    assert first.returncode == 0, first.stderr
    later = [pg.record(2, at=pg.START + timedelta(milliseconds=500)), pg.record(3, at=pg.START + timedelta(seconds=1))]
    (loopai.workdir / "later.jsonl").write_text(pg.lines(later), encoding="utf-8")

    second = loopai.run("run", "later.jsonl", *pg.RUN)

    assert second.returncode == 0, second.stderr
    results = [json.loads(line) for line in second.stdout.splitlines()]
    # Half an interval after the other process's sample: not due; one interval after: due.
    assert [r["sampling"]["should_sample"] for r in results] == [False, True]
    assert results[1]["sampling"]["reason"].startswith("1 s since the last sample")


def test_counts_are_cluster_wide_once_every_process_has_flushed(postgres_url):
    database = Database(postgres_url)
    with database.connect() as conn:
        upgrade(conn, database.url.shown)
    first, second = PostgresStateStore(postgres_url), PostgresStateStore(postgres_url)
    task = uuid.uuid4()
    for n in range(3):
        first.record(task, sampled=False, failed=True, executed_at=pg_start(n))
    for n in range(4):
        second.record(task, sampled=True, failed=False, executed_at=pg_start(10 + n))

    before = first.statistics(task)
    first.flush()
    second.flush()
    first.flush()  # reads back what the second wrote after the first's previous flush

    assert before == TaskStatistics(3, 0, 3, None)  # its own counts, nothing flushed yet
    everything = TaskStatistics(7, 4, 3, pg_start(13))
    assert first.statistics(task) == second.statistics(task) == everything
    first.close()
    second.close()
    third = PostgresStateStore(postgres_url)
    assert third.statistics(task) == everything
    third.close()


def pg_start(seconds):
    from datetime import datetime, timezone

    return datetime(2025, 3, 14, 9, 0, tzinfo=timezone.utc) + timedelta(seconds=seconds)


def test_hosts_in_one_process_share_the_claim_from_sync_and_async_code(postgres_url):
    import asyncio

    import loopai
    from loopai_builtin import TimeBasedSampler

    database = Database(postgres_url)
    with database.connect() as conn:
        upgrade(conn, database.url.shown)
    sampler = {"time-based-sampler": {"configuration": {"interval": "1s"}}}
    config = loopai.parse_config({"state": {"url": postgres_url}, "plugins": {"samplers": sampler}})
    task = uuid.uuid4()

    def execution(seconds):
        return loopai.ExecutionRecord(
            task_id=task, program_id=uuid.uuid4(), input={}, output={}, executed_at=pg_start(seconds)
        )

    async def asynchronous(host):
        async with host:
            return [(await host.ashould_sample(execution(s))).decision is not None for s in (0, 0.5, 1, 1.5)]

    with loopai.Host(config, plugins=[TimeBasedSampler()], environ={}) as first:
        second = loopai.Host(config, plugins=[TimeBasedSampler()], environ={})
        chosen = [first.should_sample(execution(s)).decision is not None for s in (0, 1)]
        chosen += asyncio.run(asynchronous(second))

    # 0 s by the first host; 0.5 s too soon; 1 s claimed by the first already; 1.5 s too soon.
    assert chosen == [True, True, False, False, False, False]
