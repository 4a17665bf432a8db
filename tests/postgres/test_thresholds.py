"""Rolling windows shared by processes: each threshold crossing reported once, a recovery re-arms it."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest

from loopai.database import Database, upgrade
from loopai.state import MemoryStateStore, PostgresStateStore, Watch

pytestmark = pytest.mark.postgres


def test_four_processes_report_one_crossing_and_a_recovery_rearms_it(pg, loopai):
    loopai.configure(window=20, accuracy_threshold=0.5)
    step = timedelta(milliseconds=10)
    (loopai.workdir / "bad.jsonl").write_text(pg.lines(pg.spaced(400, step, valid=False)), encoding="utf-8")
    (loopai.workdir / "good.jsonl").write_text(pg.lines(pg.spaced(400, step, valid=True)), encoding="utf-8")

    reported = []
    for phase in ("bad", "good", "bad"):
        runs = loopai.run_many(4, f"{phase}.jsonl", *pg.RUN)
        assert [code for code, _, _ in runs] == [0, 0, 0, 0], [err for _, _, err in runs]
        reported.append(sum(pg.breaches(results) for _, results, _ in runs))

    # Falling below: one event among four processes; back above: none; below again: one.
    assert reported == [1, 0, 1]


def _upgraded(url: str) -> None:
    database = Database(url)
    with database.connect() as conn:
        upgrade(conn, database.url.shown)


@pytest.mark.parametrize("flush_records", [1, 7, 5000])
def test_one_process_reports_the_crossings_the_in_process_store_reports(postgres_url, flush_records):
    _upgraded(postgres_url)
    rng = random.Random(flush_records)
    # Stretches of mostly valid and mostly invalid records, latencies that wander across the threshold.
    records = []
    for stretch in range(12):
        share = 0.95 if stretch % 2 == 0 else 0.3
        records += [(rng.random() < share, rng.uniform(5, 60) * (1 + stretch % 3)) for _ in range(rng.randint(15, 60))]
    watch = Watch(window=10, accuracy_threshold=0.6, latency_threshold_ms=100.0)
    task = uuid.uuid4()
    memory = MemoryStateStore()
    expected = [(n, c) for n, (ok, ms) in enumerate(records) for c in memory.observe(task, watch, ok, ms)]

    # Two stores one after the other: the second carries on with the window the first left.
    half = len(records) // 2
    got = []
    for part, offset in ((records[:half], 0), (records[half:], half)):
        store = PostgresStateStore(postgres_url, flush_records=flush_records)
        store.open()
        got += [(offset + n, c) for n, (ok, ms) in enumerate(part) for c in store.observe(task, watch, ok, ms)]
        store.close()

    assert len(expected) >= 6  # both thresholds crossed, several times
    assert got == expected
