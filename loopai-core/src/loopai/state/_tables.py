"""The SQL of the shared state: the tables of migration 0001, read and written in one transaction each.

Every function takes a connection inside a transaction (``Database.run`` provides it) and may be
called again after a failed try: nothing is kept between tries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loopai.state._counts import Delta
from loopai.state._rolling import Rolling
from loopai.state._store import Crossing, TaskStatistics, Watch

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["add_counts", "apply_window", "claim", "read_statistics", "read_window"]

Observed = tuple[bool, "float | None"]
"""One record in a window: valid or not, and its latency_ms (None: not measured)."""

_COLUMNS = "task_id, total_executions, sampled_executions, failed_executions, last_sample_time"

_ADD_COUNTS = f"""
INSERT INTO loopai_task_statistics AS s ({_COLUMNS})
SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[])
ON CONFLICT (task_id) DO UPDATE SET
    total_executions = s.total_executions + EXCLUDED.total_executions,
    sampled_executions = s.sampled_executions + EXCLUDED.sampled_executions,
    failed_executions = s.failed_executions + EXCLUDED.failed_executions,
    last_sample_time = GREATEST(s.last_sample_time, EXCLUDED.last_sample_time),
    updated_at = now()
RETURNING {_COLUMNS}
"""

# Only a claimant whose execution comes at least one interval after the last sample wins; the row
# lock taken by ON CONFLICT makes racing claimants wait and then see the winner's time. A claim
# retried after its reply was lost finds its own time and claimant (one id per claim call), and wins again.
_CLAIM = """
INSERT INTO loopai_task_statistics AS s (task_id, last_sample_time, last_claimed_by)
VALUES (%(task)s, %(at)s, %(me)s)
ON CONFLICT (task_id) DO UPDATE SET
    last_sample_time = EXCLUDED.last_sample_time, last_claimed_by = EXCLUDED.last_claimed_by, updated_at = now()
WHERE s.last_sample_time IS NULL
   OR s.last_sample_time <= EXCLUDED.last_sample_time - %(interval)s
   OR (s.last_sample_time = EXCLUDED.last_sample_time AND s.last_claimed_by = EXCLUDED.last_claimed_by)
RETURNING s.last_sample_time
"""

_WINDOW = "SELECT outcomes, latencies, accuracy_breached, latency_breached FROM loopai_task_windows WHERE task_id = %s"

# Creates the row when it is missing and locks it either way, returning what it holds.
_LOCK_WINDOW = """
INSERT INTO loopai_task_windows AS w (task_id) VALUES (%s)
ON CONFLICT (task_id) DO UPDATE SET updated_at = now()
RETURNING w.outcomes, w.latencies, w.accuracy_breached, w.latency_breached
"""

_WRITE_WINDOW = """
UPDATE loopai_task_windows
SET outcomes = %s, latencies = %s, accuracy_breached = %s, latency_breached = %s, updated_at = now()
WHERE task_id = %s
"""


def _utc(moment: datetime | None) -> datetime | None:
    # The server answers in its session time zone; samplers compare and print UTC.
    return None if moment is None else moment.astimezone(timezone.utc)


def _statistics(row: Sequence[Any]) -> TaskStatistics:
    return TaskStatistics(int(row[1]), int(row[2]), int(row[3]), _utc(row[4]))


def read_statistics(conn: Connection[Any], task_ids: Collection[UUID]) -> dict[UUID, TaskStatistics]:
    """The counts of ``task_ids`` (zeros for a task with no row)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM loopai_task_statistics WHERE task_id = ANY(%s)", [list(task_ids)]
    ).fetchall()
    found = {row[0]: _statistics(row) for row in rows}
    return {task_id: found.get(task_id, TaskStatistics()) for task_id in task_ids}


def add_counts(
    conn: Connection[Any], batch: Mapping[UUID, Delta], refresh: Collection[UUID]
) -> dict[UUID, TaskStatistics]:
    """Add ``batch`` to the tasks' counts; the counts of its tasks and of ``refresh`` afterwards."""
    # Rows are locked in task order, so that two processes flushing the same tasks never deadlock.
    ordered = sorted(batch)
    deltas = [batch[task_id] for task_id in ordered]
    result: dict[UUID, TaskStatistics] = {}
    if ordered:
        rows = conn.execute(
            _ADD_COUNTS,
            [
                ordered,
                [d.total for d in deltas],
                [d.sampled for d in deltas],
                [d.failed for d in deltas],
                [d.last_sample_time for d in deltas],
            ],
        ).fetchall()
        result = {row[0]: _statistics(row) for row in rows}
    others = [task_id for task_id in refresh if task_id not in result]
    if others:
        result.update(read_statistics(conn, others))
    return result


def claim(
    conn: Connection[Any], task_id: UUID, executed_at: datetime, interval: timedelta, claimant: UUID
) -> tuple[bool, datetime | None]:
    """Claim the task's time-based sample at ``executed_at``: whether this claimant won, and the
    task's last sample time now (the winner's, when another claimant won)."""
    row = conn.execute(_CLAIM, {"task": task_id, "at": executed_at, "me": claimant, "interval": interval}).fetchone()
    if row is not None:
        return True, _utc(row[0])
    row = conn.execute("SELECT last_sample_time FROM loopai_task_statistics WHERE task_id = %s", [task_id]).fetchone()
    return False, _utc(row[0]) if row is not None else None


def read_window(conn: Connection[Any], task_id: UUID, watch: Watch) -> Rolling:
    """The task's shared window as it is now (empty when no process has written it)."""
    row = conn.execute(_WINDOW, [task_id]).fetchone()
    return Rolling(watch) if row is None else Rolling.resumed(watch, *row)


def apply_window(
    conn: Connection[Any], task_id: UUID, watch: Watch, records: Sequence[Observed], *, judge: bool, report: bool
) -> tuple[Rolling | None, list[Crossing]]:
    """Append ``records`` to the task's shared window under its row lock; the window afterwards and,
    with ``judge``, the crossings they made (each flips its flag in this transaction, so that of
    many processes exactly one sees it). Without ``judge`` the flags are left for the next judged
    record to update. When the records make a crossing and ``report`` is false (no record to carry
    the event), nothing is written: ``(None, [])``."""
    row = conn.execute(_LOCK_WINDOW, [task_id]).fetchone()
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE ... RETURNING always returns the row
    window = Rolling.resumed(watch, *row)
    crossings: list[Crossing] = []
    for valid, latency_ms in records:
        if judge:
            crossings.extend(window.add(valid, latency_ms))
        else:
            window.append(valid, latency_ms)
    if crossings and not report:
        return None, []
    conn.execute(
        _WRITE_WINDOW,
        [list(window.outcomes), list(window.latencies), window.accuracy_breached, window.latency_breached, task_id],
    )
    return window, crossings
