"""Installed distributions read from their metadata files only, with an mtime-keyed cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GROUPS", "DistInfo", "EntryPointInfo", "Inventory", "cache_dir", "read_inventory"]

GROUPS: dict[str, str] = {
    "loopai.validators": "validator",
    "loopai.samplers": "sampler",
    "loopai.webhook_handlers": "webhook-handler",
}
_CACHE_FORMAT = 3
_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*?)(?:-py\d[\d.]*)?\.(?:dist|egg)-info$", re.I)


_SEPARATORS = re.compile(r"[-_.]+")


def canonical(name: str) -> str:
    """PEP 503 normalised project name (``Loopai_Core`` -> ``loopai-core``)."""
    dashed = name.replace("_", "-").replace(".", "-")  # the same unless separators run together
    return (dashed if "--" not in dashed else _SEPARATORS.sub("-", name)).lower()


def _name_version(dirname: str) -> tuple[str, str] | None:
    """``_NAME_VERSION``'s name and version of a directory name; None when it does not match."""
    if dirname.endswith(".dist-info"):
        # A wheel's ``name-version.dist-info``: one dash, the name escaped. The regular
        # expression would find the same two parts; this is the common case, made cheap.
        name, sep, version = dirname[:-10].partition("-")
        if sep and name and "-" not in version and version[:1].isdecimal() and "\n" not in name:
            return name, version
    match = _NAME_VERSION.match(dirname)
    return (match["name"], match["version"]) if match is not None else None


@dataclass(frozen=True)
class EntryPointInfo:
    """One ``loopai.*`` entry point as declared, not imported."""

    group: str
    name: str
    value: str


@dataclass
class DistInfo:
    """A distribution that declares loopai entry points, read from its metadata files."""

    name: str
    version: str
    path: str
    summary: str = ""
    requires: list[str] = field(default_factory=list)
    entry_points: list[EntryPointInfo] = field(default_factory=list)


@dataclass
class Inventory:
    """What is installed on a search path: loopai plugin distributions and every version.

    ``versions`` maps canonical project names to installed versions (first on the path
    wins, as for imports); ``from_cache`` tells whether this came from the cache;
    ``derived`` is what ``read_inventory``'s ``derive`` made of it, kept in the cache too.
    """

    plugins: list[DistInfo]
    versions: dict[str, str]
    from_cache: bool = False
    derived: Any = None


def _entry_points(text: str) -> list[EntryPointInfo]:
    found: list[EntryPointInfo] = []
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            group = line[1:-1].strip()
            continue
        if group in GROUPS and "=" in line:
            name, _, value = line.partition("=")
            found.append(EntryPointInfo(group, name.strip(), value.strip()))
    return found


def _read(path: str | os.PathLike[str], headers_only: bool = False) -> bytes:
    """The bytes of a file; with ``headers_only``, at least up to its first blank line.

    Plain system calls: pathlib's read_text costs about twice as much per small file, which
    shows with a thousand distributions. Callers decode; newlines are left as they are,
    which splitlines() treats as read_text's universal newlines would.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        data = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
            if headers_only:
                end = _blank_line(data)
                if end >= 0:
                    return data[:end]
    finally:
        os.close(fd)


def _blank_line(data: bytes) -> int:
    # Where to cut header bytes: just after the "\n" that starts an empty line. The cut is at
    # a line boundary at or after the first empty line (by splitlines), and UTF-8 never has
    # b"\n" inside a character, so decoding and splitting the cut text gives the same lines
    # up to that empty line as the whole file would. -1 when there is none yet.
    found = [i for i in (data.find(b"\n\n"), data.find(b"\n\r\n")) if i >= 0]
    return min(found) + 1 if found else -1


def _headers(path: str | os.PathLike[str]) -> tuple[str, str, str, list[str]]:
    """Name, Version, Summary and Requires-Dist of a METADATA / PKG-INFO file."""
    name = version = summary = ""
    requires: list[str] = []
    try:
        text = _read(path, headers_only=True).decode("utf-8", errors="replace")
    except OSError:
        return name, version, summary, requires
    for line in text.splitlines():
        if not line:
            break  # headers end at the first blank line; the description follows
        if line[0] not in "NnVvSsRr":
            continue  # not one of the four read here (only these letters lower() to n, v, s, r)
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        key = key.lower()
        if key == "name":
            name = value
        elif key == "version":
            version = value
        elif key == "summary":
            summary = value
        elif key == "requires-dist":
            requires.append(value)
    return name, version, summary, requires


def _egg_requires(info: Path) -> list[str]:
    # Legacy egg-info keeps requirements in requires.txt, extras in [sections].
    try:
        lines = (info / "requires.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    requires = []
    for line in lines:
        line = line.strip()
        if line.startswith("["):
            break
        if line:
            requires.append(line)
    return requires


def _scan(paths: Sequence[str]) -> Inventory:
    plugins: list[DistInfo] = []
    versions: dict[str, str] = {}
    for entry in paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue  # missing directories and zip files on sys.path hold no plugins here
        # Strings, not Paths, in this loop: it runs once per installed distribution.
        # ``prefix`` is normalised as Path would (``""`` -> ``"."``), so DistInfo.path is too.
        prefix = str(Path(entry or "."))
        base = "" if prefix == "." else os.path.join(prefix, "")  # base + name == os.path.join(prefix, name)
        for dirname in names:
            if not dirname.endswith((".dist-info", ".egg-info")):
                continue
            match = _name_version(dirname)
            info = base + dirname
            if match is not None:
                key, version = canonical(match[0]), match[1]
            else:  # ``name.egg-info`` from a develop install: the version is inside
                headers = _headers(os.path.join(info, "PKG-INFO"))
                key, version = canonical(headers[0] or dirname.rsplit(".", 1)[0]), headers[1]
            if key in versions:
                continue  # shadowed by an earlier path entry
            versions[key] = version
            try:
                # Any distribution's file is read here: a badly encoded one must not stop discovery.
                text = _read(info + os.sep + "entry_points.txt").decode("utf-8", errors="replace")
            except OSError:
                continue
            if "[loopai." not in text:
                continue
            eps = _entry_points(text)
            if not eps:
                continue
            is_egg = dirname.endswith(".egg-info")
            name, meta_version, summary, requires = _headers(info + os.sep + ("PKG-INFO" if is_egg else "METADATA"))
            if is_egg:
                requires = requires or _egg_requires(Path(info))
            plugins.append(DistInfo(name or key, meta_version or version, info, summary, requires, eps))
    return Inventory(plugins, versions)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the discovery cache lives; None when ``LOOPAI_NO_CACHE`` is set.

    ``LOOPAI_CACHE_DIR``, else ``$XDG_CACHE_HOME/loopai``, else ``~/.cache/loopai``.
    """
    environ = os.environ if environ is None else environ
    if environ.get("LOOPAI_NO_CACHE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return None
    if environ.get("LOOPAI_CACHE_DIR"):
        return Path(environ["LOOPAI_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "loopai")


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


def _cache_file(directory: Path, paths: Sequence[str]) -> Path:
    key = hashlib.sha256(json.dumps([sys.executable, list(paths), _CACHE_FORMAT]).encode()).hexdigest()[:24]
    return directory / f"discovery-{key}.json"


def _load_cached(file: Path, stamps: list[list[object]]) -> Inventory | None:
    try:
        data = json.loads(_read(file))
        if data.get("format") != _CACHE_FORMAT or data.get("stamps") != stamps:
            return None
        lines, folders = data["lines"], data["folders"]
        plugins = [
            DistInfo(
                name,
                version,
                folders[folder] + base,
                summary,
                [lines[i] for i in requires],
                [EntryPointInfo(*ep) for ep in eps],
            )
            for name, version, (folder, base), summary, requires, eps in data["plugins"]
        ]
        return Inventory(plugins, dict(data["versions"]), from_cache=True, derived=data.get("derived"))
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None  # unreadable or from another version: rescan


def _split_path(path: str, folders: dict[str, int]) -> list[object]:
    head, sep, tail = path.rpartition(os.sep)  # head + sep + tail == path, whatever it holds
    return [folders.setdefault(head + sep, len(folders)), tail]


def _store(file: Path, stamps: list[list[object]], inventory: Inventory) -> None:
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
    data = {
        "format": _CACHE_FORMAT,
        "stamps": stamps,
        "lines": list(lines),
        "folders": list(folders),
        "plugins": plugins,
        "versions": inventory.versions,
        "derived": inventory.derived,
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=file.parent, prefix=".discovery-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(temp, file)  # atomic: concurrent readers see the old or the new file
    except OSError:
        pass  # a read-only home or full disk only costs the next start a rescan


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
            return cached
    inventory = _scan(paths)
    if file is not None and _stamps(paths) == stamps:  # nothing changed while we scanned
        if derive is not None:
            inventory.derived = derive(inventory)
        _store(file, stamps, inventory)
    return inventory
