"""What goes wrong with a shared database: each message names it (never with its password) and the fix."""

from __future__ import annotations

from loopai._errors import ConfigError

__all__ = ["DatabaseError", "DatabaseUnavailable", "DriverMissing", "SchemaVersionError"]


class DatabaseError(ConfigError):
    """The database loopai was pointed at cannot be used.

    A :class:`loopai.ConfigError`, so that every command reports it as it reports a
    configuration it cannot use: the message on stderr, exit status 2. ``sqlstate`` is the
    server's error code when the server refused an operation (``23503``: a foreign key).
    """

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__([message])
        self.sqlstate = sqlstate


class DriverMissing(DatabaseError):
    """A database URL is set but psycopg 3 or psycopg_pool is not installed."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached (at start), or not within ``unavailable_timeout`` (later)."""


class SchemaVersionError(DatabaseError):
    """The database's schema is not the one this loopai-core knows: newer (refused), or older (upgrade it)."""

    def __init__(self, message: str, database_version: int, known_version: int) -> None:
        super().__init__(message)
        self.database_version = database_version
        self.known_version = known_version
