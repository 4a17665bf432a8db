"""Where the configuration is: a named file, else upwards from the current folder, else the user's file.

Found as ruff finds its own: ``--config`` / ``LOOPAI_CONFIG``; else the nearest ``loopai.toml``, or
``pyproject.toml`` with a ``[tool.loopai]`` table, in the current folder or a parent (the search
stops at the root of a repository: a folder holding ``.git``, ``.hg`` or ``.svn``); else
``loopai.toml`` in the user's configuration folder (``$XDG_CONFIG_HOME/loopai``, else what
platformdirs says: ``~/.config/loopai`` on Linux, ``~/Library/Application Support/loopai`` on
macOS, ``%LOCALAPPDATA%\\loopai`` on Windows); else the built-in defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from loopai._errors import ConfigError
from loopai.config._documents import tomllib

__all__ = ["Located", "locate_config", "user_config_path"]

_REPOSITORY_MARKERS = (".git", ".hg", ".svn")


class Located(NamedTuple):
    """A configuration file, how to read it (``toml``, ``json``, ``pyproject``) and how it was found."""

    path: Path | None
    how: str
    found_by: str
    """``--config``, ``LOOPAI_CONFIG``, ``the current folder``, ``a parent folder``, ``the user's
    configuration folder`` or ``built-in defaults``."""


def user_config_path(environ: Mapping[str, str]) -> Path:
    """``loopai.toml`` in the user's configuration folder (``$XDG_CONFIG_HOME/loopai`` when that is set)."""
    base = environ.get("XDG_CONFIG_HOME")
    if base:
        return Path(base, "loopai", "loopai.toml")
    import platformdirs

    return platformdirs.user_config_path("loopai", appauthor=False) / "loopai.toml"


def locate_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str], here: Path) -> Located:
    """Which configuration file applies in folder ``here`` (see the module's docstring for the order).

    A file named by ``path`` or ``LOOPAI_CONFIG`` that does not exist is a :class:`loopai.ConfigError`,
    as is a ``loopai.toml`` on the way that is a folder (or anything but a file).
    """
    named = path if path is not None else environ.get("LOOPAI_CONFIG") or None
    if named is not None:
        chosen = here / Path(named)
        origin = "--config" if path is not None else "LOOPAI_CONFIG"
        if not chosen.is_file():
            hint = "" if path is not None else " (from LOOPAI_CONFIG)"
            if chosen.is_dir():
                raise ConfigError([f"{named}: is a folder, not a configuration file{hint}; name a TOML or JSON file"])
            raise ConfigError([f"{named}: configuration file not found{hint}"])
        return Located(chosen, _format_of(chosen), origin)
    for folder in (here, *here.parents):
        found = _in_folder(folder, here)
        if found is not None:
            return Located(found[0], found[1], "the current folder" if folder == here else "a parent folder")
        if any((folder / marker).exists() for marker in _REPOSITORY_MARKERS):
            break  # a project's configuration never comes from outside its repository
    user = user_config_path(environ)
    _not_a_file(user, here)
    if user.is_file():
        return Located(user, "toml", "the user's configuration folder")
    return Located(None, "defaults", "built-in defaults")


def _format_of(chosen: Path) -> str:
    if chosen.name == "pyproject.toml":
        return "pyproject"
    return "json" if chosen.suffix.lower() == ".json" else "toml"


def _not_a_file(path: Path, here: Path) -> None:
    """Refuse a configuration's path that is there but is no file (a folder named ``loopai.toml``):
    silently left out, the defaults would apply without a word."""
    if path.exists() and not path.is_file():
        shown = os.path.relpath(path, here) if path.parent in (here, *here.parents) else str(path)
        what = "a folder" if path.is_dir() else "not a regular file"
        raise ConfigError(
            [f"{shown}: is {what}, not a configuration file; rename or remove it (the configuration is a TOML file)"]
        )


def _in_folder(folder: Path, here: Path) -> tuple[Path, str] | None:
    """``loopai.toml``, else a ``pyproject.toml`` with ``[tool.loopai]``, in ``folder``; a ``loopai.toml``
    that is no file is a :class:`loopai.ConfigError`."""
    own = folder / "loopai.toml"
    _not_a_file(own, here)
    if own.is_file():
        return own, "toml"
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        with pyproject.open("rb") as handle:
            tool = tomllib.load(handle).get("tool", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # someone else's unreadable pyproject is not our configuration
    return (pyproject, "pyproject") if isinstance(tool, dict) and "loopai" in tool else None
