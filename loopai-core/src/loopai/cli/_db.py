"""``loopai db status`` and ``loopai db upgrade``: the schema of the shared PostgreSQL databases.

The databases are those the configuration names: ``[state] url`` (``LOOPAI_STATE_URL``), and the
outbox's when it is a ``postgresql://`` URL (``[delivery] outbox``, ``LOOPAI_OUTBOX``; by default
the outbox is in the state's database). Each gets the whole schema: one version says where it stands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from loopai.cli._common import usage

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig
    from loopai.database import Database, SchemaStatus

__all__ = ["add_commands"]


_EPILOG = """\
The databases are the one [state] url names (LOOPAI_STATE_URL overrides it), which also holds the
outbox unless [delivery] outbox (LOOPAI_OUTBOX) names another: a file, or another postgresql://
database (then both are shown and upgraded). Only those two tables of the configuration are read:
a ${VAR} elsewhere (a handler's secret) need not be set. Passwords, from the URL, PGPASSWORD,
~/.pgpass or a ${VAR}, are never printed. Every loopai process refuses a schema that is not the
version it knows: run `loopai db upgrade` once, before starting processes of a new loopai-core. An
upgrade applies the pending migrations in one transaction; two at once wait for each other.

exit status: status: 0 up to date, 1 an upgrade is pending or the schema is newer than this
loopai-core; upgrade: 0 done (or nothing to do); both: 2 no database configured, unreachable,
refused (a privilege the role lacks, a table of another application: the message says what to
do), or a schema newer than this loopai-core (upgrade)."""

_OUTBOX_VERSION = 2
"""The schema version that brings the outbox's tables."""


class _Target:
    """One configured database and what this configuration keeps there (``state``, ``outbox``)."""

    def __init__(self, database: Database, uses: list[str]) -> None:
        self.database = database
        self.uses = uses


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add ``db status`` and ``db upgrade`` to ``commands`` (an argparse subparsers object); see
    :func:`loopai.cli._main.build_parser`."""
    db = commands.add_parser(
        "db",
        help=help_text,
        description="The PostgreSQL databases [state] url and [delivery] outbox name: schema version, and upgrading.",
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
        parser.add_argument(
            "--url",
            metavar="URL",
            help="this postgresql:// database instead of the configured ones (a deployment's migration step)",
        )
    status.set_defaults(handler=_status)
    upgrade.set_defaults(handler=_upgrade)
    db.set_defaults(handler=lambda args: usage(db))


def _targets(args: argparse.Namespace) -> list[_Target]:
    """The configured databases (not connected); exit 2 when none is configured or a URL is wrong.
    Only the ``[state]`` and ``[delivery]`` tables are read, as the ``loopai events`` commands read
    them: a ``${VAR}`` elsewhere (a handler's secret) need not be set where the databases are managed."""
    from loopai.cli._outboxes import outbox_tables
    from loopai.delivery import is_database_url, resolve_outbox

    if args.url:  # the whole schema, state and outbox, as in every loopai database
        config = outbox_tables(args)[0] if args.config else _readable_or_defaults()
        return [_Target(_database(config, args.url, "--url", "database", "--url"), ["state", "outbox"])]
    config, source = outbox_tables(args)
    targets: list[_Target] = []
    state_url = config.state.database_url(os.environ)
    if state_url is not None:
        where = "LOOPAI_STATE_URL" if os.environ.get("LOOPAI_STATE_URL") else "[state] url"
        database = _database(config, state_url, where, "state database", "[state] url or LOOPAI_STATE_URL")
        targets.append(_Target(database, ["state"]))
    outbox = resolve_outbox(config.delivery.outbox, source, os.environ, default=True, state_url=state_url)
    if isinstance(outbox, str) and is_database_url(outbox):
        where = "LOOPAI_OUTBOX" if os.environ.get("LOOPAI_OUTBOX") else "[delivery] outbox"
        database = _database(config, outbox, where, "outbox database", "[delivery] outbox or LOOPAI_OUTBOX")
        same = next((t for t in targets if t.database.url.same_database(database.url)), None)
        if same is not None:
            same.uses.append("outbox")
        else:
            targets.append(_Target(database, ["outbox"]))
    if not targets:
        print(
            "loopai db: no database configured: set [state] url in the configuration, or LOOPAI_STATE_URL "
            "(postgresql://user@host:5432/database); [delivery] outbox may name one too",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return targets


def _readable_or_defaults() -> LoopaiConfig:
    """The ``[state]`` table of the configuration found by the default search, for its
    ``unavailable_timeout``; the defaults when it cannot be read: with ``--url`` nothing else of it
    is used, and a deployment's migration job may not have the variables it names (a
    ``${DB_PASSWORD}`` of the service's)."""
    from loopai._errors import ConfigError
    from loopai.cli._outboxes import configured_outbox
    from loopai.config import LoopaiConfig

    try:
        return configured_outbox(None)[0]
    except ConfigError:
        return LoopaiConfig()


def _database(config: LoopaiConfig, url: str, where: str, role: str, setting: str) -> Database:
    from loopai.database import Database

    timeout = config.state.unavailable_timeout
    try:
        return Database(url, unavailable_timeout=timeout, name="loopai-db", role=role, setting=setting)
    except ValueError as exc:
        print(f"loopai db: {where}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _status(args: argparse.Namespace) -> int:
    from loopai.database import DatabaseError

    shown: list[dict[str, Any]] = []
    worst = 0
    for target in _targets(args):
        database = target.database
        try:
            status = database.status()
            outbox = _outbox_counts(database) if "outbox" in target.uses and status.current else None
        except DatabaseError as exc:
            print(f"loopai db status: {exc}", file=sys.stderr)
            worst = 2
            shown.append({"database": database.url.shown, "uses": target.uses, "error": str(exc)})
            continue
        finally:
            database.close()
        shown.append(_described(target, status, outbox))
        worst = max(worst, 0 if status.current else 1)
    if args.json:  # a database that could not be read is an entry with its "error", as on stderr
        print(json.dumps({**shown[0], "also": shown[1:]}, indent=2))
    else:
        said = [_text(entry) for entry in shown if "error" not in entry]
        if said:
            print("\n\n".join(said))
    return worst


def _outbox_counts(database: Database) -> dict[str, int]:
    """How many deliveries the outbox in ``database`` holds pending, dead and quarantined (delivered
    ones are not counted: they may be many, and they are done)."""
    from loopai.delivery import PostgresOutbox

    outbox = PostgresOutbox(database)
    try:
        held = outbox.open_counts()
    finally:
        outbox.close()
    return {status: sum(counts[status] for counts in held.values()) for status in ("pending", "dead", "quarantined")}


def _described(target: _Target, status: SchemaStatus, outbox: dict[str, int] | None) -> dict[str, Any]:
    from loopai.database import migrations

    applied = [{"version": m.version, "name": m.name} for m in migrations() if m.version <= status.database]
    return {
        "database": target.database.url.shown,
        "uses": target.uses,
        "version": status.database,
        "known_version": status.known,
        "applied": applied,
        "pending": [{"version": m.version, "name": m.name} for m in status.pending],
        "current": status.current,
        "newer": status.newer,
        "outbox": outbox,
    }


def _text(entry: dict[str, Any]) -> str:
    lines = [
        f"database: {entry['database']} ({' and '.join(entry['uses'])})",
        f"schema version: {entry['version']} (this loopai-core knows version {entry['known_version']})",
    ]
    lines += [f"applied: {m['version']:04d} {m['name']}" for m in entry["applied"]]
    lines += [f"pending: {m['version']:04d} {m['name']}" for m in entry["pending"]]
    outbox = entry["outbox"]
    if outbox is not None:
        lines.append(
            f"outbox: {outbox['pending']} pending, {outbox['dead']} dead, {outbox['quarantined']} quarantined "
            "(loopai events list says which)"
        )
    elif "outbox" in entry["uses"] and entry["version"] < _OUTBOX_VERSION:
        lines.append(f"outbox: its tables come with version {_OUTBOX_VERSION}")
    if entry["current"]:
        lines.append("up to date")
    elif entry["newer"]:
        lines.append("the database is newer than this loopai-core: upgrade loopai-core before running it here")
    else:
        lines.append("run `loopai db upgrade` to apply the pending migrations")
    return "\n".join(lines)


def _upgrade(args: argparse.Namespace) -> int:
    from loopai.database import DatabaseError, known_version

    failed = False
    for target in _targets(args):
        database = target.database
        try:
            applied = database.upgrade()
        except DatabaseError as exc:
            print(f"loopai db upgrade: {exc}", file=sys.stderr)
            failed = True
            continue
        finally:
            database.close()
        for migration in applied:
            print(f"applied {migration.version:04d} {migration.name}")
        done = "" if applied else " (nothing to do)"
        print(f"{database.url.shown} ({' and '.join(target.uses)}): schema at version {known_version()}{done}")
    return 2 if failed else 0
