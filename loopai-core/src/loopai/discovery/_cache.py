"""The discovery cache: an inventory of installed distributions, kept until something changes.

The cache is keyed on the mtime of every search path directory, and on the mtime and size
of the metadata files that may be rewritten in place (:func:`watched_files`). A directory whose
mtime changed still matches when the metadata directories in it are the same ones, by name and
mtime: the working directory, first on the path of ``python -m loopai`` and of scripts, changes
whenever a file is written there, and that alone must not cost a rescan.

- a ``*.dist-info`` directory is replaced whole when it changes (installers, pip, uv and
  conda, do; so do the tools that unpack wheels without an installer: pex, bazel), which
  changes the mtime of the directory holding it: nothing in it is watched, so a warm
  discovery does no work per installed plugin, whoever wrote it. A dist-info file edited
  by hand in place goes unseen until something is installed or removed on that path;
  ``LOOPAI_NO_CACHE=1`` reads everything again;
- ``setup.py egg_info`` and legacy ``pip install -e`` (``develop``) rewrite an egg-info's
  files in place: every ``*.egg-info`` is watched.

There is one file per interpreter and search path (``python -m loopai`` puts the working
directory on it, so each folder it runs in has its own): the folder keeps the :data:`KEEP`
files written or used last, and a file removed only costs its next start a rescan.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from loopai._flags import is_true
from loopai.discovery._inventory import DistInfo, EntryPointInfo, Inventory, Shadowed, scan, stamp, watched_files

__all__ = ["cache_dir", "read_inventory"]

_CACHE_FORMAT = 7  # 7: hidden egg-infos watched (an editable install's own egg-info is no second copy)
KEEP = 64  # cache files kept in the folder: the ones written or used last


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the discovery cache lives; None when ``LOOPAI_NO_CACHE`` is set.

    ``LOOPAI_CACHE_DIR``, else ``$XDG_CACHE_HOME/loopai``, else, in a virtual environment
    that can be written to, ``var/cache/loopai`` inside it (what it caches is that environment's
    distributions: the cache goes with it, and trying loopai in a new one writes nothing in
    the home folder), else the user's cache folder as platformdirs says (``~/.cache/loopai`` on
    Linux, ``~/Library/Caches/loopai`` on macOS, ``%LOCALAPPDATA%\\loopai\\Cache`` on Windows).
    """
    environ = os.environ if environ is None else environ
    if is_true(environ.get("LOOPAI_NO_CACHE", "")):
        return None
    if environ.get("LOOPAI_CACHE_DIR"):
        return Path(environ["LOOPAI_CACHE_DIR"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"], "loopai")
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        return Path(sys.prefix, "var", "cache", "loopai")
    import platformdirs

    return platformdirs.user_cache_path("loopai", appauthor=False)


def _stamps(paths: Iterable[str]) -> list[list[object]]:
    # Installing or removing a distribution adds or deletes a *.dist-info directory,
    # which changes the mtime of the directory holding it.
    stamps: list[list[object]] = []
    for entry in paths:
        try:
            stamps.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            stamps.append([entry, None])
    return stamps


def _contents(entry: str) -> str:
    """The ``*.dist-info`` and ``*.egg-info`` directories in path directory ``entry``, by name and
    mtime (installing, upgrading or reinstalling a distribution creates its directory anew), as one
    digest; ``""`` when ``entry`` cannot be listed."""
    digest = hashlib.sha256()
    try:
        with os.scandir(entry or ".") as found:
            names = sorted(e.name for e in found if e.name.endswith((".dist-info", ".egg-info")))
        for name in names:
            digest.update(f"{name}\0{os.stat(os.path.join(entry or '.', name)).st_mtime_ns}\0".encode())
    except OSError:
        return ""
    return digest.hexdigest()


def _same_paths(data: Any, stamps: list[list[object]]) -> bool:
    """Whether the path directories hold what they held when the cache was written."""
    kept = data.get("stamps")
    if kept == stamps:
        return True
    contents = data.get("contents")
    if not isinstance(kept, list) or not isinstance(contents, list) or not len(kept) == len(contents) == len(stamps):
        return False
    return all(
        was == now or (was[0] == now[0] and now[1] is not None and held == _contents(str(now[0])))
        for was, held, now in zip(kept, contents, stamps, strict=True)
    )


def _cache_file(directory: Path, paths: Sequence[str]) -> Path:
    key = hashlib.sha256(json.dumps([sys.executable, list(paths), _CACHE_FORMAT]).encode()).hexdigest()[:24]
    return directory / f"discovery-{key}.json"


def _load_cached(file: Path, stamps: list[list[object]]) -> Inventory | None:
    try:
        data = from_json(file.read_bytes())  # pydantic-core's parser: twice json's speed on this
        if data.get("format") != _CACHE_FORMAT or not _same_paths(data, stamps):
            return None
        lines, folders = data["lines"], data["folders"]
        plugins = [
            DistInfo(
                name,
                version,
                folders[folder] + base,
                summary,
                [lines[i] for i in requires],
                [EntryPointInfo(group, name, value) for group, name, value in eps],
            )
            for name, version, (folder, base), summary, requires, eps in data["plugins"]
        ]
        files = [
            folders[folder] + base + os.sep + name
            for folder, base, plugin in data["watched"]
            for name in watched_files(base, plugin)
        ]
        if hash(tuple(itertools.chain.from_iterable(_stamps_now(files)))) != data["digest"]:
            return None  # a metadata file was rewritten in place
        shadowed = [Shadowed(*row) for row in data["shadowed"]]
        return Inventory(
            plugins, dict(data["versions"]), from_cache=True, derived=data.get("derived"), shadowed=shadowed
        )
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None  # unreadable or from another version: rescan


def _stamps_now(files: list[str]) -> list[tuple[int, int]]:
    """The stamps the watched ``files`` have now, as :func:`stamp` gives them.

    One ``os.stat`` per file in a C loop: with many egg-infos (each of their files is watched)
    this is most of a warm discovery.
    """
    try:
        stats = list(map(os.stat, files))
    except OSError:  # a watched file is missing (as it may have been when scanned): file by file
        return [stamp(file) for file in files]
    return [(st.st_mtime_ns, st.st_size) for st in stats]


def _digest(stamps: Iterable[Sequence[tuple[int, int]]]) -> int:
    """One number for the stamps of the watched files, in order (the cache keeps it, not them).

    Only ints are hashed: their hashes, unlike those of strings, are the same in every
    process of one interpreter (and the cache file is per interpreter).
    """
    return hash(tuple(itertools.chain.from_iterable(itertools.chain.from_iterable(stamps))))


def _split_path(path: str, folders: dict[str, int]) -> list[object]:
    head, sep, tail = path.rpartition(os.sep)  # head + sep + tail == path, whatever it holds
    return [folders.setdefault(head + sep, len(folders)), tail]


def _store(file: Path, stamps: list[list[object]], contents: list[str], inventory: Inventory) -> None:
    # Compact rows, not objects, and each Requires-Dist line and folder once: reading this
    # file is most of what a warm discovery costs, and plugins share requirements and folders.
    lines: dict[str, int] = {}
    folders: dict[str, int] = {}
    plugins = [
        [
            d.name,
            d.version,
            _split_path(d.path, folders),
            d.summary,
            [lines.setdefault(line, len(lines)) for line in d.requires],
            [[ep.group, ep.name, ep.value] for ep in d.entry_points],
        ]
        for d in inventory.plugins
    ]
    watched = [[*_split_path(info, folders), plugin] for info, (plugin, _) in inventory.watched.items()]
    data = {
        "format": _CACHE_FORMAT,
        "stamps": stamps,
        "contents": contents,
        "lines": list(lines),
        "folders": list(folders),
        "plugins": plugins,
        "watched": watched,
        "digest": _digest(files for _, files in inventory.watched.values()),
        "versions": inventory.versions,
        "derived": inventory.derived,
        "shadowed": [
            [d.name, d.used_version, d.used_path, d.hidden_version, d.hidden_path] for d in inventory.shadowed
        ],
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=file.parent, prefix=".discovery-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(temp, file)  # atomic: concurrent readers see the old or the new file
    except OSError:
        return  # a read-only home or full disk only costs the next start a rescan
    _prune(file.parent)


def _touch_daily(file: Path) -> None:
    """Mark a cache file used, at most once a day, so that :func:`_prune` keeps it."""
    try:
        if time.time() - file.stat().st_mtime > 86_400:
            os.utime(file)
    except OSError:
        pass  # a read-only cache folder: the file may be pruned and rebuilt one day, nothing worse


def _prune(directory: Path) -> None:
    """Remove all but the :data:`KEEP` cache files of ``directory`` written or used last (a
    file read at start-up has its time touched once a day, so one in use is kept)."""
    try:
        files = sorted(directory.glob("discovery-*.json"), key=lambda f: f.stat().st_mtime, reverse=True)
        for stale in files[KEEP:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass  # another process pruning at once, or a file gone meanwhile: the next write tries again


def read_inventory(
    paths: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    derive: Callable[[Inventory], Any] | None = None,
) -> Inventory:
    """Scan ``paths`` (default ``sys.path``) for installed distributions, using the cache.

    Reads only ``*.dist-info``/``*.egg-info`` directory names, ``entry_points.txt`` and,
    for distributions with loopai entry points, their ``METADATA``; imports nothing.
    ``derive`` (JSON-able results only) runs on a fresh scan that goes to the cache, and
    its result, as ``Inventory.derived``, comes back with the cached inventory; whoever
    uses it checks that it still applies.
    """
    paths = list(sys.path if paths is None else paths)
    directory = cache_dir(environ)
    stamps = _stamps(paths)
    file = _cache_file(directory, paths) if directory is not None else None
    if file is not None:
        cached = _load_cached(file, stamps)
        if cached is not None:
            _touch_daily(file)
            return cached
    contents = [_contents(entry) for entry in paths] if file is not None else []
    inventory = scan(paths)
    if file is not None and _stamps(paths) == stamps:  # nothing changed while we scanned
        if derive is not None:
            inventory.derived = derive(inventory)
        _store(file, stamps, contents, inventory)
    return inventory
