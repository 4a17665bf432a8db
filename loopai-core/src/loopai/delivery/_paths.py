"""Where the outbox is: an explicit path, URL or object, ``LOOPAI_OUTBOX``, the configuration, or the default.

A location is a SQLite file, or a ``postgresql://`` URL: the outbox shared by every process that
names that database. With ``[state] url`` set (or ``LOOPAI_STATE_URL``) and no outbox named, the
default outbox is in the state's database, on the same connections; else it is a file in the user's
state folder, one per configuration file (:func:`default_outbox_path`): pending deliveries are
matched to handlers by name, so an outbox two projects shared would have each deliver the other's
events with its own handler of that name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from loopai._errors import ConfigError
from loopai._log import logger
from loopai._redact import redact
from loopai.config import LoopaiConfig
from loopai.database import Database, DatabaseUrl
from loopai.delivery._outbox import Outbox
from loopai.delivery._postgres import PostgresOutbox
from loopai.delivery._sqlite import SqliteOutbox
from loopai.delivery._sqlite_file import FOLDER_MODE

__all__ = [
    "OutboxSpec",
    "default_outbox_path",
    "default_outboxes",
    "is_database_url",
    "left_in_shared",
    "open_outbox",
    "outbox_configured",
    "outbox_location",
    "outbox_setting",
    "resolve_outbox",
    "shared_of_before",
]

OutboxSpec = Outbox | str | os.PathLike[str] | bool | None
"""What ``Host(outbox=...)`` takes: an outbox, a path or ``postgresql://`` URL, True (the default),
False (none), None (as configured)."""

Location = Path | str
"""A SQLite file's path, or a ``postgresql://`` URL (a str)."""

log = logger("loopai.delivery")


def is_database_url(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def default_outbox_path(environ: Mapping[str, str] | None = None, source: str | os.PathLike[str] | None = None) -> Path:
    """The default outbox file, in the user's state folder: ``$XDG_STATE_HOME/loopai`` when that is
    set, else what platformdirs says (``~/.local/state/loopai`` on Linux, ``~/Library/Application
    Support/loopai`` on macOS, ``%LOCALAPPDATA%\\loopai`` on Windows).

    With a configuration file ``source`` (the ``loopai.toml`` or ``pyproject.toml`` found, or the
    file named): that project's own, ``outboxes/<folder>-<digest>.sqlite3`` there, where
    ``<folder>`` is the name of the folder the file is in (letters, digits, ``.``, ``_`` and ``-``
    kept, the rest ``_``, at most 40 characters) and ``<digest>`` the first 12 hex digits of the
    SHA-256 of the file's resolved path: ``outboxes/shop-3f9a0c1b2d4e.sqlite3``. So two projects
    never share one (each would deliver the other's pending events with its own handler of the same
    name), every command run in a project (from any of its folders) finds the same one, and a
    project moved or renamed starts a new one (``loopai events where --all`` lists them all).
    Without one (``source`` None): ``outboxes/default.sqlite3`` there (never a project's: theirs end
    in ``-<digest>``).

    ``outbox.sqlite3`` in the state folder is the file earlier versions used, for every project
    alike: no default is ever that file now; opening a default outbox warns while deliveries are
    pending there (see :func:`open_outbox`).
    """
    folder = _state_folder(os.environ if environ is None else environ) / _PROJECT_OUTBOXES
    if source is None:
        return folder / _NO_PROJECT
    config = Path(source).resolve()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", config.parent.name).lstrip(".-")[:40] or "project"
    digest = hashlib.sha256(os.fsencode(os.path.normcase(str(config)))).hexdigest()[:12]
    return folder / f"{name}-{digest}.sqlite3"


def default_outboxes(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The default outbox files there are in the user's state folder (see :func:`default_outbox_path`):
    first ``outbox.sqlite3``, the one earlier versions shared between every project (when it is
    still there: :func:`shared_of_before` names it), then the one used without a configuration
    file, then each project's, by name."""
    folder = _state_folder(os.environ if environ is None else environ)
    before = folder / _SHARED_OF_BEFORE
    outboxes = folder / _PROJECT_OUTBOXES
    projects = sorted(path for path in outboxes.glob("*.sqlite3") if path.is_file() and path.name != _NO_PROJECT)
    return [path for path in (before, outboxes / _NO_PROJECT) if path.is_file()] + projects


def shared_of_before(environ: Mapping[str, str] | None = None) -> Path:
    """``outbox.sqlite3`` in the user's state folder: the default outbox of earlier versions, which
    every project shared (and the one without a configuration file was). No default is that file now."""
    return _state_folder(os.environ if environ is None else environ) / _SHARED_OF_BEFORE


_PROJECT_OUTBOXES = "outboxes"
"""The folder of the state folder that holds the default outboxes: each project's, and the one
used without a configuration file."""
_NO_PROJECT = "default.sqlite3"
"""The default outbox used without a configuration file, in :data:`_PROJECT_OUTBOXES`."""
_SHARED_OF_BEFORE = "outbox.sqlite3"
"""The default outbox of earlier versions, in the state folder: every project's events went there."""


def _state_folder(environ: Mapping[str, str]) -> Path:
    """loopai's folder in the user's state folder (``$XDG_STATE_HOME/loopai``, else platformdirs')."""
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"], "loopai")
    import platformdirs

    return platformdirs.user_state_path("loopai", appauthor=False)


def resolve_outbox(
    configured: str | None,
    source: Path | None,
    environ: Mapping[str, str],
    *,
    default: bool,
    state_url: str | None = None,
) -> Location | None:
    """Where the outbox is: ``LOOPAI_OUTBOX``, else ``configured`` (``[delivery] outbox`` of the
    configuration file ``source``; a path is relative to it), else, when ``default``, the state's
    database (``state_url``) or the default file, the project's of ``source`` (see
    :func:`default_outbox_path`); else None. A URL is returned as it is (a str)."""
    named = environ.get("LOOPAI_OUTBOX") or None
    if named is None and configured:
        named = configured
        if is_database_url(named):
            return named
        if named != ":memory:" and source is not None and not Path(named).is_absolute():
            return source.parent / named
    if named is not None:
        return named if is_database_url(named) else Path(named)
    if not default:
        return None
    return state_url if state_url else default_outbox_path(environ, source)


def outbox_configured(config: LoopaiConfig, environ: Mapping[str, str]) -> bool:
    """Whether the outbox is configured (``LOOPAI_OUTBOX``, ``[delivery] outbox``, or the state's
    database: ``[state] url``); else a default file is used (see :func:`default_outbox_path`)."""
    return bool(environ.get("LOOPAI_OUTBOX") or config.delivery.outbox or config.state.database_url(environ))


def outbox_setting(configured: str | None, environ: Mapping[str, str]) -> str:
    """Where the outbox :func:`resolve_outbox` finds (without an explicit one) is configured, as its
    messages tell an operator to check: ``LOOPAI_OUTBOX``, ``[delivery] outbox`` (``configured``),
    else the state's database, the default (``LOOPAI_STATE_URL``, ``[state] url``)."""
    if environ.get("LOOPAI_OUTBOX"):
        return "LOOPAI_OUTBOX"
    if configured:
        return "[delivery] outbox"
    state = "LOOPAI_STATE_URL" if environ.get("LOOPAI_STATE_URL") else "[state] url"
    return f"{state} (by default the outbox is in the state's database)"


def outbox_location(config: LoopaiConfig, environ: Mapping[str, str], *, default: bool) -> Location | None:
    """:func:`resolve_outbox` for a loaded configuration."""
    state_url = config.state.database_url(environ)
    return resolve_outbox(config.delivery.outbox, config.source, environ, default=default, state_url=state_url)


def open_outbox(
    spec: OutboxSpec,
    config: LoopaiConfig,
    environ: Mapping[str, str],
    *,
    database: Database | None = None,
) -> tuple[Outbox | None, bool]:
    """The outbox ``spec`` names and whether the caller owns it (and so closes it).

    An :class:`Outbox` is used as given (not owned); False means none; None follows
    ``LOOPAI_OUTBOX`` and the configuration (none when neither names one); True does the same
    but falls back to the state's database (``[state] url``), else :func:`default_outbox_path` (the
    project's of ``config.source``; its folders are made as needed, readable by this user only, and
    opening it warns while ``outbox.sqlite3``, the default of earlier versions, holds pending
    deliveries).
    A path opens a SQLite outbox there; a ``postgresql://`` URL a :class:`PostgresOutbox` (not
    connected yet), on ``database`` (the state store's) when that names the same database.
    Raises :class:`loopai.ConfigError` when the file cannot be opened as an outbox, or the URL is
    not one. A file named (``spec``, ``LOOPAI_OUTBOX``, ``[delivery] outbox``) in a folder that does
    not exist gets that folder, logged as a warning, but not when the folder above it is missing too:
    that is refused (a mistyped path is not made from the root down).
    """
    if spec is False:
        return None, False
    location: Location | None
    if spec is None or spec is True:
        location = outbox_location(config, environ, default=spec is True)
    elif isinstance(spec, (str, os.PathLike)):
        location = spec if isinstance(spec, str) and is_database_url(spec) else Path(spec)
    else:
        return spec, False
    if location is None:
        return None, False
    if isinstance(location, Path):
        named = spec not in (None, True) or outbox_configured(config, environ)
        folder = _folder_to_create(location) if named else None  # the default's folders are ours to make
        if not named:
            _make_private_folders(location.parent)
        opened = SqliteOutbox(location)
        if folder is not None:
            log.warning("outbox %s: created the folder %s, which did not exist", location, folder)
        if not named and (said := left_in_shared(location, environ)):
            log.warning("%s", said)
        return opened, True
    outbox = _postgres(location, config, database)
    if (spec is None or spec is True) and outbox.database is not database:  # a shared one says the state's settings
        outbox.database.setting = outbox_setting(config.delivery.outbox, environ)
    return outbox, True


def left_in_shared(own: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The warning to give when ``outbox.sqlite3`` (:func:`shared_of_before`), the default outbox of
    earlier versions, which every project shared, still holds pending or dead deliveries (else None):
    no default is that file now, so no host delivers them unless told to, and loopai cannot tell
    which project emitted them. ``own`` is the default outbox used here now (None: not said). Read only; a file that
    cannot be read is not this outbox's problem. Every host (:func:`open_outbox`) and ``loopai
    events`` command that opens a default outbox says it."""
    shared = shared_of_before(environ)
    if own == shared or not shared.is_file():
        return None
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{shared.resolve().as_uri()}?mode=ro", uri=True)) as db:
            counts = dict(db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall())
    except sqlite3.Error:
        return None
    pending, dead = counts.get("pending", 0), counts.get("dead", 0)
    if not pending and not dead:
        return None
    held = " and ".join(f"{n:,} {what}" for n, what in ((pending, "pending"), (dead, "dead")) if n)
    are = "delivery is" if pending + dead == 1 else "deliveries are"
    now = f" (the default outbox here is now {own})" if own is not None else ""
    return (
        f"outbox {shared}: {held} {are} still there, in the default outbox of earlier versions, which every "
        f"project shared{now}; nothing delivers them now, and loopai cannot tell which project emitted "
        f"them. See them with `loopai events list --outbox {shared}`. "
        "If they are all one project's, deliver them with that project's configuration: `loopai events deliver "
        f"--outbox {shared} --config FILE` (dead ones: `loopai events replay --all-dead --outbox {shared} "
        "--config FILE`); its handlers deliver whatever bears their names. Else, or once done, move the file away"
    )


def _make_private_folders(folder: Path) -> None:
    """Make ``folder`` (the default outbox's, in the user's state folder) and those above it that
    are missing, each readable by this user only (:data:`FOLDER_MODE`: what they hold may be
    personal data), as the XDG base directory specification asks. Folders that exist keep their
    mode; one that cannot be made is for opening the file to fail on, and say."""
    for each in [*reversed(folder.parents), folder]:
        if not each.is_dir():
            try:
                each.mkdir(mode=FOLDER_MODE)
            except FileExistsError:
                continue  # made meanwhile, by another process
            except OSError:
                return
            with contextlib.suppress(OSError):
                each.chmod(FOLDER_MODE)  # whatever the umask


def _folder_to_create(path: Path) -> Path | None:
    """The folder that opening the outbox file ``path`` (one named by the user) will create, if any.

    One missing folder is made (``loopai run``'s outbox next to new results, ``state/outbox.sqlite3``
    beside a configuration), and said; a path whose folder's folder is missing too is refused
    rather than made from the root down: it is most likely mistyped.
    """
    if str(path) == ":memory:" or path.parent.exists():
        return None
    if not path.parent.parent.exists():
        raise ConfigError(
            [
                f"outbox {path}: its folder {path.parent} does not exist, nor does {path.parent.parent}; "
                "create the folder first, or name another file with --outbox, LOOPAI_OUTBOX or [delivery] outbox"
            ]
        )
    return path.parent


def _postgres(url: str, config: LoopaiConfig, database: Database | None) -> PostgresOutbox:
    try:
        parsed = DatabaseUrl(url)
    except ValueError as exc:
        raise ConfigError([f"outbox {redact(url)!r}: {exc}"]) from None
    if database is not None and database.url.same_database(parsed):
        return PostgresOutbox(database)  # one pool, and a breach recorded with its flag
    return PostgresOutbox(parsed, unavailable_timeout=config.state.unavailable_timeout)
