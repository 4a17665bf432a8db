"""``loopai plugins install / uninstall``: pip (or uv) of this interpreter, with loopai-core checks first.

Never pip in-process: pip is run as ``sys.executable -m pip`` (or, in an environment without
pip, as ``uv pip ... --python sys.executable``), so the packages land where this ``loopai``
runs and a broken or missing pip cannot take the host down with it.

Before anything is installed, the candidates that each SPEC names are resolved (without their
dependencies) and their ``Requires-Dist`` on loopai-core is checked against the installed core.
A candidate that does not admit it is refused, with the newest version of that plugin that
does; ``--force`` installs it anyway. The real install then pins loopai-core to the installed
version (a constraint), so that nothing it pulls in can replace the core either.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopai.cli._pip import (
    NO_INSTALLER,
    Candidate,
    Installer,
    ResolveError,
    admits,
    core_requirement,
    find_installer,
    fitting_version,
    forced_requirements,
    install_options,
    installed_version,
    pip_options,
    resolve_candidates,
    run_installer,
    tail,
)
from loopai.discovery import CORE, canonical  # the requirement checks (packaging) only when used

__all__ = ["add_command"]


# -- the command line ----------------------------------------------------------------------------------


def add_command(sub: Any, name: str, help_text: str, parent: argparse.ArgumentParser) -> None:
    """Add ``install`` or ``uninstall`` (``name``) to the ``plugins`` sub-commands (an argparse
    subparsers object); neither takes the plugin selection options (``parent``)."""
    if name == "uninstall":
        _add_uninstall(sub, help_text)
        return
    install = sub.add_parser(
        "install",
        help=help_text,
        description="Install plugin packages with the pip (or uv) of the Python that runs loopai. "
        "Each candidate's loopai-core requirement is checked first; loopai-core itself is never replaced. "
        "-q and -v are passed to the installer too.",
    )
    install.add_argument(
        "specs",
        nargs="+",
        metavar="SPEC",
        help="a requirement ('loopai-foo>=1.2'), a wheel, a folder or a URL (never an option: those go before)",
    )
    install.add_argument(
        "--force",
        action="store_true",
        help="install candidates whose loopai-core requirement does not admit the installed core anyway",
    )
    pip = install.add_argument_group("passed to pip")
    pip.add_argument("-i", "--index-url", metavar="URL", help="base URL of the package index")
    pip.add_argument("--extra-index-url", metavar="URL", action="append", default=[], help="another index")
    pip.add_argument("-f", "--find-links", metavar="DIR_OR_URL", action="append", default=[], help="look here too")
    pip.add_argument("--no-index", action="store_true", help="ignore package indexes (use --find-links)")
    pip.add_argument("--pre", action="store_true", help="consider pre-releases")
    pip.add_argument("--no-deps", action="store_true", help="install the named packages without their dependencies")
    pip.add_argument("-U", "--upgrade", action="store_true", help="upgrade named packages that are installed")
    pip.add_argument("--no-build-isolation", action="store_true", help="build with what is installed")
    pip.add_argument(
        "--pip-arg",
        metavar="ARG",
        action="append",
        default=[],
        help="any other installer option, one per --pip-arg (write --pip-arg=--trusted-host=example.org)",
    )
    install.set_defaults(handler=_install)


def _add_uninstall(sub: Any, help_text: str) -> None:
    uninstall = sub.add_parser(
        "uninstall",
        help=help_text,
        description="Uninstall the distributions that provide the named plugins. Names are looked up in "
        "installed metadata only: nothing is imported, so a plugin that fails to import can still go.",
    )
    uninstall.add_argument("names", nargs="+", metavar="NAME", help="a plugin name ('business-rules') or distribution")
    uninstall.add_argument(
        "-y", "--yes", action="store_true", help="do not ask (without it, a 'y' is read from the terminal or stdin)"
    )
    uninstall.set_defaults(handler=_uninstall)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# -- install -----------------------------------------------------------------------------------------------


def _core_version() -> str | None:
    version = installed_version(CORE)
    if version is None:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return None
    return version


def _refusal(candidate: Candidate, wanted: str, core: str, installer: Installer, options: Sequence[str]) -> list[str]:
    from loopai.discovery import needs_newer, specifier_set

    lines = [f"refused {candidate.label}: it requires {CORE}{wanted}, but {CORE} {core} is installed"]
    if candidate.direct:
        lines.append(f"  (it was named by a path or URL: {candidate.url or '?'})")
    else:
        fits = fitting_version(installer, candidate.name, options, core)
        if fits is not None and fits == installed_version(candidate.name):
            lines.append(f"  {candidate.name} {fits}, the installed version, fits {CORE} {core}")
        elif fits is not None and fits != candidate.version:
            lines.append(
                f"  {candidate.name} {fits} fits {CORE} {core}: loopai plugins install '{candidate.name}=={fits}'"
            )
        else:
            lines.append(f"  no version of {candidate.name} found that fits {CORE} {core}")
            if needs_newer(specifier_set(wanted), core):
                lines.append(f"  it needs a newer loopai-core: {sys.executable} -m pip install -U '{CORE}{wanted}'")
    lines.append(
        f"  --force installs {candidate.label} anyway; loopai then lists it as incompatible and does not load it"
    )
    return lines


def _spec_problem(spec: str) -> str | None:
    """Why ``spec`` is not a requirement, a path or a URL (None when it is one).

    The installer would read anything starting with ``-`` as an option (another index, a
    requirements file): options go before the SPECs, as loopai's own flags.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    if spec.startswith("-"):
        return (
            f"{spec!r} is an option, not a package: installer options go before the packages "
            "(--index-url URL, --pre, --no-deps; others with --pip-arg=...), and requirement files are not read"
        )
    if _is_path_or_url(spec):
        return None
    try:
        Requirement(spec)
    except InvalidRequirement as exc:
        return f"{spec!r} is not a requirement ('loopai-foo>=1.2'), a path or a URL: {exc}"
    return None


def _install(args: argparse.Namespace) -> int:
    not_packages = [problem for problem in map(_spec_problem, args.specs) if problem is not None]
    if not_packages:
        for problem in not_packages:
            _say(f"loopai plugins install: {problem}")
        _say("loopai plugins install: nothing was installed")
        return 2
    installer = find_installer()
    if installer is None:
        _say("loopai plugins install: " + NO_INSTALLER.format(python=sys.executable))
        return 1
    options = pip_options(args, installer)
    own = [*options, *install_options(args)]  # for the install itself, not the dry runs before it
    specs: list[str] = args.specs
    core = _core_version()
    if core is None:
        _say(f"loopai plugins install: {CORE} has no installed version here; its requirements cannot be checked")
        return _run_install(installer, own, specs, [], None)
    try:
        candidates = resolve_candidates(installer, specs, options)
    except ResolveError as exc:
        _say(f"loopai plugins install: {installer.tool} could not resolve {' '.join(specs)}:\n{tail(str(exc))}")
        return 1
    if any(canonical(c.name) == CORE for c in candidates):
        _say(
            f"loopai plugins install: {CORE} itself is not a plugin; "
            f"change it with: {sys.executable} -m pip install '{CORE}...'"
        )
        return 1
    refused = [(c, core_requirement(c)) for c in candidates if not admits(core_requirement(c), core)]
    if refused and not args.force:
        for candidate, wanted in refused:
            for line in _refusal(candidate, wanted or "", core, installer, options):
                _say(line)
        _say(f"loopai plugins install: nothing was installed ({len(refused)} refused)")
        return 1
    forced = [candidate for candidate, _ in refused]
    for candidate, wanted in refused:
        _say(f"--force: installing {candidate.label} although it requires {CORE}{wanted} ({core} is installed)")
    kept = specs if not forced else _unforced_specs(specs, forced)
    status = _run_install(installer, own, kept, forced, core)
    if status == 0:
        _report_installed(candidates)
    return status


def _unforced_specs(specs: Sequence[str], forced: Sequence[Candidate]) -> list[str]:
    """The SPECs left once the forced candidates' own SPECs are taken out (matched by name or URL)."""
    from packaging.requirements import InvalidRequirement, Requirement

    forced_names = {canonical(c.name) for c in forced}
    forced_urls = {c.url for c in forced if c.url}
    kept = []
    for spec in specs:
        if _is_path_or_url(spec):
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


def _is_path_or_url(spec: str) -> bool:
    """What pip would read as a file, directory or URL rather than a requirement."""
    return (
        "://" in spec
        or "/" in spec
        or os.sep in spec
        or spec.endswith((".whl", ".zip", ".tar.gz", ".tar.bz2", ".tgz"))
        or Path(spec).exists()
    )


def _run_install(
    installer: Installer,
    options: Sequence[str],
    specs: Sequence[str],
    forced: Sequence[Candidate],
    core: str | None,
) -> int:
    with tempfile.TemporaryDirectory(prefix="loopai-install-") as scratch:
        pinned: list[str] = []
        if core is not None:
            pin = Path(scratch, "constraints.txt")
            pin.write_text(f"{CORE}=={core}\n", encoding="utf-8")
            pinned = ["-c", str(pin)]
        # Forced candidates' other requirements go in with the rest, loopai-core pinned.
        needed = [*specs, *(r for c in forced for r in forced_requirements(c))]
        if needed:
            done = run_installer(installer.install(*pinned, *options, *needed))
            if done.returncode != 0:
                kept = f"; {CORE} stays at {core}, pinned: a package that needs another version is refused"
                _say(
                    f"loopai plugins install: {installer.tool} failed (exit {done.returncode}): its message above "
                    "says why (a requirement that cannot be found or met, say)" + (kept if core else "")
                )
                return 1
        if forced:
            exact = [c.url if c.direct and c.url else f"{c.name}=={c.version}" for c in forced]
            done = run_installer(installer.install("--no-deps", *options, *exact))
            if done.returncode != 0:
                _say(f"loopai plugins install: {installer.tool} failed (exit {done.returncode})")
                return 1
    return 0


def _report_installed(candidates: Sequence[Candidate]) -> None:
    """Name the plugins each installed distribution declares, with the status discovery gives them."""
    if not candidates:
        return
    from loopai.discovery import discover

    records = discover()
    for candidate in candidates:
        mine = [r for r in records if canonical(r.distribution) == canonical(candidate.name)]
        if not mine:
            print(f"{candidate.label}: declares no loopai plugins (no loopai.* entry points)")
            continue
        for record in mine:
            why = f": {record.reason}" if record.reason else ""
            print(f"{candidate.label}: {record.kind} {record.name!r} {record.status}{why}")


# -- uninstall ---------------------------------------------------------------------------------------------


@dataclass
class _Target:
    distribution: str
    version: str
    plugins: list[str]


def _uninstall_targets(names: Sequence[str]) -> tuple[list[_Target], list[str]]:
    """The distributions to remove for ``names``, and the problems (unknown, ambiguous, not a plugin)."""
    from loopai._kinds import kind_of
    from loopai.discovery import read_inventory

    inventory = read_inventory()
    by_distribution = {canonical(d.name): d for d in inventory.plugins}
    targets: dict[str, _Target] = {}
    problems = []
    for name in names:
        key = canonical(name)
        found = by_distribution.get(key)
        if found is None:
            providers = [d for d in inventory.plugins if any(ep.name == name for ep in d.entry_points)]
            if len(providers) > 1:
                listed = ", ".join(f"{d.name} {d.version}" for d in providers)
                problems.append(f"{name!r}: several distributions declare a plugin of that name ({listed}); name one")
                continue
            found = providers[0] if providers else None
        if found is None:
            if key == CORE:
                problems.append(f"{name!r}: loopai plugins uninstall does not remove loopai-core itself")
            elif key in inventory.versions:
                problems.append(
                    f"{name!r} is installed but declares no loopai plugins; "
                    f"remove it with: {sys.executable} -m pip uninstall {name}"
                )
            else:
                problems.append(f"{name!r}: no installed plugin or plugin distribution has that name")
            continue
        plugins = [f"{kind_of(ep.group).label} {ep.name!r}" for ep in found.entry_points]
        targets.setdefault(canonical(found.name), _Target(found.name, found.version, plugins))
    return list(targets.values()), problems


def _confirmation(targets: Sequence[_Target]) -> bool | None:
    """The answer to "Uninstall ...? [y/N]", asked on stderr and read from stdin (a terminal or a pipe,
    as pip reads it); None when stdin is closed or ends before an answer."""
    listed = ", ".join(f"{t.distribution} {t.version}" for t in targets)
    print(f"Uninstall {listed}? [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        line = sys.stdin.readline() if sys.stdin is not None else ""
    except (OSError, ValueError):
        line = ""
    if not sys.stdin or not sys.stdin.isatty():
        print(line.strip(), file=sys.stderr)  # echo what the pipe answered, as a terminal would show it
    if not line:
        return None
    return line.strip().lower() in ("y", "yes")


def _uninstall(args: argparse.Namespace) -> int:
    targets, problems = _uninstall_targets(args.names)
    for problem in problems:
        _say(f"loopai plugins uninstall: {problem}")
    if problems:
        _say("loopai plugins uninstall: nothing was uninstalled")
        return 1
    for target in targets:
        print(f"{target.distribution} {target.version}: {', '.join(target.plugins)}")
    if not args.yes:
        answer = _confirmation(targets)
        if answer is None:
            _say("loopai plugins uninstall: no answer on standard input: pass --yes, or pipe in 'y' (echo y | ...)")
            return 2
        if not answer:
            _say("loopai plugins uninstall: nothing was uninstalled")
            return 1
    installer = find_installer()
    if installer is None:
        _say("loopai plugins uninstall: " + NO_INSTALLER.format(python=sys.executable))
        return 1
    done = run_installer(installer.uninstall(*(t.distribution for t in targets)))
    if done.returncode != 0:
        _say(f"loopai plugins uninstall: {installer.tool} failed (exit {done.returncode})")
        return 1
    print(f"uninstalled {', '.join(f'{t.distribution} {t.version}' for t in targets)}")
    return 0
