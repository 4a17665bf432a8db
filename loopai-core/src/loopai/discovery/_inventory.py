"""Installed distributions read from their metadata files only: names, versions, loopai entry points."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import unquote, urlsplit

from loopai._kinds import KINDS

__all__ = [
    "CORE",
    "DistInfo",
    "EntryPointInfo",
    "Inventory",
    "Shadowed",
    "canonical",
    "scan",
    "stamp",
    "watched_files",
]

CORE: Final = "loopai-core"
"""The distribution plugins depend on, by its canonical name."""

_GROUPS: Final = frozenset(kind.group for kind in KINDS)
_OURS: Final = frozenset(("loopai-core", "loopai-builtin"))
"""Distributions whose second copy matters even when neither declares plugins."""
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


class EntryPointInfo(NamedTuple):
    """One ``loopai.*`` entry point as declared, not imported (a tuple: a warm discovery makes
    one per plugin from the cache, and a tuple is the cheapest immutable record to make)."""

    group: str
    name: str
    value: str


@dataclass(slots=True)
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
    watched: dict[str, tuple[bool, list[tuple[int, int]]]] = field(default_factory=dict, repr=False, compare=False)
    """Metadata directories that may be rewritten in place: whether each is a plugin's, and
    the stamps of its files that :func:`watched_files` names (for the cache)."""
    shadowed: list[Shadowed] = field(default_factory=list)
    """Distributions installed twice under one name where it matters to loopai (see :func:`scan`)."""


@dataclass(frozen=True)
class Shadowed:
    """One name installed twice on the search path: the copy imports use, and the one it hides."""

    name: str
    used_version: str
    used_path: str
    hidden_version: str
    hidden_path: str

    def message(self) -> str:
        """The warning: both copies, which is used, and what to do."""
        return (
            f"two distributions named {self.name} are installed: {self.name} {self.used_version} at "
            f"{self.used_path} is used (it comes first on sys.path) and hides {self.name} {self.hidden_version} "
            f"at {self.hidden_path}; uninstall one, or take its directory off sys.path (PYTHONPATH)"
        )


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
        if group in _GROUPS and "=" in line:
            name, _, value = line.partition("=")
            found.append(EntryPointInfo(group, name.strip(), value.strip()))
    return found


def _read(
    path: str | os.PathLike[str], headers_only: bool = False, stamps: list[tuple[int, int]] | None = None
) -> bytes:
    """The bytes of a file; with ``headers_only``, at least up to its first blank line.

    Plain system calls: pathlib's read_text costs about twice as much per small file, which
    shows with a thousand distributions. Callers decode; newlines are left as they are,
    which splitlines() treats as read_text's universal newlines would. With ``stamps``, the
    file's :func:`_stamp` is appended to it, taken before reading: a file rewritten while it
    is read then looks changed to the next warm discovery, never the other way round.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        if stamps is not None:
            stamps.append(stamp(fd))
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


_MISSING = (-1, -1)


def stamp(file: int | str) -> tuple[int, int]:
    """``(mtime_ns, size)`` of an open file descriptor or a path; ``(-1, -1)`` when there is none."""
    try:
        st = os.stat(file)
    except OSError:
        return _MISSING
    return st.st_mtime_ns, st.st_size


def _blank_line(data: bytes) -> int:
    # Where to cut header bytes: just after the "\n" that starts an empty line. The cut is at
    # a line boundary at or after the first empty line (by splitlines), and UTF-8 never has
    # b"\n" inside a character, so decoding and splitting the cut text gives the same lines
    # up to that empty line as the whole file would. -1 when there is none yet.
    found = [i for i in (data.find(b"\n\n"), data.find(b"\n\r\n")) if i >= 0]
    return min(found) + 1 if found else -1


def _headers(
    path: str | os.PathLike[str], stamps: list[tuple[int, int]] | None = None
) -> tuple[str, str, str, list[str]]:
    """Name, Version, Summary and Requires-Dist of a METADATA / PKG-INFO file (its stamp to ``stamps``)."""
    name = version = summary = ""
    requires: list[str] = []
    try:
        text = _read(path, headers_only=True, stamps=stamps).decode("utf-8", errors="replace")
    except OSError:
        if stamps is not None:
            stamps.append(_MISSING)
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


def _egg_requires(info: str, stamps: list[tuple[int, int]]) -> list[str]:
    """The requirements of a legacy egg-info's ``requires.txt`` as Requires-Dist lines.

    ``[extra]``, ``[:marker]`` and ``[extra:marker]`` sections become markers of their lines
    (as importlib.metadata reads them), so that a ``[:python_version < "3.11"]`` section is
    checked where it applies and an extra's is not.
    """
    try:
        lines = _read(info + os.sep + "requires.txt", stamps=stamps).decode("utf-8", errors="replace").splitlines()
    except OSError:
        stamps.append(_MISSING)
        return []
    requires = []
    marker = ""
    for line in lines:
        line = line.strip()
        if not line or line[0] == "#":
            continue
        if line[0] == "[" and line[-1] == "]":
            marker = _section_marker(line[1:-1])
            continue
        if not marker:
            requires.append(line)
            continue
        requirement, _, own = line.partition(";")
        own = own.strip()
        requires.append(f"{requirement.strip()}; ({own}) and ({marker})" if own else f"{line}; {marker}")
    return requires


def _section_marker(section: str) -> str:
    """``fancy:python_version < "3.11"`` -> ``extra == "fancy" and (python_version < "3.11")``."""
    extra, _, condition = section.partition(":")
    extra, condition = extra.strip(), condition.strip()
    if extra and condition:
        return f'extra == "{extra}" and ({condition})'
    return f'extra == "{extra}"' if extra else condition


def watched_files(info: str, plugin: bool) -> tuple[str, ...]:
    """The files of egg-info ``info`` whose in-place rewrites invalidate the cache (see the cache's
    docstring: dist-infos are replaced whole): a plugin's ``entry_points.txt``, ``PKG-INFO`` and
    ``requires.txt``; another egg-info's ``entry_points.txt`` (it may gain some) and ``PKG-INFO``
    (a develop install's version is read from it)."""
    return ("entry_points.txt", "PKG-INFO", "requires.txt") if plugin else ("entry_points.txt", "PKG-INFO")


def _declared(info: str, stamps: list[tuple[int, int]] | None) -> list[EntryPointInfo]:
    """The loopai entry points in ``info``'s ``entry_points.txt`` (its stamp to ``stamps``)."""
    try:
        # Any distribution's file is read here: a badly encoded one must not stop discovery.
        text = _read(info + os.sep + "entry_points.txt", stamps=stamps).decode("utf-8", errors="replace")
    except OSError:
        if stamps is not None:
            stamps.append(_MISSING)
        return []
    return _entry_points(text) if "[loopai." in text else []


def _editable_folder(dist_info: str) -> str | None:
    """The project folder a dist-info's distribution is installed editable from, as its
    ``direct_url.json`` (PEP 610) says; None for any other install, or when that file cannot be read."""
    try:
        direct = json.loads(_read(dist_info + os.sep + "direct_url.json"))
    except (OSError, ValueError):
        return None
    if not isinstance(direct, dict) or not isinstance(direct.get("dir_info"), dict):
        return None
    if direct["dir_info"].get("editable") is not True or not isinstance(direct.get("url"), str):
        return None
    url = urlsplit(direct["url"])
    if url.scheme != "file" or url.netloc not in ("", "localhost"):
        return None
    if os.name == "nt":  # file:///C:/project -> C:\project
        from urllib.request import url2pathname

        return url2pathname(url.path)
    return unquote(url.path)


def _one_editable_install(used: str, hidden: str) -> bool:
    """Whether metadata directories ``used`` and ``hidden`` (one name, one version) are one editable
    install: the dist-info of ``pip install -e`` (its ``direct_url.json`` names project folder P) and
    the egg-info setuptools leaves in P, on the path beside the code (``P/src/name.egg-info`` of a
    src layout, through the editable install's ``.pth`` file; ``P/name.egg-info`` of a flat one, when
    P is the working directory). Either may come first on the path."""
    dist_info, egg_info = (used, hidden) if used.endswith(".dist-info") else (hidden, used)
    if not dist_info.endswith(".dist-info") or not egg_info.endswith(".egg-info"):
        return False
    folder = _editable_folder(dist_info)
    if not folder:
        return False
    project = os.path.realpath(folder)
    holder = os.path.realpath(os.path.dirname(os.path.abspath(egg_info)))
    try:
        return os.path.commonpath((project, holder)) == project
    except ValueError:  # on different drives
        return False


def scan(paths: Sequence[str]) -> Inventory:
    """Read what is installed on ``paths`` from metadata files alone (first on the path wins).

    A name installed twice is noted in ``shadowed`` when it matters to loopai: it is
    loopai-core or loopai-builtin, or either copy declares loopai entry points (a stale copy
    earlier on the path silently replaces the real one's plugins, or adds its own). The egg-info
    that setuptools leaves in the project folder of an editable install, of the dist-info's name
    and version, is that install's own metadata, not a second copy (see :func:`_one_editable_install`).
    """
    plugins: list[DistInfo] = []
    versions: dict[str, str] = {}
    first: dict[str, tuple[str, str]] = {}  # name -> (version, metadata directory) of the copy used
    shadowed: list[Shadowed] = []
    watched: dict[str, tuple[bool, list[tuple[int, int]]]] = {}
    scanned: set[str] = set()
    for entry in paths:
        real = os.path.realpath(entry or ".")
        if real in scanned:
            continue  # a directory on the path twice holds each distribution once
        scanned.add(real)
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
            is_egg = dirname.endswith(".egg-info")
            egg_stamps: list[tuple[int, int]] = []  # of PKG-INFO, when the version is read from it
            if match is not None:
                key, version = canonical(match[0]), match[1]
            else:  # ``name.egg-info`` from a develop install: the version is inside
                headers = _headers(os.path.join(info, "PKG-INFO"), egg_stamps)
                key, version = canonical(headers[0] or dirname.rsplit(".", 1)[0]), headers[1]
            if key in versions:  # shadowed by an earlier path entry
                used_version, used = first[key]
                hidden_stamps: list[tuple[int, int]] = []  # of what is read, for eggs (as watched_files says)
                declares = _declared(info, hidden_stamps if is_egg else None)
                if is_egg:
                    # Watched: whether this copy counts (its entry points, its version) is read from
                    # files that setuptools rewrites in place.
                    hidden_stamps.append(egg_stamps[0] if egg_stamps else stamp(info + os.sep + "PKG-INFO"))
                    watched[info] = (False, hidden_stamps)
                if (key in _OURS or declares or any(d.path == used for d in plugins)) and not (
                    version == used_version and _one_editable_install(used, info)
                ):
                    shadowed.append(Shadowed(key, used_version, used, version, info))
                continue
            versions[key] = version
            first[key] = (version, info)
            stamps: list[tuple[int, int]] = []  # of what is read, for eggs
            eps = _declared(info, stamps if is_egg else None)
            if not eps:
                if is_egg:
                    stamps.append(egg_stamps[0] if egg_stamps else stamp(info + os.sep + "PKG-INFO"))
                    watched[info] = (False, stamps)
                continue
            metadata = info + os.sep + ("PKG-INFO" if is_egg else "METADATA")
            name, meta_version, summary, requires = _headers(metadata, stamps if stamps else None)
            if is_egg:
                listed = _egg_requires(info, stamps)
                requires = requires or listed
            if stamps:
                watched[info] = (True, stamps)
            plugins.append(DistInfo(name or key, meta_version or version, info, summary, requires, eps))
    return Inventory(plugins, versions, watched=watched, shadowed=shadowed)
