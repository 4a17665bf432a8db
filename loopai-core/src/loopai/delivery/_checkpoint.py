"""Copying a SQLite outbox's write-ahead log back into its file, on a thread of its own."""

from __future__ import annotations

import contextlib
import sqlite3
import threading

from loopai.delivery._pool import started

__all__ = ["Checkpointer"]


class Checkpointer:
    """Copies the WAL back into the database file on a thread of its own.

    With ``synchronous=NORMAL`` a checkpoint is where SQLite fsyncs (the WAL, then the
    database file), and SQLite's automatic checkpoint runs in the commit that crosses its
    threshold: every few hundred events, one emit would wait for two fsyncs. The writer
    pokes this thread instead. A busy writer may never leave the WAL fully copied, and
    SQLite rewinds the WAL only then, so the automatic checkpoint stays on as a backstop
    with a higher threshold.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Checkpoint soon (starts the thread on first use)."""
        if self._thread is None:
            thread = threading.Thread(target=self._run, name="loopai-outbox-checkpoint", daemon=True)
            if not started(thread):  # the interpreter shuts down: SQLite checkpoints at close
                return
            self._thread = thread
        self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            return  # the automatic checkpoint does the work
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                # Busy or failing: the next poke, or the automatic checkpoint, tries again.
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        """Let a running checkpoint finish, then end the thread (idempotent)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
