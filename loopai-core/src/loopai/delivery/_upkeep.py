"""What a PostgreSQL outbox writes in the background: delivered marks in groups, and its leases renewed.

Delivered marks (the common outcome) are written in groups, one transaction each, at most
:data:`SETTLE_DELAY` after the first of a group (sooner once :data:`SETTLE_BATCH` wait), and before
any read or close; a killed process may deliver its last few again (at least once), never lose
one. A delivery stays *held* (its lease renewed) from its claim until its outcome is written or it
is released: so a worker that lives keeps what it took, however long the handler or an
outage of the database takes, and one that is killed loses its leases within ``lease`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from loopai._log import logger
from loopai.database import DatabaseError, DatabaseUnavailable
from loopai.delivery._pool import started
from loopai.delivery._postgres_sql import Key, Settled, renew, settle

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["SETTLE_BATCH", "SETTLE_DELAY", "Upkeep"]

log = logger("loopai.delivery")

T = TypeVar("T")
Run = Callable[[Callable[["Connection[Any]"], T]], T]

SETTLE_BATCH: Final = 64
"""Outcomes that make a group's write happen at once."""
SETTLE_DELAY: Final = 0.05
"""Seconds an outcome may wait for its group."""
RENEW_SHARE: Final = 3
"""Leases are renewed every ``lease / RENEW_SHARE`` seconds: twice more before one could run out."""
_PAUSE: Final = 1.0
"""Seconds the upkeep waits after a write that failed (the database retried it already)."""


class Upkeep:
    """Held deliveries and outcomes not written yet, for the outbox of ``owner``; one daemon thread
    (started by the first claim) writes them. ``run`` runs an operation on the outbox's database
    (retrying while it is away; raising :class:`loopai.database.DatabaseError` past that)."""

    def __init__(self, run: Run[Any], owner: str) -> None:
        self._run = run
        self._owner = owner
        self._cond = threading.Condition()
        self._held: set[Key] = set()
        self._waiting: list[Settled] = []
        self._since = 0.0  # when the oldest waiting outcome came (monotonic)
        self._lease = 0.0
        self._renewed = 0.0
        self._writing = threading.Lock()  # one group at a time, in order
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._paused_until = 0.0  # after a failed write: not before then (monotonic)

    # -- what the outbox tells --------------------------------------------------------------

    def hold(self, deliveries: Iterable[Key], lease: float) -> None:
        """These were just claimed for ``lease`` seconds: keep them leased until settled or released."""
        with self._cond:
            self._held.update(deliveries)
            if lease != self._lease:
                self._lease, self._renewed = lease, time.monotonic()
            if self._thread is None and not self._stopped:
                thread = threading.Thread(target=self._loop, name="loopai-outbox-upkeep", daemon=True)
                if not started(thread):  # the interpreter shuts down: leases run out instead of renewed
                    return
                self._thread = thread

    def settled(self, outcome: Settled) -> None:
        """An attempt's outcome (a delivered mark), to write with its group."""
        with self._cond:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting.append(outcome)
            if len(self._waiting) in (1, SETTLE_BATCH):
                self._cond.notify_all()

    def let_go(self, deliveries: Iterable[Key]) -> None:
        """These are no longer held (released, or quarantined): their leases are not renewed."""
        with self._cond:
            self._held.difference_update(deliveries)

    def held(self) -> set[Key]:
        """What this outbox holds now (claimed, outcome not written)."""
        with self._cond:
            return set(self._held)

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the waiting outcomes now (raises what the database raised; they wait for the next try)."""
        with self._writing:
            with self._cond:
                taken, self._waiting = self._waiting, []
            if not taken:
                return
            try:
                self._run(lambda conn: settle(conn, taken, self._owner))
            except BaseException:
                with self._cond:
                    self._waiting[:0] = taken
                raise
            with self._cond:
                self._held.difference_update((o.event_id, o.handler) for o in taken)

    def _renew(self) -> None:
        with self._cond:
            held, lease = list(self._held), self._lease
            self._renewed = time.monotonic()
        if held:
            self._run(lambda conn: renew(conn, held, self._owner, lease))

    def stop(self) -> None:
        """Stop the thread, then write what waits (raising what the database raised)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    def _loop(self) -> None:
        while True:
            with self._cond:
                wait = self._wait()
                while wait > 0 and not self._stopped:
                    self._cond.wait(wait)
                    wait = self._wait()
                if self._stopped:
                    return
                flush = bool(self._waiting) and self._due_to_flush()
            try:
                if flush:
                    self.flush()
                if self._due_to_renew():
                    self._renew()
            except DatabaseUnavailable as exc:  # the database said the outage once; kept for close()
                self._pause()
                log.debug("%s; the outcomes of %d deliveries wait to be written", exc, len(self._waiting))
            except DatabaseError as exc:  # kept: written with the next group, or by close()
                self._pause()
                log.warning("%s; the outcomes of %d deliveries wait to be written", exc, len(self._waiting))
            except Exception:  # a bug must not stop the upkeep silently
                self._pause()
                log.exception("writing delivery outcomes failed")

    def _pause(self) -> None:
        with self._cond:
            self._paused_until = time.monotonic() + _PAUSE

    def _wait(self) -> float:
        """Seconds until there is something to do (the caller holds the lock)."""
        now = time.monotonic()
        if now < self._paused_until:
            return self._paused_until - now
        waits = [self._lease / RENEW_SHARE - (now - self._renewed) if self._held and self._lease else 3600.0]
        if self._waiting:
            waits.append(0.0 if len(self._waiting) >= SETTLE_BATCH else SETTLE_DELAY - (now - self._since))
        return max(min(waits), 0.0)

    def _due_to_flush(self) -> bool:
        return len(self._waiting) >= SETTLE_BATCH or time.monotonic() - self._since >= SETTLE_DELAY

    def _due_to_renew(self) -> bool:
        with self._cond:
            return bool(self._held) and time.monotonic() - self._renewed >= self._lease / RENEW_SHARE
