"""Where the outbox is: an explicit path or object, ``LOOPAI_OUTBOX``, the configuration, or the default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from loopai.config import LoopaiConfig
from loopai.delivery._outbox import Outbox
from loopai.delivery._sqlite import SqliteOutbox

__all__ = ["OutboxSpec", "default_outbox_path", "open_outbox", "outbox_location", "resolve_outbox"]

OutboxSpec = Outbox | str | os.PathLike[str] | bool | None
"""What ``Host(outbox=...)`` takes: an outbox, a path, True (the default path), False (none), None (as configured)."""


def default_outbox_path(environ: Mapping[str, str] | None = None) -> Path:
    """``outbox.sqlite3`` in the user's state folder: ``$XDG_STATE_HOME/loopai`` when that is set, else
    what platformdirs says (``~/.local/state/loopai`` on Linux, ``~/Library/Application Support/loopai``
    on macOS, ``%LOCALAPPDATA%\\loopai`` on Windows)."""
    environ = os.environ if environ is None else environ
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"], "loopai", "outbox.sqlite3")
    import platformdirs

    return platformdirs.user_state_path("loopai", appauthor=False) / "outbox.sqlite3"


def resolve_outbox(
    configured: str | None, source: Path | None, environ: Mapping[str, str], *, default: bool
) -> Path | None:
    """Where the outbox is: ``LOOPAI_OUTBOX``, else ``configured`` (``[delivery] outbox`` of the
    configuration file ``source``, relative to it), else the default path when ``default``, else None."""
    named = environ.get("LOOPAI_OUTBOX") or None
    if named is None and configured:
        named = configured
        if named != ":memory:" and source is not None and not Path(named).is_absolute():
            return source.parent / named
    if named is not None:
        return Path(named)
    return default_outbox_path(environ) if default else None


def outbox_location(config: LoopaiConfig, environ: Mapping[str, str], *, default: bool) -> Path | None:
    """:func:`resolve_outbox` for a loaded configuration."""
    return resolve_outbox(config.delivery.outbox, config.source, environ, default=default)


def open_outbox(spec: OutboxSpec, config: LoopaiConfig, environ: Mapping[str, str]) -> tuple[Outbox | None, bool]:
    """The outbox ``spec`` names and whether the caller owns it (and so closes it).

    An :class:`Outbox` is used as given (not owned); False means none; None follows
    ``LOOPAI_OUTBOX`` and the configuration (none when neither names one); True does the
    same but falls back to :func:`default_outbox_path`; a path opens a SQLite outbox there.
    Raises :class:`loopai.ConfigError` when the file cannot be opened as an outbox.
    """
    if spec is False:
        return None, False
    if spec is None or spec is True:
        location = outbox_location(config, environ, default=spec is True)
    elif isinstance(spec, (str, os.PathLike)):
        location = Path(spec)
    else:
        return spec, False
    return (SqliteOutbox(location), True) if location is not None else (None, False)
