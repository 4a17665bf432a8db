"""The shared outbox: events and per-handler deliveries in a PostgreSQL database that every replica names.

What it promises beyond :class:`loopai.Outbox` (see docs/REPLICAS.md for the whole story):

- **One worker at a time per delivery, cluster-wide.** A claim takes due rows with
  ``FOR UPDATE SKIP LOCKED`` (claimers never wait for each other) and leases them to this outbox;
  the lease is renewed while this process lives (:mod:`._upkeep`), so a slow handler keeps what it
  took, and a process that is killed loses its leases within ``lease`` seconds: then any worker
  takes them over, and the receiver sees the same ``webhook-id`` again (at least once).
- **Writes in groups.** ``record_many`` stores many events in one statement; delivered marks
  are written in groups, one transaction each (failures at once: their retry is due soon).
- **Woken, not only polling.** Recording notifies a channel at commit; :meth:`listen` wakes the
  workers of every process at once, and they still poll as the fallback.
- **A restart of the database is ridden out**: every call retries with backoff for up to
  ``unavailable_timeout`` seconds (``[state] unavailable_timeout``), then raises
  :class:`loopai.OutboxError` naming the database (never its password). What was recorded stays.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from loopai._errors import OutboxError
from loopai._log import logger
from loopai._models import WebhookEvent
from loopai.database import Database, DatabaseError, DatabaseUrl
from loopai.delivery import _postgres_admin as admin
from loopai.delivery import _postgres_sql as sql
from loopai.delivery._leases import owner_token
from loopai.delivery._outbox import Claim, DeliveryRecord, DeliveryStatus, Requeued
from loopai.delivery._unreadable import read_event
from loopai.delivery._upkeep import Upkeep

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["SETTING", "PostgresOutbox"]

log = logger("loopai.delivery")

T = TypeVar("T")

SETTING: Final = "[delivery] outbox, LOOPAI_OUTBOX or --outbox"
"""Where an outbox database of its own is configured (messages say it)."""
_FOREIGN_KEY: Final = "23503"
"""An event pruned while the same id was recorded again: the recording is tried again, and stores it afresh."""
_RACES: Final = 3


def _close(upkeep: Upkeep, database: Database, owns: bool, owner: str) -> None:
    """Write what waits, hand back what is held, and disconnect a database of our own."""
    try:
        upkeep.stop()
        held = upkeep.held()
        if held:
            database.run(lambda conn: sql.release(conn, held, owner))
    except DatabaseError as exc:  # their leases run out instead; delivered ones may go out again
        log.warning("%s; %d deliveries of this process are left to their leases", exc, len(upkeep.held()))
    finally:
        if owns:
            database.close()


class PostgresOutbox:
    """A :class:`loopai.Outbox` in PostgreSQL, shared by every process that names the same database.

    ``url`` is a ``postgresql://`` URL (its password never printed: :class:`loopai.database.DatabaseUrl`)
    or a :class:`~loopai.database.Database` to share (the state store's: then a breach and its flag
    can be written in one transaction, :meth:`record_in`). Nothing connects until :meth:`open` or
    the first call; the schema must be at the version this loopai-core knows (``loopai db upgrade``).
    Safe to share between threads.
    """

    default_lease: float = 30.0
    """Seconds of a lease when ``[delivery] lease`` is not set: renewed while the worker lives, so a
    short one only bounds how long a killed worker's deliveries wait."""

    def __init__(self, url: str | DatabaseUrl | Database, *, unavailable_timeout: float = 30.0) -> None:
        if isinstance(url, Database):
            self.database, owns = url, False
        else:
            self.database = Database(
                url, unavailable_timeout=unavailable_timeout, role="outbox database", setting=SETTING
            )
            owns = True
        self.path = self.database.url.shown
        """The database's URL without its password, as messages name this outbox."""
        self._owner = owner_token()
        self._upkeep = Upkeep(functools.partial(self.database.run, autocommit=True), self._owner)
        self._closed = False
        self._lock = threading.Lock()
        # An outbox never closed still writes its outcomes and hands its leases back at exit.
        self._finalizer = weakref.finalize(self, _close, self._upkeep, self.database, owns, self._owner)

    def __repr__(self) -> str:
        return f"PostgresOutbox({self.path!r})"

    # -- plumbing -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and check the schema now: a database that cannot be reached, or is not at the
        schema version this loopai-core knows, is a :class:`loopai.ConfigError` naming it (the
        host calls this when it starts; other calls connect on first use)."""
        self.database.open()

    def _run(self, operation: Callable[[Connection[Any]], T], *, alone: bool = True) -> T:
        """``operation``, each statement committed on its own (``alone``: one round trip each), else
        in one transaction; a failure of the database becomes an :class:`OutboxError`."""
        if self._closed:
            raise OutboxError(self.path, f"outbox {self.path}: used after it was closed")
        for race in range(_RACES):
            try:
                return self.database.run(operation, autocommit=alone)
            except DatabaseError as exc:
                if exc.sqlstate == _FOREIGN_KEY and race + 1 < _RACES:
                    continue
                raise OutboxError(self.path, "; ".join(exc.problems)) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _written(self) -> None:
        """Write waiting outcomes before a read, so that it sees them."""
        try:
            self._upkeep.flush()
        except DatabaseError as exc:
            raise OutboxError(self.path, "; ".join(exc.problems)) from None

    def listen(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` whenever any process records deliveries or makes some due now (``NOTIFY``),
        and when listening (re)starts; returns the function that stops it. Best effort: the
        workers poll as well."""
        return self.database.listen(sql.CHANNEL, wake)

    # -- recording ------------------------------------------------------------------------

    def record(self, event: WebhookEvent, handlers: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """Store ``event`` with a pending delivery per handler, due now; the handlers it was recorded for
        (a handler that has a delivery of this event id already is left out, unless that was a dry run's)."""
        return self.record_many([(event, handlers)], dry_run=dry_run)[0]

    def record_many(
        self, batch: Sequence[tuple[WebhookEvent, Sequence[str]]], *, dry_run: bool = False
    ) -> list[list[str]]:
        """:meth:`record` for every event of ``batch`` in one transaction (one statement)."""
        by, tries = uuid.uuid4(), 0

        def write(conn: Connection[Any]) -> list[list[str]]:
            nonlocal tries
            tries += 1  # a retry recognises what an earlier try committed before its reply was lost
            return sql.record(conn, batch, dry_run=dry_run, by=by, again=tries > 1)

        return self._run(write)

    def record_in(self, conn: Connection[Any], batch: Sequence[tuple[WebhookEvent, Sequence[str]]]) -> list[list[str]]:
        """:meth:`record_many` in the caller's transaction on this outbox's database (``conn``): what
        it records commits with the caller's other writes, or not at all. Workers are woken at commit."""
        return sql.record(conn, batch)

    # -- claiming and settling --------------------------------------------------------------

    def claim(self, handler: str, limit: int, *, lease: float, now: float | None = None) -> list[Claim]:
        """Take up to ``limit`` due deliveries of ``handler``, oldest first, leased for ``lease`` seconds
        (renewed while this outbox is open). A row whose event cannot be read back is quarantined with
        the reason instead, in the same transaction."""

        def take(conn: Connection[Any]) -> list[Claim]:
            claims = []
            for due in sql.claim(conn, handler, limit, lease, self._owner, now):
                event = read_event(due.body)
                if isinstance(event, str):
                    sql.quarantine(conn, due.event_id, handler, event)
                else:
                    claims.append(Claim(event, handler, due.attempts, due.dry_run))
            return claims

        claims = self._run(take)
        if claims:
            self._upkeep.hold(((str(c.event.event_id), handler) for c in claims), lease)
        return claims

    def next_due(self, handlers: Collection[str]) -> float | None:
        """When the earliest unleased pending delivery of ``handlers`` is due (Unix seconds, this
        machine's clock), or None."""
        if not handlers:
            return None
        names = sorted(handlers)
        seconds = self._run(lambda conn: sql.next_due(conn, names))
        return None if seconds is None else time.time() + seconds

    def delivered(self, event_id: str, handler: str, attempts: int) -> None:
        """The handler took the event after ``attempts`` tries: written with its group (within 50 ms)."""
        self._upkeep.settled(sql.Settled("delivered", event_id, handler, attempts))

    def retry(self, event_id: str, handler: str, attempts: int, error: str, at: float) -> None:
        """Attempt number ``attempts`` failed with ``error``: pending again, due at ``at`` (unless it was
        delivered meanwhile, or another worker took it over after this one's lease ran out). Written
        now: the workers look for what is due next as soon as this returns."""
        delay = at - time.time()  # applied to the database's clock: replicas' clocks may disagree
        self._settle(sql.Settled("retry", event_id, handler, attempts, error, delay))

    def dead(self, event_id: str, handler: str, attempts: int, error: str) -> None:
        """The handler gave up after ``attempts`` tries; ``error`` is kept (a delivered one stays delivered)."""
        self._settle(sql.Settled("dead", event_id, handler, attempts, error))

    def _settle(self, outcome: sql.Settled) -> None:
        self._run(lambda conn: sql.settle(conn, [outcome], self._owner))
        self._upkeep.let_go([(outcome.event_id, outcome.handler)])

    def quarantine(self, event_id: str, handler: str, reason: str) -> None:
        """Set a delivery aside with ``reason``: listed, never claimed."""
        self._run(lambda conn: sql.quarantine(conn, event_id, handler, reason))
        self._upkeep.let_go([(event_id, handler)])

    def release(self, deliveries: Iterable[tuple[str, str]]) -> None:
        """Hand these claimed deliveries back untried: due as they were, for any worker (who is woken)."""
        pairs = list(deliveries)
        if pairs:
            self._run(lambda conn: sql.release(conn, pairs, self._owner))
            self._upkeep.let_go(pairs)

    # -- reading and housekeeping -------------------------------------------------------------

    def deliveries(
        self, status: DeliveryStatus | None = None, event_ids: Iterable[str] | None = None
    ) -> list[DeliveryRecord]:
        """Delivery records, oldest first, optionally of one status and/or some events."""
        ids = admin.uuids(event_ids) if event_ids is not None else None
        self._written()
        return self._run(lambda conn: admin.deliveries(conn, status, ids))

    def requeue(self, event_ids: Iterable[str] | None = None, *, status: Requeued = "dead") -> int:
        """Make the deliveries of ``status`` (dead, or quarantined) pending and due now (all, or those of
        ``event_ids``); how many."""
        ids = admin.uuids(event_ids) if event_ids is not None else None
        self._written()
        return self._run(lambda conn: admin.requeue(conn, ids, status))

    def due_now(self, handlers: Collection[str] | None = None) -> int:
        """Make every pending delivery (of ``handlers``, else all) due now; how many were scheduled later."""
        return self._run(lambda conn: admin.due_now(conn, handlers))

    def prune(self, older_than: float, *, dead: bool = False, now: float | None = None) -> tuple[int, int]:
        """Remove finished deliveries last updated more than ``older_than`` seconds ago (with ``dead``,
        dead and quarantined ones too; pending ones never), and the events left without any.

        Works in batches of 5,000 deliveries, one transaction each, so that recording and claiming
        in other processes go on meanwhile. Returns how many deliveries and events were removed.
        """
        self._written()
        deliveries = events = 0
        while True:
            # One transaction a batch: an event goes with its last delivery, or not at all.
            removed, gone = self._run(lambda conn: admin.prune_batch(conn, older_than, dead, now), alone=False)
            deliveries, events = deliveries + removed, events + gone
            if removed < admin.PRUNE_BATCH:
                return deliveries, events

    def counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered, dead and quarantined."""
        self._written()
        return self._run(admin.counts)

    def open_counts(self) -> dict[str, dict[str, int]]:
        """Per handler, how many deliveries are pending, dead and quarantined."""
        self._written()
        return self._run(admin.open_counts)

    def flush(self) -> None:
        """Write attempts' outcomes now (reads and :meth:`close` do it themselves)."""
        self._written()

    def stop_waiting(self) -> None:
        """Wait no more for the database while it is away (:meth:`loopai.database.Database.stop_waiting`):
        for a process told to stop now."""
        self.database.stop_waiting()

    def close(self) -> None:
        """Write what waits, hand back what this outbox still holds, and disconnect a database it
        opened (a shared one is its owner's to close). Idempotent; never raises: outcomes that could
        not be written are said on the ``loopai.delivery`` logger, and their deliveries go out again
        once their leases run out."""
        with self._lock:
            self._closed = True
        self._finalizer()
