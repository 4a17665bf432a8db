"""``LISTEN`` on a connection of its own: other processes' ``NOTIFY`` wakes the functions subscribed here.

Best effort by design: a notification only shortens a wait, and whoever waits also looks on a
timer (the delivery workers poll every ``[delivery] poll_interval``). So a connection that is
lost is opened again with backoff, without limit until the listener is closed, and every
subscriber is woken once it is back: what was said meanwhile was not heard.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from loopai._log import logger
from loopai.database._errors import DatabaseError

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["Listener"]

log = logger("loopai.database")

_FIRST_RETRY: Final = 0.1
"""Seconds before opening a lost listening connection again; doubled after each failure, up to _LONGEST_RETRY."""
_LONGEST_RETRY: Final = 5.0
_LOOK: Final = 0.25
"""Seconds between two looks at whether to stop, while no notification comes."""


class Listener:
    """One channel of one database, listened to by a daemon thread from the first subscriber on.

    ``connect`` opens an autocommit connection of its own (raising a :class:`DatabaseError` when
    it cannot); ``describe(error, what)`` says in one line, without the password, what went wrong.
    """

    def __init__(
        self,
        channel: str,
        connect: Callable[[], Connection[Any]],
        describe: Callable[[BaseException, str], str],
    ) -> None:
        if not channel.isidentifier():
            raise ValueError(f"a channel is a plain SQL identifier, not {channel!r}")
        self._channel = channel
        self._connect = connect
        self._describe = describe
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` on each notification (and when listening (re)starts); returns the unsubscriber.
        The first subscriber starts the listening thread; it runs until :meth:`close`."""
        with self._lock:
            if self._stop.is_set():
                raise DatabaseError(f"listening to {self._channel}: the database was closed")
            self._subscribers.append(wake)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"loopai-listen-{self._channel}", daemon=True)
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                if wake in self._subscribers:
                    self._subscribers.remove(wake)

        return unsubscribe

    def close(self) -> None:
        """Stop listening for good (the thread ends within a fraction of a second)."""
        with self._lock:
            self._stop.set()
            self._subscribers.clear()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2 * _LOOK + 1.0)

    # -- the listening thread ------------------------------------------------------------

    def _wake_all(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for wake in subscribers:
            try:
                wake()
            except Exception:  # a subscriber's bug must not deafen the others
                log.exception("waking a listener of %s failed", self._channel)

    def _run(self) -> None:
        delay = _FIRST_RETRY
        warned = False
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except DatabaseError as exc:
                if not warned:
                    warned = True
                    log.warning("%s; listening again when it is back (polling meanwhile)", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, _LONGEST_RETRY)
                continue
            if warned:
                log.info("listening to %s again", self._channel)
            warned, delay = False, _FIRST_RETRY
            try:
                self._listen(conn)
            except Exception as exc:  # noqa: BLE001 - a lost connection, whatever the driver calls it
                warned = True
                log.warning("%s; polling until it is back", self._describe(exc, "stopped listening"))
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection may fail: it is gone anyway
                    conn.close()

    def _listen(self, conn: Connection[Any]) -> None:
        conn.execute(f"LISTEN {self._channel}")
        self._wake_all()  # what was recorded while nobody listened
        while not self._stop.is_set():
            # One notification at a time, so that each wakes at once; queued ones come back at once.
            if any(True for _ in conn.notifies(timeout=_LOOK, stop_after=1)):
                self._wake_all()
            if conn.closed or conn.broken:
                raise ConnectionError("the listening connection was closed")
