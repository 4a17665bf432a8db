"""Installed distributions read from their metadata files only, with an mtime-keyed cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["GROUPS", "DistInfo", "EntryPointInfo", "Inventory", "cache_dir", "read_inventory"]

GROUPS: dict[str, str] = {
    "loopai.validators": "validator",
    "loopai.samplers": "sampler",
    "loopai.webhook_handlers": "webhook-handler",
}
_CACHE_FORMAT = 2
_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*?)(?:-py\d[\d.]*)?\.(?:dist|egg)-info$", re.I)


def canonical(name: str) -> str:
    """PEP 503 normalised project name (``Loopai_Core`` -> ``loopai-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
    wins, as for imports); ``from_cache`` tells whether this came from the cache.
    """

    plugins: list[DistInfo]
    versions: dict[str, str]
    from_cache: bool = False


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


def _headers(path: Path) -> tuple[str, str, str, list[str]]:
    """Name, Version, Summary and Requires-Dist of a METADATA / PKG-INFO file."""
    name = version = summary = ""
    requires: list[str] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return name, version, summary, requires
    for line in text.splitlines():
        if not line:
            break  # headers end at the first blank line; the description follows
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
        lines = (info / "requires.txt").read_text(encoding="utf-8").splitlines()
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
        for dirname in names:
            if not (dirname.endswith(".dist-info") or dirname.endswith(".egg-info")):
                continue
            match = _NAME_VERSION.match(dirname)
            info = Path(entry or ".", dirname)
            if match is not None:
                key, version = canonical(match["name"]), match["version"]
            else:  # ``name.egg-info`` from a develop install: the version is inside
                headers = _headers(info / "PKG-INFO")
                key, version = canonical(headers[0] or dirname.rsplit(".", 1)[0]), headers[1]
            if key in versions:
                continue  # shadowed by an earlier path entry
            versions[key] = version
            try:
                text = (info / "entry_points.txt").read_text(encoding="utf-8")
            except OSError:
                continue
            if "[loopai." not in text:
                continue
            eps = _entry_points(text)
            if not eps:
                continue
            is_egg = dirname.endswith(".egg-info")
            name, meta_version, summary, requires = _headers(info / ("PKG-INFO" if is_egg else "METADATA"))
            if is_egg:
                requires = requires or _egg_requires(info)
            plugins.append(DistInfo(name or key, meta_version or version, str(info), summary, requires, eps))
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
        with file.open(encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("format") != _CACHE_FORMAT or data.get("stamps") != stamps:
            return None
        plugins = [
            DistInfo(**{**d, "entry_points": [EntryPointInfo(**ep) for ep in d["entry_points"]]})
            for d in data["plugins"]
        ]
        return Inventory(plugins, dict(data["versions"]), from_cache=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or from another version: rescan


def _store(file: Path, stamps: list[list[object]], inventory: Inventory) -> None:
    data = {
        "format": _CACHE_FORMAT,
        "stamps": stamps,
        "plugins": [asdict(d) for d in inventory.plugins],
        "versions": inventory.versions,
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=file.parent, prefix=".discovery-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(temp, file)  # atomic: concurrent readers see the old or the new file
    except OSError:
        pass  # a read-only home or full disk only costs the next start a rescan


def read_inventory(paths: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Inventory:
    """Scan ``paths`` (default ``sys.path``) for installed distributions, using the cache.

    Reads only ``*.dist-info``/``*.egg-info`` directory names, ``entry_points.txt`` and,
    for distributions with loopai entry points, their ``METADATA``; imports nothing.
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
        _store(file, stamps, inventory)
    return inventory
