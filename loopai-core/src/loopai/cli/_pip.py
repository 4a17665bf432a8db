"""The installer of this interpreter: pip (``sys.executable -m pip``) or, without pip, uv; and what it would install.

Never pip in-process: the packages land where this ``loopai`` runs, and a broken or missing pip
cannot take the host down with it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopai.discovery import CORE, canonical  # the requirement checks (packaging) only when used

__all__ = [
    "NO_INSTALLER",
    "Candidate",
    "admits",
    "core_requirement",
    "forced_requirements",
    "Installer",
    "ResolveError",
    "find_installer",
    "fitting_version",
    "install_options",
    "installed_version",
    "pip_options",
    "resolve_candidates",
    "run_installer",
    "editable_source",
    "is_path_or_url",
    "spec_problem",
    "tail",
    "core_version",
    "unforced_specs",
    "uri_of",
]

_FIT_SEARCH_SECONDS = 120.0
"""How long the search for a version that fits may take (the installer backtracks through versions)."""


@dataclass(frozen=True)
class Installer:
    """How packages get into this interpreter's environment."""

    tool: str
    """``pip`` or ``uv``."""
    command: tuple[str, ...]
    """The command before ``install``/``uninstall`` (``python -m pip``, ``uv pip``)."""

    def install(self, *args: str) -> list[str]:
        if self.tool == "uv":
            return [*self.command, "install", "--python", sys.executable, *args]
        return [*self.command, "install", *args]

    def uninstall(self, *distributions: str) -> list[str]:
        if self.tool == "uv":
            return [*self.command, "uninstall", "--python", sys.executable, *distributions]
        return [*self.command, "uninstall", "-y", *distributions]


def find_installer() -> Installer | None:
    """pip when this interpreter has it, else uv on PATH, else None."""
    if importlib.util.find_spec("pip") is not None:
        return Installer("pip", (sys.executable, "-m", "pip"))
    uv = shutil.which("uv")
    if uv is not None:
        return Installer("uv", (uv, "pip"))
    return None


NO_INSTALLER = (
    "this Python has no pip and uv is not on PATH; add pip ({python} -m ensurepip) or install uv, then try again"
)


def _environ() -> dict[str, str]:
    return {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run_installer(
    command: Sequence[str], *, capture: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=capture, text=True, env=_environ(), timeout=timeout, check=False
    )


def pip_options(args: argparse.Namespace, installer: Installer) -> list[str]:
    options: list[str] = []
    if args.index_url:
        options += ["--index-url", args.index_url]
    for url in args.extra_index_url:
        options += ["--extra-index-url", url]
    for link in args.find_links:
        options += ["--find-links", link]
    if args.no_index:
        options.append("--no-index")
    if args.pre:
        options += ["--prerelease", "allow"] if installer.tool == "uv" else ["--pre"]
    if args.upgrade:
        options.append("--upgrade")
    if args.no_build_isolation:
        options.append("--no-build-isolation")
    options += args.pip_arg  # last, as the user wrote them: an option that takes a value gets the next word
    return options


def install_options(args: argparse.Namespace) -> list[str]:
    """Options for the install itself only: ``--no-deps`` and loopai's own ``-q`` / ``-v`` (the dry runs
    that resolve candidates read the installer's report from its output, which must stay clean). They go
    before :func:`pip_options`, which end with the user's ``--pip-arg`` values."""
    options = ["--no-deps"] if getattr(args, "no_deps", False) else []
    return options + ["-q"] * getattr(args, "quiet", 0) + ["-v"] * getattr(args, "verbose", 0)


def tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(f"  {line}" for line in kept[-lines:])


# -- candidates: what the installer would install ------------------------------------------------------------


@dataclass
class Candidate:
    """A distribution the installer would install for a SPEC, read from its metadata."""

    name: str
    version: str
    requires: list[str] = field(default_factory=list)
    direct: bool = False
    """Named by a path or URL, not picked from an index."""
    url: str | None = None
    extras: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def admits(specifier: str | None, version: str) -> bool:
    """:func:`loopai.discovery.admits`, imported when asked (it brings packaging along)."""
    from loopai.discovery import admits as discovery_admits

    return discovery_admits(specifier, version)


def core_requirement(candidate: Candidate) -> str | None:
    """The candidate's loopai-core specifier (``>=0.1,<1.0``) that applies here, or None without one."""
    from loopai.discovery import core_requirement as _core_requirement

    return _core_requirement(candidate.requires, candidate.extras)


def forced_requirements(candidate: Candidate) -> list[str]:
    """What the candidate needs besides loopai-core, markers applied (for a forced install)."""
    from loopai.discovery import other_requirements

    return other_requirements(candidate.requires, candidate.extras)


class ResolveError(Exception):
    """The installer could not resolve the SPECs; the message holds its explanation."""


def _from_report(report: dict[str, Any]) -> list[Candidate]:
    candidates = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        info = item.get("download_info", {})
        candidates.append(
            Candidate(
                name=metadata.get("name", "?"),
                version=metadata.get("version", "?"),
                requires=list(metadata.get("requires_dist", [])),
                direct=bool(item.get("is_direct")),
                url=info.get("url"),
                extras=list(item.get("requested_extras", [])),
            )
        )
    return candidates


def _from_target(target: Path) -> list[Candidate]:
    from email.parser import BytesHeaderParser

    candidates = []
    for info in sorted(target.glob("*.dist-info")):
        try:
            headers = BytesHeaderParser().parse((info / "METADATA").open("rb"))
        except OSError:
            continue
        direct_url = None
        with contextlib.suppress(OSError, ValueError):
            direct_url = json.loads((info / "direct_url.json").read_text(encoding="utf-8")).get("url")
        candidates.append(
            Candidate(
                name=str(headers.get("Name", info.name)),
                version=str(headers.get("Version", "?")),
                requires=[str(line) for line in headers.get_all("Requires-Dist") or []],
                direct=direct_url is not None,
                url=direct_url,
            )
        )
    return candidates


def resolve_candidates(installer: Installer, specs: Sequence[str], options: Sequence[str]) -> list[Candidate]:
    """What the installer would install for ``specs`` themselves (not their dependencies).

    pip: ``install --dry-run --report`` (what is already installed and satisfies a SPEC is not
    listed). uv, which has no report: an install without dependencies into a scratch directory,
    whose metadata is then read. Raises :class:`ResolveError`.
    """
    if installer.tool == "pip":
        command = installer.install("--dry-run", "--quiet", "--report", "-", "--no-deps", *options, *specs)
        done = run_installer(command, capture=True)
        if done.returncode != 0:
            raise ResolveError(done.stderr or done.stdout)
        try:
            return _from_report(json.loads(done.stdout))
        except ValueError:
            raise ResolveError(f"pip printed no installation report (is it older than 22.2?)\n{done.stdout}") from None
    with tempfile.TemporaryDirectory(prefix="loopai-resolve-") as scratch:
        done = run_installer(
            installer.install("--quiet", "--no-deps", "--target", scratch, *options, *specs), capture=True
        )
        if done.returncode != 0:
            raise ResolveError(done.stderr or done.stdout)
        return _from_target(Path(scratch))


def fitting_version(installer: Installer, name: str, options: Sequence[str], core: str) -> str | None:
    """The newest version of ``name`` that installs next to loopai-core ``core``, or None.

    The installer resolves ``name`` with loopai-core pinned to ``core`` and backtracks to the
    newest version whose requirements allow it (bounded in time). A version already installed
    that fits counts.
    """
    with tempfile.TemporaryDirectory(prefix="loopai-fit-") as scratch:
        pin = Path(scratch, "constraints.txt")
        pin.write_text(f"{CORE}=={core}\n", encoding="utf-8")
        report = ("--quiet", "--report", "-") if installer.tool == "pip" else ()
        command = installer.install("--dry-run", *report, "-c", str(pin), *options, name)
        try:
            done = run_installer(command, capture=True, timeout=_FIT_SEARCH_SECONDS)
        except subprocess.TimeoutExpired:
            return None
    if done.returncode != 0:
        return None
    wanted = canonical(name)
    if installer.tool == "pip":
        try:
            planned = {canonical(c.name): c.version for c in _from_report(json.loads(done.stdout))}
        except ValueError:
            return None
    else:  # uv has no report; it lists what it would install as " + name==version"
        planned = {}
        for line in (done.stderr + done.stdout).splitlines():
            text = line.strip()
            listed, sep, version = text.removeprefix("+ ").partition("==")
            if sep and text.startswith("+ "):
                planned[canonical(listed)] = version.split()[0]
    # Nothing to install for it: the installed version fits.
    return planned[wanted] if wanted in planned else installed_version(name)


def installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def is_path_or_url(spec: str) -> bool:
    """What pip would read as a file, directory or URL rather than a requirement."""
    return (
        "://" in spec
        or "/" in spec
        or os.sep in spec
        or spec.endswith((".whl", ".zip", ".tar.gz", ".tar.bz2", ".tgz"))
        or Path(spec).exists()
    )


def spec_problem(spec: str) -> str | None:
    """Why ``spec`` is not a requirement, a path or a URL (None when it is one).

    The installer would read anything starting with ``-`` as an option (another index, a
    requirements file): options go before the SPECs, as loopai's own flags.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    if spec.startswith("-"):
        return (
            f"{spec!r} is an option, not a package: installer options go before the packages "
            "(--index-url URL, --pre, --no-deps, -e PATH; others with --pip-arg=...), "
            "and requirement files are not read"
        )
    if is_path_or_url(spec):
        return None
    try:
        Requirement(spec)
    except InvalidRequirement as exc:
        return f"{spec!r} is not a requirement ('loopai-foo>=1.2'), a path or a URL: {exc}"
    return None


def editable_source(name: str) -> str | None:
    """Where the installed distribution ``name`` is installed editable from (``pip install -e``: its
    ``direct_url.json`` says so), as a path for a folder; None when it is not installed or not editable."""
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlparse

    try:
        text = distribution(name).read_text("direct_url.json")
    except (PackageNotFoundError, OSError):
        return None
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("dir_info"), dict) or not data["dir_info"].get("editable"):
        return None
    url = str(data.get("url", ""))
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url


def core_version() -> str | None:
    """The installed loopai-core's version, when it is one that requirements can be checked against."""
    version = installed_version(CORE)
    if version is None:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return None
    return version


def unforced_specs(specs: Sequence[str], forced: Sequence[Candidate]) -> list[str]:
    """The SPECs left once the forced candidates' own SPECs are taken out (matched by name or URL)."""
    from packaging.requirements import InvalidRequirement, Requirement

    forced_names = {canonical(c.name) for c in forced}
    forced_urls = {c.url for c in forced if c.url}
    kept = []
    for spec in specs:
        if is_path_or_url(spec):
            path = Path(spec).expanduser()
            if spec in forced_urls or (path.exists() and path.resolve().as_uri() in forced_urls):
                continue
        else:
            try:
                if canonical(Requirement(spec).name) in forced_names:
                    continue
            except InvalidRequirement:
                pass  # the installer made sense of it: keep it
        kept.append(spec)
    return kept


def uri_of(spec: str) -> str:
    """A folder's ``file://`` URL, as the installer reports it; a URL as it is."""
    return spec if "://" in spec else Path(spec).expanduser().resolve().as_uri()
