"""The SQLite outbox file: opening it, telling ours from another program's, bringing old ones up to date.

Our files carry SQLite's ``application_id`` (:data:`APPLICATION_ID`) and their format in
``user_version`` (:data:`SCHEMA_VERSION`). A file without the mark is ours only when it holds
exactly the two tables earlier versions made (``events`` and ``deliveries``, with their columns):
then it is adopted, brought up to date in place and marked. Any other file is refused before
anything is written to it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from loopai._errors import ConfigError, OutboxError

__all__ = ["APPLICATION_ID", "FILE_MODE", "FOLDER_MODE", "SCHEMA_VERSION", "failure", "open_database"]

APPLICATION_ID: Final = 0x6C6F6F70
"""``PRAGMA application_id`` of loopai outboxes: the bytes of "loop"."""
SCHEMA_VERSION: Final = 3
"""The outbox format (``PRAGMA user_version``): 0 unmarked files of earlier versions (a rowid or a
WITHOUT ROWID ``deliveries`` table), 3 scheduled retries and leases."""

FILE_MODE: Final = 0o600
"""The mode of a new outbox file: its events may hold personal data, and receivers' error
excerpts. SQLite gives the ``-wal`` and ``-shm`` files the database file's mode."""
FOLDER_MODE: Final = 0o700
"""The mode of the folders loopai makes for its default outbox in the user's state folder."""

_AUTOCHECKPOINT: Final = 10_000
"""SQLite's automatic checkpoint, by the writer itself, only as a backstop (about 40 MB of WAL)."""

_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        event_id   TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        body       TEXT NOT NULL,
        emitted_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS deliveries (
        event_id        TEXT NOT NULL REFERENCES events(event_id),
        handler         TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        dry_run         INTEGER NOT NULL DEFAULT 0,
        updated_at      REAL NOT NULL,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        lease_until     REAL NOT NULL DEFAULT 0,
        lease_owner     TEXT,
        PRIMARY KEY (event_id, handler)
    ) WITHOUT ROWID""",
)
_ADDED_COLUMNS: Final = {
    "dry_run": "INTEGER NOT NULL DEFAULT 0",
    "next_attempt_at": "REAL NOT NULL DEFAULT 0",
    "lease_until": "REAL NOT NULL DEFAULT 0",
    "lease_owner": "TEXT",
}
"""Columns later than the first format, added in place (0: a left-over delivery is due at once)."""
_RETIRED: Final = (
    "DROP TRIGGER IF EXISTS record_delivery",
    "DROP VIEW IF EXISTS recorded",
    "DROP INDEX IF EXISTS deliveries_open",
    "DROP INDEX IF EXISTS deliveries_by_status",
)
# One index, partial: only deliveries not delivered yet, so a delivered mark leaves it and it stays
# small however long the history. It serves claiming (a handler's due deliveries, oldest first), the
# next due time, the per-handler counts and the listing of dead letters.
_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS open_deliveries ON deliveries(handler, status, next_attempt_at) "
    "WHERE status != 'delivered'"
)
_EVENT_COLUMNS: Final = {"event_id", "event_type", "body", "emitted_at"}
_DELIVERY_COLUMNS: Final = {"event_id", "handler", "status", "attempts", "last_error", "updated_at"}
_NOT_A_DATABASE: Final = 26  # SQLITE_NOTADB
_WHERE_TO: Final = "name another file with --outbox, LOOPAI_OUTBOX or [delivery] outbox"


def open_database(path: str) -> sqlite3.Connection:
    """A connection to the outbox at ``path`` (created if missing), marked and in the current format.

    A new file is created readable and writable by this user only (:data:`FILE_MODE`, whatever
    the umask), before SQLite opens it; an existing one keeps its mode (an operator may have
    chosen it). Raises :class:`loopai.ConfigError` naming the file when it cannot be created or
    opened, is not SQLite, is another program's database, or was made by a newer loopai; such a
    file is left as it was.
    """
    if path not in (":memory:", ""):
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError([f"outbox {path}: cannot create its directory: {exc.strerror or exc}"]) from None
        _create_private(path)
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    except sqlite3.Error as exc:
        raise ConfigError([_unopenable(path, exc)]) from None
    try:
        current = _identify(db, path)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (not a power cut) without an fsync per commit.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
        if not current:
            _bring_up_to_date(db, path)
    except sqlite3.Error as exc:
        db.close()  # not a database (or not ours): leave the file as it was
        raise ConfigError([_unopenable(path, exc)]) from None
    except BaseException:
        db.close()
        raise
    return db


def _create_private(path: str) -> None:
    """Create ``path``, empty, with :data:`FILE_MODE` when it does not exist (SQLite reads an empty
    file as a new database). One that exists, or appears meanwhile, is left alone; one that cannot
    be created is for SQLite to fail on, and :func:`_unopenable` to explain."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    except OSError:
        return
    try:
        os.fchmod(fd, FILE_MODE)  # not narrowed by the umask, nor widened: 0600 exactly
    except (OSError, AttributeError):  # AttributeError: Windows, where the mode means little
        pass
    finally:
        os.close(fd)


def _unopenable(path: str, exc: sqlite3.Error) -> str:
    """Why the outbox at ``path`` cannot be used, and what to do: SQLite's own words say little
    ("unable to open database file") when the cause is the file system."""
    target = Path(path)
    folder = target.parent
    if path == ":memory:":
        why = None
    elif target.is_dir():
        why = "it is a directory, not a file"
    elif _read_only(folder) or not os.access(folder, os.W_OK):
        why = f"its folder {folder} cannot be written here (SQLite writes the file, and a -wal and -shm file beside it)"
    elif target.exists() and not os.access(target, os.R_OK | os.W_OK):
        why = "this user may not read and write it"
    else:
        why = None
    if why is None and _not_sqlite(exc):
        return (
            f"outbox {path}: is not a SQLite database ({exc}), so not a loopai outbox; loopai leaves it "
            f"untouched: {_WHERE_TO}"
        )
    if why is None and _full(folder):  # SQLite says "disk I/O error" when it cannot write its -wal and -shm
        return f"outbox {path}: cannot be opened: the disk is full ({exc}); free some space and run again"
    if why is None:
        return f"outbox {path}: cannot be opened as SQLite: {exc}"
    return f"outbox {path}: cannot be opened: {why}; {_WHERE_TO}"


def _full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has no room left (for this user)."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):  # AttributeError: Windows, where SQLite's own words must do
        return False


def _not_sqlite(exc: sqlite3.Error) -> bool:
    """Whether SQLite found no database where the file is (``file is not a database``). Before Python
    3.11 an error has no ``sqlite_errorcode``: then SQLite's own message says it."""
    return getattr(exc, "sqlite_errorcode", None) == _NOT_A_DATABASE or "not a database" in str(exc)


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (root may write anywhere else)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # gone, or not a POSIX system
        return False


def _pragma(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute(f"PRAGMA {name}").fetchone()[0])


def _identify(db: sqlite3.Connection, path: str) -> bool:
    """Whether the file is a current loopai outbox (True), or one to create or adopt (False).
    Anything else is refused with a :class:`ConfigError`; nothing is written to it."""
    mark, version = _pragma(db, "application_id"), _pragma(db, "user_version")
    if mark == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise ConfigError(
                [
                    f"outbox {path}: was written by a newer loopai (outbox format {version}; this one knows "
                    f"up to {SCHEMA_VERSION}): upgrade loopai-core, or {_WHERE_TO}"
                ]
            )
        return version == SCHEMA_VERSION
    if mark != 0:
        raise ConfigError(
            [
                f"outbox {path}: is not a loopai outbox (its SQLite application id is {mark:#x}, another "
                f"program's); loopai leaves it untouched: {_WHERE_TO}"
            ]
        )
    names = {name for (kind, name) in _objects(db) if kind == "table"}
    if not _objects(db) or (names == {"events", "deliveries"} and _has_our_columns(db)):
        return False  # empty, or an outbox of an earlier version: brought up to date and marked
    tables = ", ".join(sorted(names)) or "none"
    raise ConfigError(
        [
            f"outbox {path}: is another program's SQLite database (tables: {tables}), not a loopai "
            f"outbox; loopai leaves it untouched: {_WHERE_TO}"
        ]
    )


def _objects(db: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    return [(str(kind), str(name)) for kind, name in rows]


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def _has_our_columns(db: sqlite3.Connection) -> bool:
    return _columns(db, "events") >= _EVENT_COLUMNS and _columns(db, "deliveries") >= _DELIVERY_COLUMNS


def _bring_up_to_date(db: sqlite3.Connection, path: str) -> None:
    """Create the tables, or add what earlier formats lack, and mark the file: one transaction,
    so that two processes opening one old file at once migrate it once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _identify(db, path):  # looked at again under the write lock
            for statement in _TABLES:
                db.execute(statement)
            have = _columns(db, "deliveries")
            for name, declaration in _ADDED_COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE deliveries ADD COLUMN {name} {declaration}")
            for statement in (*_RETIRED, _INDEX):
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


_DAMAGED: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL: Final = 13  # SQLITE_FULL
_BUSY: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


def failure(path: str, exc: sqlite3.Error) -> OutboxError:
    """What a failing SQLite call on the outbox at ``path`` means for the user, and what to do."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; older ones are told by the text
    if code in _DAMAGED or "malformed" in text or "not a database" in text:
        return OutboxError(
            path,
            f"outbox {path} is damaged ({text}). Keep a copy of the file, recover what it holds with "
            f"`sqlite3 {path} .recover | sqlite3 recovered.sqlite3`, then use the recovered file "
            f"(--outbox, LOOPAI_OUTBOX or [delivery] outbox)",
        )
    if code == _FULL or "disk is full" in text:
        return OutboxError(path, f"outbox {path}: the disk is full ({text}); free some space and run again")
    if code in _BUSY or "locked" in text:
        return OutboxError(
            path, f"outbox {path}: another process kept it locked for more than 10 s ({text}); try again"
        )
    return OutboxError(path, f"outbox {path}: {text}")
