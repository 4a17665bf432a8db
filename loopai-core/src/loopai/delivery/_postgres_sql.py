"""The SQL of the PostgreSQL outbox that delivery workers run: recording, claiming, settling, leases.

Every function takes a connection inside a transaction (``Database.run`` provides one, or the
state store's, for a breach recorded with its flag) and may be called again after a failed try.
Times are the server's (``statement_timestamp()``): a lease or a schedule means the same to every
replica, whatever their clocks say. Statements that touch many rows take them in key order, so
that two processes settling overlapping deliveries never deadlock. The tables are those of
``loopai/database/migrations/0002_outbox.sql``; listing and housekeeping are in :mod:`._postgres_admin`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from loopai._models import WebhookEvent

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = [
    "CHANNEL",
    "Batch",
    "Due",
    "Key",
    "Settled",
    "claim",
    "keys_of",
    "next_due",
    "notify",
    "quarantine",
    "record",
    "release",
    "renew",
    "settle",
]

CHANNEL: Final = "loopai_outbox"
"""What recording (and anything else that makes deliveries due now) notifies; workers listen."""

Batch = Sequence[tuple[WebhookEvent, Sequence[str]]]
"""Events, each with the handlers to record it for."""
Key = tuple[str, str]
"""A delivery: ``(event_id, handler)``."""

_AT: Final = "coalesce(to_timestamp(%(at)s::float8), statement_timestamp())"
"""Now, or the Unix time a caller gave (tests and tools move time this way)."""


class Due(NamedTuple):
    """A claimed row: its event id, attempts so far, dry run or not, the stored event, when it was due."""

    event_id: uuid.UUID
    attempts: int
    dry_run: bool
    body: str


class Settled(NamedTuple):
    """An attempt's outcome waiting to be written: ``kind`` is delivered, retry or dead; ``delay``
    (retries) is seconds from the write until the next attempt."""

    kind: str
    event_id: str
    handler: str
    attempts: int
    error: str | None = None
    delay: float = 0.0


# -- recording ---------------------------------------------------------------------------

# Arrays go in binary (%b): the text form escapes every quote of every JSON body, in Python.
# One statement for the events and their deliveries: the foreign key is checked at its end, when
# the events inserted above are there. A delivery that exists already is left alone (an event id is
# delivered once per handler), unless it was a dry run's and this is real: a rehearsal delivered
# nothing. The tick (microseconds) keeps the order of one call's events in their due times.
_RECORD: Final = """
WITH new_events AS (
    INSERT INTO loopai_outbox_events (event_id, event_type, body, emitted_at)
    SELECT e.event_id, e.event_type, e.body, statement_timestamp() + e.tick * interval '1 microsecond'
    FROM unnest(%(ids)b::uuid[], %(types)b::text[], %(bodies)b::text[], %(ticks)b::int[])
        AS e(event_id, event_type, body, tick)
    ON CONFLICT (event_id) DO NOTHING
)
INSERT INTO loopai_outbox_deliveries AS d (event_id, handler, dry_run, updated_at, next_attempt_at, recorded_by)
SELECT r.event_id, r.handler, %(dry)s, statement_timestamp(),
    statement_timestamp() + r.tick * interval '1 microsecond', %(by)s
FROM unnest(%(d_ids)b::uuid[], %(d_handlers)b::text[], %(d_ticks)b::int[]) AS r(event_id, handler, tick)
ON CONFLICT (event_id, handler) DO UPDATE SET
    status = 'pending', attempts = 0, last_error = NULL, dry_run = false, updated_at = EXCLUDED.updated_at,
    next_attempt_at = EXCLUDED.next_attempt_at, lease_until = NULL, lease_owner = NULL,
    recorded_by = EXCLUDED.recorded_by
WHERE d.dry_run AND NOT EXCLUDED.dry_run
RETURNING d.event_id, d.handler
"""

# After a retried call (its first try may have committed before its reply was lost): the rows this
# call recorded, whichever try wrote them.
_RECORDED_BY: Final = """
SELECT d.event_id, d.handler FROM loopai_outbox_deliveries AS d
JOIN unnest(%(d_ids)b::uuid[], %(d_handlers)b::text[]) AS r(event_id, handler) USING (event_id, handler)
WHERE d.recorded_by = %(by)s
"""


def record(
    conn: Connection[Any], batch: Batch, *, dry_run: bool = False, by: uuid.UUID | None = None, again: bool = False
) -> list[list[str]]:
    """Store ``batch``'s events with a pending delivery per handler, due now; per event, the handlers
    it was recorded for (each ``(event, handler)`` once, for its first occurrence in ``batch``).

    ``by`` is the recording call's id, the same for its retries; ``again`` says this is a retry: the
    rows the call's earlier try committed count as recorded. Notifies :data:`CHANNEL` at commit.
    """
    by = by or uuid.uuid4()
    events: dict[uuid.UUID, tuple[str, str, int]] = {}
    rows: dict[tuple[uuid.UUID, str], int] = {}
    for tick, (event, handlers) in enumerate(batch):
        if handlers and event.event_id not in events:
            events[event.event_id] = (event.event_type.value, event.model_dump_json(), tick)
        for name in handlers:
            rows.setdefault((event.event_id, name), tick)
    recorded: set[tuple[uuid.UUID, str]] = set()
    if rows:
        arguments = {
            "ids": list(events),
            "types": [kind for kind, _, _ in events.values()],
            "bodies": [body for _, body, _ in events.values()],
            "ticks": [tick for _, _, tick in events.values()],
            "d_ids": [event_id for event_id, _ in rows],
            "d_handlers": [name for _, name in rows],
            "d_ticks": list(rows.values()),
            "dry": dry_run,
            "by": by,
        }
        found = conn.execute(_RECORD, arguments).fetchall()
        if again:
            found = conn.execute(_RECORDED_BY, arguments).fetchall()
        recorded = {(row[0], row[1]) for row in found}
        if recorded:
            notify(conn)
    answers = []
    for event, handlers in batch:
        todo = []
        for name in handlers:
            key = (event.event_id, name)
            if key in recorded:
                recorded.discard(key)  # once: a repeat later in the batch was not recorded
                todo.append(name)
        answers.append(todo)
    return answers


def notify(conn: Connection[Any]) -> None:
    """Wake the workers that listen, when this transaction commits (one notification, however many calls)."""
    conn.execute(f"NOTIFY {CHANNEL}")


# -- claiming ------------------------------------------------------------------------------

# The handler's due, unleased deliveries in due order, locked without waiting for the rows another
# claim is taking (SKIP LOCKED), then leased to this owner. A lease that ran out is anyone's.
_CLAIM: Final = f"""
WITH due AS (
    SELECT event_id, handler FROM loopai_outbox_deliveries
    WHERE handler = %(handler)s AND status = 'pending' AND next_attempt_at <= {_AT}
        AND (lease_until IS NULL OR lease_until <= {_AT})
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE loopai_outbox_deliveries AS d
SET lease_until = {_AT} + make_interval(secs => %(lease)s), lease_owner = %(owner)s
FROM due, loopai_outbox_events AS e
WHERE d.event_id = due.event_id AND d.handler = due.handler AND e.event_id = d.event_id
RETURNING d.event_id, d.attempts, d.dry_run, e.body, d.next_attempt_at
"""


def claim(
    conn: Connection[Any], handler: str, limit: int, lease: float, owner: str, at: float | None = None
) -> list[Due]:
    """Lease up to ``limit`` of ``handler``'s due deliveries to ``owner`` for ``lease`` seconds, oldest first."""
    rows = conn.execute(
        _CLAIM, {"handler": handler, "limit": limit, "lease": lease, "owner": owner, "at": at}
    ).fetchall()
    rows.sort(key=lambda row: row[4])  # RETURNING keeps no order
    return [Due(row[0], row[1], row[2], row[3]) for row in rows]


_NEXT_DUE: Final = """
SELECT extract(epoch FROM min(first.at) - statement_timestamp())::float8
FROM unnest(%s::text[]) AS h(name), LATERAL (
    SELECT next_attempt_at AS at FROM loopai_outbox_deliveries
    WHERE handler = h.name AND status = 'pending' AND (lease_until IS NULL OR lease_until <= statement_timestamp())
    ORDER BY next_attempt_at LIMIT 1
) AS first
"""


def next_due(conn: Connection[Any], handlers: Sequence[str]) -> float | None:
    """Seconds from now until the earliest unleased pending delivery of ``handlers`` is due (negative:
    overdue), or None. One look at the index per handler, however long the backlog."""
    row = conn.execute(_NEXT_DUE, [list(handlers)]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


# -- settling ------------------------------------------------------------------------------

_UNLEASED: Final = "lease_until = NULL, lease_owner = NULL"
_MINE: Final = "d.status <> 'delivered' AND (d.lease_owner = %(owner)s OR d.lease_owner IS NULL)"
"""Guards every outcome but delivered: a delivery another worker took over after this one's lease ran
out is that worker's now, and one marked delivered stays so."""

_DELIVERED: Final = f"""
UPDATE loopai_outbox_deliveries AS d
SET status = 'delivered', attempts = s.attempts, last_error = NULL, updated_at = statement_timestamp(), {_UNLEASED}
FROM unnest(%(ids)b::uuid[], %(handlers)b::text[], %(attempts)b::int[]) AS s(event_id, handler, attempts)
WHERE d.event_id = s.event_id AND d.handler = s.handler
"""
_RETRY: Final = f"""
UPDATE loopai_outbox_deliveries AS d
SET attempts = s.attempts, last_error = s.error, updated_at = statement_timestamp(),
    next_attempt_at = statement_timestamp() + make_interval(secs => s.delay), {_UNLEASED}
FROM unnest(%(ids)b::uuid[], %(handlers)b::text[], %(attempts)b::int[], %(errors)b::text[], %(delays)b::float8[])
    AS s(event_id, handler, attempts, error, delay)
WHERE d.event_id = s.event_id AND d.handler = s.handler AND {_MINE}
"""
_DEAD: Final = f"""
UPDATE loopai_outbox_deliveries AS d
SET status = 'dead', attempts = s.attempts, last_error = s.error, updated_at = statement_timestamp(), {_UNLEASED}
FROM unnest(%(ids)b::uuid[], %(handlers)b::text[], %(attempts)b::int[], %(errors)b::text[])
    AS s(event_id, handler, attempts, error)
WHERE d.event_id = s.event_id AND d.handler = s.handler AND {_MINE}
"""


def settle(conn: Connection[Any], outcomes: Iterable[Settled], owner: str) -> None:
    """Write attempts' outcomes: retries, then dead letters, then delivered marks (a delivery
    delivered after all is delivered, whatever was said before)."""
    by_kind: dict[str, list[Settled]] = {"retry": [], "dead": [], "delivered": []}
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome)
    for kind, statement in (("retry", _RETRY), ("dead", _DEAD), ("delivered", _DELIVERED)):
        rows = sorted(by_kind[kind], key=lambda o: (o.event_id, o.handler))
        if rows:
            conn.execute(
                statement,
                {
                    "ids": [o.event_id for o in rows],
                    "handlers": [o.handler for o in rows],
                    "attempts": [o.attempts for o in rows],
                    "errors": [o.error for o in rows],
                    "delays": [max(o.delay, 0.0) for o in rows],
                    "owner": owner,
                },
            )


_QUARANTINE: Final = f"""
UPDATE loopai_outbox_deliveries AS d
SET status = 'quarantined', last_error = %(reason)s, updated_at = statement_timestamp(), {_UNLEASED}
WHERE d.event_id = %(id)s AND d.handler = %(handler)s AND d.status <> 'delivered'
"""


def quarantine(conn: Connection[Any], event_id: str | uuid.UUID, handler: str, reason: str) -> None:
    """Set a delivery aside: its stored event cannot be read (``reason``). Never claimed again."""
    conn.execute(_QUARANTINE, {"id": event_id, "handler": handler, "reason": reason})


# -- leases --------------------------------------------------------------------------------

_RENEW: Final = """
UPDATE loopai_outbox_deliveries AS d SET lease_until = statement_timestamp() + make_interval(secs => %(lease)s)
FROM unnest(%(ids)b::uuid[], %(handlers)b::text[]) AS h(event_id, handler)
WHERE d.event_id = h.event_id AND d.handler = h.handler AND d.lease_owner = %(owner)s AND d.status = 'pending'
"""
_RELEASE: Final = f"""
UPDATE loopai_outbox_deliveries AS d SET {_UNLEASED}
FROM unnest(%(ids)b::uuid[], %(handlers)b::text[]) AS h(event_id, handler)
WHERE d.event_id = h.event_id AND d.handler = h.handler AND d.lease_owner = %(owner)s AND d.status = 'pending'
"""


def keys_of(deliveries: Iterable[Key]) -> tuple[list[str], list[str]]:
    """Event ids and handlers of ``deliveries``, in key order (as :func:`renew` and :func:`release` take them)."""
    ordered = sorted(set(deliveries))
    return [event_id for event_id, _ in ordered], [handler for _, handler in ordered]


def renew(conn: Connection[Any], deliveries: Iterable[Key], owner: str, lease: float) -> int:
    """Extend ``owner``'s leases of ``deliveries`` by ``lease`` seconds from now; how many it still held."""
    ids, handlers = keys_of(deliveries)
    if not ids:
        return 0
    done = conn.execute(_RENEW, {"ids": ids, "handlers": handlers, "owner": owner, "lease": lease})
    return done.rowcount


def release(conn: Connection[Any], deliveries: Iterable[Key], owner: str) -> int:
    """End ``owner``'s leases of these pending ``deliveries``, untried: due as they were, for anyone."""
    ids, handlers = keys_of(deliveries)
    if not ids:
        return 0
    done = conn.execute(_RELEASE, {"ids": ids, "handlers": handlers, "owner": owner})
    if done.rowcount:
        notify(conn)
    return done.rowcount
