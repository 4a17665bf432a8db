"""Finding and opening the outbox for the ``loopai events`` commands, and what its failures end them with."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig
    from loopai.delivery import Outbox

__all__ = [
    "OUTBOX_HELP",
    "config_tables",
    "configured_outbox",
    "existing_outbox",
    "outbox_failures",
    "outbox_path",
    "outbox_tables",
]

OUTBOX_HELP = (
    "the outbox: a SQLite file, or a postgresql:// URL (default: LOOPAI_OUTBOX, [delivery] outbox, "
    "the [state] url database, else the project's file in the state folder: loopai events where)"
)


def outbox_path(args: argparse.Namespace) -> str:
    """``--outbox``, else ``LOOPAI_OUTBOX``, else the configuration's ``[delivery] outbox``, else the
    state's database (``LOOPAI_STATE_URL``, ``[state] url``), else the default path, the project's
    of the configuration file (the one a host built here uses: :func:`loopai.delivery.default_outbox_path`):
    a file's path or a ``postgresql://`` URL (its password included: never print it, print ``outbox.path``).
    Only the ``[delivery]`` and ``[state]`` tables are read: a ``${VAR}`` elsewhere in the file
    (a handler's secret, say) need not be set to list or find the outbox."""
    from loopai.cli._output import warn
    from loopai.delivery import left_in_shared, outbox_configured, resolve_outbox

    if args.outbox:
        return str(args.outbox)
    config, source = outbox_tables(args)
    state_url = config.state.database_url(os.environ)
    location = resolve_outbox(config.delivery.outbox, source, os.environ, default=True, state_url=state_url)
    if not outbox_configured(config, os.environ) and isinstance(location, Path):  # as a host opening it says
        said = left_in_shared(location, os.environ)
        if said:
            warn(said)
    return str(location)


def existing_outbox(path: str, nothing: str, args: argparse.Namespace | None = None) -> Outbox | None:
    """The :class:`loopai.Outbox` at ``path`` (a file, or a ``postgresql://`` URL: connected now);
    None, said on stderr (``nothing`` says what that means for the command), when no file is there
    yet: nothing was emitted. A file that is not an outbox, or a database that cannot be reached or
    is not at this loopai's schema, ends the command: its reason on stderr, exit status 2."""
    from loopai._errors import ConfigError
    from loopai.delivery import PostgresOutbox, SqliteOutbox, is_database_url, outbox_setting

    if is_database_url(path):
        config = outbox_tables(args)[0] if args is not None else None
        outbox = PostgresOutbox(path, unavailable_timeout=config.state.unavailable_timeout if config else 30.0)
        if config is not None and not getattr(args, "outbox", None):  # found, not given: say where it was found
            outbox.database.setting = outbox_setting(config.delivery.outbox, os.environ)
        try:
            outbox.open()
        except ConfigError as exc:
            outbox.close()
            print(exc, file=sys.stderr)
            raise SystemExit(2) from None
        return outbox
    if path != ":memory:" and not os.path.exists(path):
        print(f"no outbox at {path} yet: nothing was emitted{nothing}", file=sys.stderr)
        return None
    if path != ":memory:" and _empty(path):  # looked at, never written: opening would make the tables
        print(f"{path} holds no outbox yet (an empty file): nothing was emitted{nothing}", file=sys.stderr)
        return None
    try:
        return SqliteOutbox(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _empty(path: str) -> bool:
    """Whether ``path`` is an empty file, or an SQLite database with nothing in it (read only)."""
    import sqlite3
    import urllib.parse

    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return True
    try:
        uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            return bool(db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)
    except sqlite3.Error:
        return False  # not SQLite, or damaged: opening it says which


def outbox_tables(args: argparse.Namespace) -> tuple[LoopaiConfig, Path | None]:
    """The ``[delivery]`` and ``[state]`` tables (a ``LoopaiConfig`` of those only) of the configuration
    ``args.config`` names (else the default search finds), and its file; a configuration that cannot be
    read ends the command (exit status 2). What the ``events`` and ``db`` commands read."""
    from loopai._errors import ConfigError

    try:
        return configured_outbox(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def configured_outbox(path: str | None) -> tuple[LoopaiConfig, Path | None]:
    """The ``[delivery]`` and ``[state]`` tables of the configuration file (with their ``${VAR}``
    resolved, and their ``LOOPAI_DELIVERY__*`` and ``LOOPAI_STATE__*`` variables applied), as a
    ``LoopaiConfig`` of those only, and that file (None without one)."""
    from loopai.config import find_config, parse_config, read_document

    environ = {name: value for name, value in os.environ.items() if _read_here(name)}
    found, how = find_config(path)
    if found is None:
        return parse_config({}, label="the environment", environ=environ, overrides=True), None
    try:
        label = str(found.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        label = str(found)
    tables = config_tables(read_document(found, label, how), ("delivery", "state"))
    return parse_config(tables, label=label, environ=environ, overrides=True), found.resolve()


def _read_here(variable: str) -> bool:
    """Whether :func:`configured_outbox` reads ``variable``: any (for ``${VAR}``), but of the
    overriding ``LOOPAI_<TABLE>__<KEY>`` ones only those of the two tables it reads."""
    name = variable.upper()
    return not (name.startswith("LOOPAI_") and "__" in name) or name.startswith(("LOOPAI_DELIVERY__", "LOOPAI_STATE__"))


def config_tables(document: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The tables ``names`` of a configuration document (TOML, or the seed's JSON shape) that it has."""
    if not isinstance(document, Mapping):
        return {}
    top = {str(key).lower(): value for key, value in document.items()}
    if set(top) == {"loopai"} and isinstance(top["loopai"], Mapping):
        top = {str(key).lower(): value for key, value in top["loopai"].items()}
    return {name: top[name] for name in names if top.get(name) is not None}


@contextlib.contextmanager
def outbox_failures() -> Iterator[None]:
    """A failing outbox (damaged pages, a full disk) ends the command: its message, naming the file
    and what to do, on stderr, exit status 2. Never a traceback, never a report of nothing done."""
    from loopai._errors import OutboxError

    try:
        yield
    except OutboxError as exc:
        print(f"loopai events: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
