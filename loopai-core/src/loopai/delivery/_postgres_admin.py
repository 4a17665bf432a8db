"""The SQL of the PostgreSQL outbox that operators run: listing, counting, requeueing, pruning.

Each function takes a connection inside a transaction (``Database.run``). Reading never decodes a
stored event. Event ids that are not UUIDs match nothing (they cannot be in this outbox).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, Final

from loopai.delivery._outbox import DeliveryRecord, DeliveryStatus
from loopai.delivery._postgres_sql import notify

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PRUNE_BATCH", "counts", "deliveries", "due_now", "open_counts", "prune_batch", "requeue", "uuids"]

PRUNE_BATCH: Final = 5_000
"""Deliveries removed per transaction by :func:`prune_batch`."""

_EPOCH: Final = "extract(epoch FROM {})::float8"
_LISTED: Final = f"""
SELECT d.event_id, e.event_type, d.handler, d.status, d.attempts, d.last_error, {_EPOCH.format("e.emitted_at")},
    {_EPOCH.format("d.updated_at")}, d.dry_run, {_EPOCH.format("d.next_attempt_at")}
FROM loopai_outbox_deliveries AS d JOIN loopai_outbox_events AS e USING (event_id)
"""
_FINISHED: Final = {False: "('delivered')", True: "('delivered', 'dead', 'quarantined')"}
"""Statuses pruned, written out (not parameters) so that the planner sees the partial index applies."""


def uuids(event_ids: Iterable[str]) -> list[uuid.UUID]:
    """The ids among ``event_ids`` that are UUIDs (any other cannot name an event here)."""
    found = []
    for text in event_ids:
        try:
            found.append(uuid.UUID(str(text)))
        except ValueError:
            continue
    return found


def deliveries(
    conn: Connection[Any], status: DeliveryStatus | None, event_ids: list[uuid.UUID] | None
) -> list[DeliveryRecord]:
    """Delivery records, oldest first, optionally of one status and/or some events."""
    clauses: list[str] = []
    arguments: list[Any] = []
    if status is not None:
        clauses.append("d.status = %s")
        arguments.append(status)
    if event_ids is not None:
        clauses.append("d.event_id = ANY(%s::uuid[])")
        arguments.append(event_ids)
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    rows = conn.execute(f"{_LISTED} {where}ORDER BY e.emitted_at, d.handler", arguments).fetchall()
    return [
        DeliveryRecord(str(event_id), kind, handler, state, attempts, error, emitted, updated, dry, due)
        for event_id, kind, handler, state, attempts, error, emitted, updated, dry, due in rows
    ]


def requeue(conn: Connection[Any], event_ids: list[uuid.UUID] | None, status: str = "dead") -> int:
    """Make the deliveries of ``status`` (dead, or quarantined) pending and due now, attempts counted
    afresh; how many."""
    sql = (
        "UPDATE loopai_outbox_deliveries SET status = 'pending', attempts = 0, updated_at = statement_timestamp(), "
        "next_attempt_at = statement_timestamp(), lease_until = NULL, lease_owner = NULL WHERE status = %s"
    )
    arguments: list[Any] = [status]
    if event_ids is not None:
        sql += " AND event_id = ANY(%s::uuid[])"
        arguments.append(event_ids)
    done = conn.execute(sql, arguments).rowcount
    if done:
        notify(conn)
    return done


def due_now(conn: Connection[Any], handlers: Collection[str] | None) -> int:
    """Make pending deliveries scheduled later due now (leases kept); how many."""
    sql = (
        "UPDATE loopai_outbox_deliveries SET next_attempt_at = statement_timestamp() "
        "WHERE status = 'pending' AND next_attempt_at > statement_timestamp()"
    )
    arguments: list[Any] = []
    if handlers is not None:
        sql += " AND handler = ANY(%s::text[])"
        arguments.append(list(handlers))
    done = conn.execute(sql, arguments).rowcount
    if done:
        notify(conn)
    return done


def prune_batch(conn: Connection[Any], older_than: float, dead: bool, at: float | None) -> tuple[int, int]:
    """Remove up to :data:`PRUNE_BATCH` finished deliveries last updated more than ``older_than``
    seconds before ``at`` (None: now), then the events left without any; (deliveries, events).

    Rows another transaction holds are skipped, not waited for. The events go in a second
    statement: a statement does not see its own deletions."""
    cutoff = "coalesce(to_timestamp(%(at)s::float8), statement_timestamp()) - make_interval(secs => %(age)s)"
    gone = conn.execute(
        f"""
        DELETE FROM loopai_outbox_deliveries AS d USING (
            SELECT event_id, handler FROM loopai_outbox_deliveries
            WHERE status IN {_FINISHED[dead]} AND updated_at < {cutoff}
            LIMIT {PRUNE_BATCH} FOR UPDATE SKIP LOCKED
        ) AS old
        WHERE d.event_id = old.event_id AND d.handler = old.handler
        RETURNING d.event_id
        """,
        {"at": at, "age": older_than},
    ).fetchall()
    if not gone:
        return 0, 0
    events = conn.execute(
        "DELETE FROM loopai_outbox_events AS e WHERE e.event_id = ANY(%s::uuid[]) "
        "AND NOT EXISTS (SELECT 1 FROM loopai_outbox_deliveries AS d WHERE d.event_id = e.event_id)",
        [sorted({row[0] for row in gone})],
    ).rowcount
    return len(gone), events


def counts(conn: Connection[Any]) -> dict[str, int]:
    """How many deliveries are pending, delivered, dead and quarantined (a look at every row)."""
    found = {"pending": 0, "delivered": 0, "dead": 0, "quarantined": 0}
    found.update(dict(conn.execute("SELECT status, count(*) FROM loopai_outbox_deliveries GROUP BY status")))
    return found


_OPEN: Final = """
SELECT handler, 'pending', count(*) FROM loopai_outbox_deliveries WHERE status = 'pending' GROUP BY handler
UNION ALL
SELECT handler, status, count(*) FROM loopai_outbox_deliveries WHERE status IN ('dead', 'quarantined')
GROUP BY handler, status
"""


def open_counts(conn: Connection[Any]) -> dict[str, dict[str, int]]:
    """Per handler, how many deliveries are pending, dead and quarantined (through the partial indexes:
    delivered rows, however many, are not read)."""
    found: dict[str, dict[str, int]] = {}
    for handler, status, n in conn.execute(_OPEN):
        found.setdefault(handler, {"pending": 0, "dead": 0, "quarantined": 0})[status] = n
    return found
