"""``loopai db status`` and ``loopai db upgrade``: the shared PostgreSQL database's schema version."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from loopai.cli._common import usage

if TYPE_CHECKING:
    from loopai.database import Database

__all__ = ["add_commands"]

HELP = "the shared PostgreSQL database: schema status and upgrade"
"""What ``loopai --help`` says of the command."""

_EPILOG = """\
The database is the one [state] url names (LOOPAI_STATE_URL overrides it); its password, from
the URL, PGPASSWORD, ~/.pgpass or a ${VAR}, is never printed. Every loopai process refuses a
schema that is not the version it knows: run `loopai db upgrade` once, before starting processes
of a new loopai-core. An upgrade applies the pending migrations in one transaction; two at once
wait for each other.

exit status: status: 0 up to date, 1 an upgrade is pending or the schema is newer than this
loopai-core; upgrade: 0 done (or nothing to do); both: 2 no database configured, unreachable,
or a schema newer than this loopai-core (upgrade)."""


def add_commands(commands: Any) -> None:
    """Add ``db status`` and ``db upgrade`` to ``commands`` (an argparse subparsers object)."""
    db = commands.add_parser(
        "db",
        help=HELP,
        description="The PostgreSQL database that [state] url names: its schema version, and upgrading it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = db.add_subparsers(dest="action", metavar="ACTION")
    status = actions.add_parser("status", help="the schema version in the database and the one this loopai knows")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    upgrade = actions.add_parser("upgrade", help="apply the pending migrations, in order, in one transaction")
    for parser in (status, upgrade):
        parser.add_argument(
            "--config", metavar="FILE", help="configuration file (default: LOOPAI_CONFIG, ./loopai.toml)"
        )
    status.set_defaults(handler=_status)
    upgrade.set_defaults(handler=_upgrade)
    db.set_defaults(handler=lambda args: usage(db))


def _database(args: argparse.Namespace) -> Database:
    """The configured database (not connected); exit 2 when none is configured or its URL is wrong."""
    from loopai.cli._common import config_or_exit
    from loopai.database import Database

    config = config_or_exit(args)
    url = config.state.database_url(os.environ)
    if url is None:
        print(
            "loopai db: no database configured: set [state] url in the configuration, or LOOPAI_STATE_URL "
            "(postgresql://user@host:5432/database)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        return Database(url, unavailable_timeout=config.state.unavailable_timeout, name="loopai-db")
    except ValueError as exc:
        where = "LOOPAI_STATE_URL" if os.environ.get("LOOPAI_STATE_URL") else "[state] url"
        print(f"loopai db: {where}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _status(args: argparse.Namespace) -> int:
    from loopai.database import DatabaseError, schema_status

    database = _database(args)
    try:
        with database.connect() as conn:
            status = schema_status(conn)
    except DatabaseError as exc:
        print(f"loopai db status: {exc}", file=sys.stderr)
        return 2
    if args.json:
        shown = {
            "database": database.url.shown,
            "version": status.database,
            "known_version": status.known,
            "pending": [{"version": m.version, "name": m.name} for m in status.pending],
            "current": status.current,
        }
        print(json.dumps(shown, indent=2))
    else:
        print(f"database: {database.url.shown}")
        print(f"schema version: {status.database} (this loopai-core knows version {status.known})")
        for migration in status.pending:
            print(f"pending: {migration.version:04d} {migration.name}")
        if status.current:
            print("up to date")
        elif status.newer:
            print("the database is newer than this loopai-core: upgrade loopai-core before running it here")
        else:
            print("run `loopai db upgrade` to apply the pending migrations")
    return 0 if status.current else 1


def _upgrade(args: argparse.Namespace) -> int:
    from loopai.database import DatabaseError, upgrade

    database = _database(args)
    try:
        with database.connect() as conn:
            applied = upgrade(conn, database.url.shown)
    except DatabaseError as exc:
        print(f"loopai db upgrade: {exc}", file=sys.stderr)
        return 2
    for migration in applied:
        print(f"applied {migration.version:04d} {migration.name}")
    from loopai.database import known_version

    version = known_version()
    print(f"{database.url.shown}: schema at version {version}" + ("" if applied else " (nothing to do)"))
    return 0
