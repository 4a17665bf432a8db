"""A shared PostgreSQL database: a small pool of connections, one transaction per call, retries while it is away."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from loopai._log import logger
from loopai.database._driver import driver
from loopai.database._errors import DatabaseError, DatabaseUnavailable
from loopai.database._listen import Listener
from loopai.database._migrations import Migration, SchemaStatus, require_current, schema_status, upgrade
from loopai.database._refusals import advice
from loopai.database._url import DatabaseUrl

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["Database"]

log = logger("loopai.database")

T = TypeVar("T")

FIRST_RETRY: Final = 0.05
"""Seconds before the first retry while the database is away; doubled after each, up to LONGEST_RETRY."""
LONGEST_RETRY: Final = 2.0
_STEP: Final = 0.05
"""Seconds between two looks at :meth:`Database.stop_waiting` while waiting to try again."""
POOL_WAIT: Final = 1.0
"""Seconds to wait for a pooled connection before trying one of our own."""
CONNECT_TIMEOUT: Final = 10
"""Seconds one connection attempt may take (libpq ``connect_timeout``)."""


def _call(operation: Callable[[Connection[Any]], T], conn: Connection[Any], autocommit: bool) -> T:
    if not autocommit:
        return operation(conn)
    conn.autocommit = True
    try:
        return operation(conn)
    finally:
        if not conn.closed:
            conn.autocommit = False  # as the pool lends it to the next caller


class Database:
    """The PostgreSQL database at ``url``, shared by every loopai process that names it.

    Nothing connects until :meth:`open`, which fails fast: a database that cannot be reached at
    start is a :class:`DatabaseUnavailable` naming it (without its password). Then :meth:`run`
    calls an operation in a transaction on a pooled connection and, while the database cannot
    be reached (a restart, a failover), retries it with backoff until ``unavailable_timeout``
    seconds have passed since the first failure; :meth:`listen` wakes a function on each
    ``NOTIFY`` of a channel. Safe to use from many threads.

    ``role`` names the database in messages (``state database``, ``outbox database``) and
    ``setting`` says where it is configured, so that an operator knows what to fix. Every error
    of the server or the driver leaves here as a :class:`DatabaseError` of one line: a refusal an
    operator fixes (a privilege, a table of another application) says how (:mod:`._refusals`).
    """

    def __init__(
        self,
        url: str | DatabaseUrl,
        *,
        unavailable_timeout: float = 30.0,
        max_connections: int = 4,
        name: str = "loopai",
        role: str = "state database",
        setting: str = "[state] url or LOOPAI_STATE_URL",
    ) -> None:
        self.url = url if isinstance(url, DatabaseUrl) else DatabaseUrl(url)
        self.unavailable_timeout = unavailable_timeout
        self.role = role
        self.setting = setting
        self._max_connections = max_connections
        self._name = name
        self._lock = threading.Lock()
        self._pool: Any = None
        self._listeners: dict[str, Listener] = {}
        self._closed = False
        self._away_since: float | None = None  # when an outage was first met (monotonic), while it lasts
        self._given_up = False  # set by stop_waiting(): an outage is waited for no more
        self._user: str | None = None  # the role of the last connection made, as advice names it

    def __repr__(self) -> str:
        return f"Database({self.url.shown!r})"

    # -- opening and closing ---------------------------------------------------------------

    def open(self, *, require_schema: bool = True) -> None:
        """Connect once (failing fast), check the schema version, then start the pool; later calls do nothing.

        Raises :class:`DriverMissing` without the extra, :class:`DatabaseUnavailable` when the
        database cannot be reached, :class:`SchemaVersionError` (with ``require_schema``) when
        its schema is not the version this loopai-core knows.
        """
        with self._lock:
            if self._pool is not None or self._closed:
                return
            _, pool_module = driver(self.url.shown)
            status = self.status()
            if require_schema:
                require_current(status, f"{self.role} {self.url.shown}", self.setting)
            self._pool = pool_module.ConnectionPool(
                self.url.conninfo,
                kwargs=self._arguments(),
                min_size=1,
                max_size=self._max_connections,
                name=self._name,
                open=False,
                # The pool's own reconnection keeps trying for as long as we are willing to wait.
                reconnect_timeout=max(self.unavailable_timeout, 60.0),
            )
            self._pool.open(wait=False)
            log.debug("opened %s", self.url.shown)

    @contextlib.contextmanager
    def connect(self, doing: Callable[[], str] = lambda: "an operation") -> Iterator[Connection[Any]]:
        """One connection outside the pool, in a transaction committed at the end (rolled back on error).

        An error of the driver or the server becomes a :class:`DatabaseError` (a lost connection:
        :class:`DatabaseUnavailable`); ``doing()`` says what was being done when the server refused
        a statement (``migration 0001 task_state``)."""
        psycopg, _ = driver(self.url.shown)
        try:
            conn = psycopg.connect(self.url.conninfo, **self._arguments())
        except psycopg.Error as exc:
            raise self._failure(exc, "cannot be reached") from None
        self._user = conn.info.user
        try:
            with conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise self._failure(exc, "was lost") from None
        except psycopg.Error as exc:
            raise self._failure(exc, f"refused {doing()}") from None

    def status(self) -> SchemaStatus:
        """Where the schema stands, read on a connection of its own (``loopai db status``)."""
        with self.connect(lambda: "reading the schema version") as conn:
            return schema_status(conn)

    def upgrade(self) -> list[Migration]:
        """Apply the pending migrations in one transaction, on a connection of its own (``loopai db
        upgrade``); the ones applied, in order. Raises :class:`SchemaVersionError` when the schema
        is newer than this loopai-core, and a :class:`DatabaseError` naming the step the server
        refused (a migration) and what to do about it."""
        step = ["starting"]

        def applying(doing: str) -> None:
            step[0] = doing

        with self.connect(lambda: f"the upgrade ({step[0]})") as conn:
            return upgrade(conn, self.url.shown, applying)

    def dedicated(self) -> Connection[Any]:
        """A connection of its own, outside the pool, in autocommit mode (the caller closes it):
        for work that holds a connection for long, such as ``LISTEN``. Raises
        :class:`DatabaseUnavailable` when the database cannot be reached."""
        psycopg, _ = driver(self.url.shown)
        try:
            conn: Connection[Any] = psycopg.connect(self.url.conninfo, autocommit=True, **self._arguments())
        except psycopg.Error as exc:
            raise self._failure(exc, "cannot be reached") from None
        return conn

    def listen(self, channel: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from a listening thread; it must not block) on each ``NOTIFY`` of ``channel``,
        and once each time listening (re)starts; the function returned stops it. Best effort: one
        connection per channel, reconnected with backoff while the database is away."""
        with self._lock:
            if self._closed:
                raise DatabaseError(f"{self.role} {self.url.shown}: used after it was closed")
            listener = self._listeners.get(channel)
            if listener is None:
                listener = self._listeners[channel] = Listener(channel, self.dedicated, self.describe)
        return listener.subscribe(wake)

    def close(self) -> None:
        """Stop listening and close the pool's connections (idempotent)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            listeners, self._listeners = list(self._listeners.values()), {}
        for listener in listeners:
            listener.close()
        if pool is not None:
            pool.close()

    # -- running operations ----------------------------------------------------------------

    def stop_waiting(self) -> None:
        """Wait no more for this database while it is away: a call retrying now gives up at once, and
        every later one tries once, raising :class:`DatabaseUnavailable` when it cannot reach it. For a
        process told to stop now (a second Ctrl-C), which must not sit out the rest of
        ``unavailable_timeout``: whoever meant to write something says what was not written."""
        self._given_up = True  # a plain flag: safe to set from a signal handler

    def run(self, operation: Callable[[Connection[Any]], T], *, autocommit: bool = False) -> T:
        """``operation(conn)`` in one transaction (committed when it returns); its result.

        With ``autocommit`` each statement commits on its own: one round trip a statement instead
        of three (``BEGIN``, it, ``COMMIT``), for an operation of one statement or of statements
        that need no transaction in common.

        While the database cannot be reached, the operation is retried (its transaction was
        rolled back, so it must be safe to call again) after 50 ms, doubling up to 2 s, until
        ``unavailable_timeout`` seconds have passed since the outage began (whichever call met it
        first): then :class:`DatabaseUnavailable`. So a process waits for the database once, not
        once per call: past the timeout, each call tries once and fails at once, until one succeeds.
        A transaction the server rolled back (a deadlock, a serialization failure) is a
        :class:`DatabaseUnavailable` too. Any other error the server or the driver raises becomes a
        :class:`DatabaseError` naming the database, with its SQLSTATE in ``sqlstate``.
        """
        self.open()
        psycopg, pool_module = driver(self.url.shown)
        unreachable = (psycopg.OperationalError, psycopg.InterfaceError)
        deadline = time.monotonic() + self.unavailable_timeout  # waiting for a connection counts too
        delay = FIRST_RETRY
        while True:
            pool = self._pool
            if pool is None:
                raise DatabaseError(f"{self.role} {self.url.shown}: used after it was closed")
            try:
                try:
                    wait = 0.01 if self._given_up else min(max(deadline - time.monotonic(), 0.01), POOL_WAIT)
                    with pool.connection(timeout=wait) as conn:
                        result = _call(operation, conn, autocommit)
                except pool_module.PoolTimeout:
                    # The pool reconnects on its own schedule (backing off up to many seconds after an
                    # outage): a connection of our own tells at once whether the server is back.
                    with psycopg.connect(self.url.conninfo, **self._arguments()) as conn:
                        result = _call(operation, conn, autocommit)
                if self._away_since is not None:
                    self._back()
                return result
            except unreachable as exc:
                now = time.monotonic()
                deadline = min(deadline, self._away(exc) + self.unavailable_timeout)
                if self._given_up:
                    raise self._failure(exc, "is unreachable, and no longer waited for (stopping)") from None
                if now >= deadline:
                    raise self._failure(
                        exc, f"has been unreachable for {self.unavailable_timeout:g} s ([state] unavailable_timeout)"
                    ) from None
                self._pause(min(delay * random.uniform(0.8, 1.2), max(deadline - now, 0.0)))
                delay = min(delay * 2, LONGEST_RETRY)
            except psycopg.Error as exc:
                raise self._failure(exc, "refused an operation") from None

    # -- helpers ----------------------------------------------------------------------------

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` before the next try, in short steps: :meth:`stop_waiting` ends it."""
        until = time.monotonic() + seconds
        while not self._given_up and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, _STEP))

    def _away(self, error: BaseException) -> float:
        """When the outage began (``time.monotonic()``); said once per outage, by whichever call
        meets it first."""
        with self._lock:
            if self._away_since is not None:
                return self._away_since
            since = self._away_since = time.monotonic()
        retrying = f"retrying for up to {self.unavailable_timeout:.0f} s"
        log.warning("%s; %s", self.describe(error, "is unreachable"), retrying)
        return since

    def _back(self) -> None:
        """Say that the outage is over, and how long it lasted."""
        with self._lock:
            since, self._away_since = self._away_since, None
        if since is not None:
            away = time.monotonic() - since
            log.warning("%s %s is reachable again, after %.1f s", self.role, self.url.shown, away)

    def _arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **self.url.connect_arguments()}
        if "application_name" not in self.url.conninfo:
            arguments["application_name"] = self._name  # how operators find us in pg_stat_activity
        return arguments

    def describe(self, error: BaseException, what: str) -> str:
        """One line for people: this database (without its password), ``what`` happened, and the
        driver's reason (the server's message without the statement it quotes; the password
        scrubbed from it, should it appear)."""
        return f"{self.role} {self.url.shown} {what}: {self._reason(error)}"

    def _reason(self, error: BaseException) -> str:
        diagnostic = getattr(error, "diag", None)  # a server's error: its message and detail, not the SQL quoted
        primary = getattr(diagnostic, "message_primary", None)
        detail = getattr(diagnostic, "message_detail", None)
        text = (f"{primary} ({detail})" if detail else primary) if primary else str(error)
        return " ".join(self.url.scrub(text).split()) or type(error).__name__

    def _failure(self, error: BaseException, what: str) -> DatabaseError:
        """``error`` (the driver's) as the :class:`DatabaseError` that says it: the one place where
        they are translated, with what to do about a refusal an operator can fix."""
        message = self.describe(error, what)
        sqlstate = getattr(error, "sqlstate", None)
        fix = advice(sqlstate, self._reason(error), self._user, self.setting)
        if fix is not None:
            message += f"; {fix}"
        elif what == "cannot be reached":
            message += f" (check {self.setting}, and that the server is running and accepts you)"
        psycopg, _ = driver(self.url.shown)
        if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
            return DatabaseUnavailable(message)
        return DatabaseError(message, sqlstate)
