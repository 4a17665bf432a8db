"""The schema's versions: numbered SQL files shipped in ``migrations/``, applied in order by ``loopai db upgrade``.

``migrations/0001_task_state.sql`` is version 1, ``0002_...`` version 2, and so on; the version
table ``loopai_schema_version`` holds one row per applied file. An upgrade applies every pending
file in one transaction, under an advisory lock so that two upgrades at once wait for each other
instead of racing. A process refuses a database whose schema is not the version it knows: a newer
one (written by a newer loopai-core) or an older one (not upgraded yet).

Every part that keeps data here adds its tables as the next numbered file: the task state is
version 1, the outbox version 2. One database may hold both, or each part its own: every one gets
the whole schema, so that one version number says where a database stands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from loopai.database._driver import INSTALL
from loopai.database._errors import SchemaVersionError

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = [
    "VERSION_TABLE",
    "Migration",
    "SchemaStatus",
    "known_version",
    "migrations",
    "require_current",
    "schema_status",
    "tables",
    "upgrade",
]

VERSION_TABLE: Final = "loopai_schema_version"
_UPGRADE_LOCK: Final = 0x6C6F6F70_6169  # pg_advisory_xact_lock key: "loopai"
_FILE: Final = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")
_CREATE_TABLE: Final = re.compile(r"^\s*CREATE TABLE (?:IF NOT EXISTS )?(\w+)", re.I | re.M)


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file: its version, its name (the file name's words) and its statements."""

    version: int
    name: str
    sql: str = field(repr=False)


@dataclass(frozen=True)
class SchemaStatus:
    """The database's schema version, the version this loopai-core knows, and the migrations it lacks."""

    database: int
    known: int
    pending: tuple[Migration, ...]

    @property
    def newer(self) -> bool:
        """Whether the database was upgraded by a newer loopai-core than this one."""
        return self.database > self.known

    @property
    def current(self) -> bool:
        """Whether the database is at exactly the version this loopai-core knows."""
        return self.database == self.known


def migrations() -> list[Migration]:
    """Every migration shipped in the package, in version order (1, 2, ... with no gap)."""
    folder = resources.files("loopai.database").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is not None:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        # A packaging mistake, not a user's: the numbers are the schema's history.
        raise RuntimeError(f"loopai/database/migrations/ is not numbered 0001, 0002, ...: {[m.version for m in found]}")
    return found


def known_version() -> int:
    """The newest schema version this loopai-core knows (0 when it ships no migration)."""
    shipped = migrations()
    return shipped[-1].version if shipped else 0


def tables() -> list[str]:
    """Every table of loopai's schema: the version table, then those the migrations create, in order."""
    return [VERSION_TABLE, *(name for m in migrations() for name in _CREATE_TABLE.findall(m.sql))]


def schema_status(conn: Connection[Any]) -> SchemaStatus:
    """Where ``conn``'s database stands (version 0: never upgraded)."""
    shipped = migrations()
    version = _database_version(conn)
    known = shipped[-1].version if shipped else 0
    return SchemaStatus(version, known, tuple(m for m in shipped if m.version > version))


def upgrade(conn: Connection[Any], shown_url: str, applying: Callable[[str], None] | None = None) -> list[Migration]:
    """Apply the pending migrations in ``conn``'s current transaction; the ones applied, in order.

    The caller commits (or rolls everything back on error). Raises :class:`SchemaVersionError`
    when the database is newer than this loopai-core. ``applying`` is told each step before it
    runs (``creating loopai_schema_version``, ``migration 0001 task_state``), so that an error
    the server raises can be said with the step it refused.
    """
    applying = applying or (lambda step: None)
    applying("waiting for other upgrades")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_UPGRADE_LOCK])
    applying(f"creating {VERSION_TABLE}")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applying("reading the schema version")
    status = schema_status(conn)
    if status.newer:
        raise _too_new(status, f"database {shown_url}")
    for migration in status.pending:
        applying(f"migration {migration.version:04d} {migration.name}")
        conn.execute(migration.sql.encode())  # no parameters: a file may hold several statements
        conn.execute(
            f"INSERT INTO {VERSION_TABLE} (version, name) VALUES (%s, %s)", [migration.version, migration.name]
        )
    return list(status.pending)


def require_current(status: SchemaStatus, shown: str, setting: str = "[state] url or LOOPAI_STATE_URL") -> None:
    """Refuse a database whose schema is not the version this loopai-core knows, saying what to do.

    ``shown`` names the database (its role and URL, without the password); ``setting`` is where it
    is configured."""
    if status.newer:
        raise _too_new(status, shown, setting)
    if not status.current:
        raise SchemaVersionError(
            f"{shown}: schema version {status.database}, but this loopai-core needs "
            f"version {status.known}: run `loopai db upgrade` (with the same {setting}) "
            "once, then start the processes",
            status.database,
            status.known,
        )


def _too_new(status: SchemaStatus, shown: str, setting: str = "[state] url or LOOPAI_STATE_URL") -> SchemaVersionError:
    return SchemaVersionError(
        f"{shown}: schema version {status.database} is newer than version {status.known}, "
        f"the newest this loopai-core knows: upgrade loopai-core on this machine ({INSTALL} -U), "
        f"or point {setting} at another database",
        status.database,
        status.known,
    )


def _database_version(conn: Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [VERSION_TABLE]).fetchone()
    if row is None or not row[0]:
        return 0
    row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()
    return int(row[0]) if row is not None else 0
