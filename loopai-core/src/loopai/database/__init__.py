"""The PostgreSQL database that many loopai processes share (``[state] url``, ``loopai-core[postgres]``).

What every PostgreSQL-backed part uses: the URL with its password kept apart and a form safe to
print (:class:`DatabaseUrl`), a pool of connections that rides out a restart by retrying with
backoff (:class:`Database`), and the numbered SQL migrations shipped in this package, applied by
``loopai db upgrade`` (:mod:`._migrations`). The state store (``loopai.state``) builds on it; the
PostgreSQL outbox will too, with its own migration files and the same pool.

Nothing here imports psycopg until a database is opened: the extra is optional.
"""

from loopai.database._database import Database
from loopai.database._errors import DatabaseError, DatabaseUnavailable, DriverMissing, SchemaVersionError
from loopai.database._migrations import Migration, SchemaStatus, known_version, migrations, schema_status, upgrade
from loopai.database._url import DatabaseUrl

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "DatabaseUrl",
    "DriverMissing",
    "Migration",
    "SchemaStatus",
    "SchemaVersionError",
    "known_version",
    "migrations",
    "schema_status",
    "upgrade",
]
