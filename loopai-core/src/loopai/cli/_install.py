"""``loopai plugins install / uninstall``: pip (or uv) of this interpreter, with loopai-core checks first.

Never pip in-process: pip is run as ``sys.executable -m pip`` (or, in an environment without
pip, as ``uv pip ... --python sys.executable``), so the packages land where this ``loopai``
runs and a broken or missing pip cannot take the host down with it.

Before anything is installed, the candidates that each SPEC names are resolved (without their
dependencies) and their ``Requires-Dist`` on loopai-core is checked against the installed core.
A candidate that does not admit it is refused, with the newest version of that plugin that
does; ``--force`` installs it anyway. The real install then pins loopai-core to the installed
version (a constraint), so that nothing it pulls in can replace the core either. ``-e PATH`` is
checked from the folder's metadata as a folder SPEC is, then installed editable (``pip install -e``);
a plain install that replaces an editable one is said, with how to keep it editable.
"""

from __future__ import annotations

import argparse
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
    core_version,
    editable_source,
    find_installer,
    fitting_version,
    forced_requirements,
    install_options,
    installed_version,
    pip_options,
    resolve_candidates,
    run_installer,
    spec_problem,
    tail,
    unforced_specs,
    uri_of,
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
        epilog="Exit status: 0 installed; 2 nothing installed (a usage error, a SPEC that is no package, no pip, "
        "a candidate refused as incompatible, or pip failing: its message says why).",
    )
    install.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="a requirement ('loopai-foo>=1.2'), a wheel, a folder or a URL (never an option: those go before)",
    )
    install.add_argument(
        "-e",
        "--editable",
        metavar="PATH",
        action="append",
        default=[],
        help="install the project in folder PATH editable (pip install -e): edits take effect without a reinstall",
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
    install.set_defaults(handler=_install, install_parser=install)


def _add_uninstall(sub: Any, help_text: str) -> None:
    uninstall = sub.add_parser(
        "uninstall",
        help=help_text,
        description="Uninstall the distributions that provide the named plugins. Names are looked up in "
        "installed metadata only: nothing is imported, so a plugin that fails to import can still go.",
        epilog="Exit status: 0 uninstalled; 1 the answer to the question was no; 2 nothing uninstalled (a name "
        "that is no installed plugin, no answer on standard input without --yes, or pip failing).",
    )
    uninstall.add_argument("names", nargs="+", metavar="NAME", help="a plugin name ('business-rules') or distribution")
    uninstall.add_argument(
        "-y", "--yes", action="store_true", help="do not ask (without it, a 'y' is read from the terminal or stdin)"
    )
    uninstall.set_defaults(handler=_uninstall)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# -- install -----------------------------------------------------------------------------------------------


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


def _editable_problem(path: str) -> str | None:
    if "://" in path or Path(path).expanduser().is_dir():
        return None
    return f"-e {path}: no such folder; -e takes the folder of a project (the one with its pyproject.toml)"


def _install(args: argparse.Namespace) -> int:
    editables: list[str] = args.editable
    if not args.specs and not editables:
        args.install_parser.error("name what to install: a SPEC, or -e PATH for a project folder")
    not_packages = [p for p in [*map(spec_problem, args.specs), *map(_editable_problem, editables)] if p]
    if not_packages:
        for problem in not_packages:
            _say(f"loopai plugins install: {problem}")
        _say("loopai plugins install: nothing was installed")
        return 2
    installer = find_installer()
    if installer is None:
        _say("loopai plugins install: " + NO_INSTALLER.format(python=sys.executable))
        return 2
    options = pip_options(args, installer)  # the user's --pip-arg values last
    own = [*install_options(args), *options]  # for the install itself, not the dry runs before it
    specs: list[str] = args.specs
    core = core_version()
    if core is None:
        _say(f"loopai plugins install: {CORE} has no installed version here; its requirements cannot be checked")
        return _run_install(installer, own, specs, editables, [], None)
    try:  # an editable project is checked from its folder's metadata, as a folder SPEC is
        candidates = resolve_candidates(installer, [*specs, *editables], options)
    except ResolveError as exc:
        named = " ".join([*specs, *(f"-e {e}" for e in editables)])
        _say(f"loopai plugins install: {installer.tool} could not resolve {named}:\n{tail(str(exc))}")
        return 2
    if any(canonical(c.name) == CORE for c in candidates):
        _say(
            f"loopai plugins install: {CORE} itself is not a plugin; "
            f"change it with: {sys.executable} -m pip install '{CORE}...'"
        )
        return 2
    refused = [(c, core_requirement(c)) for c in candidates if not admits(core_requirement(c), core)]
    if refused and not args.force:
        for candidate, wanted in refused:
            for line in _refusal(candidate, wanted or "", core, installer, options):
                _say(line)
        _say(f"loopai plugins install: nothing was installed ({len(refused)} refused)")
        return 2
    forced = [candidate for candidate, _ in refused]
    for candidate, wanted in refused:
        _say(f"--force: installing {candidate.label} although it requires {CORE}{wanted} ({core} is installed)")
    if not {"-e", "--editable"} & set(args.pip_arg):  # --pip-arg=-e: editable all the same
        _warn_editable_replaced(candidates, editables)
    kept = specs if not forced else unforced_specs(specs, forced)
    status = _run_install(installer, own, kept, editables, forced, core)
    if status == 0:
        _report_installed(candidates)
    return status


def _warn_editable_replaced(candidates: Sequence[Candidate], editables: Sequence[str]) -> None:
    """Say so when a candidate installed without -e replaces an editable install of its distribution."""
    made_editable = {uri_of(e) for e in editables}
    for candidate in candidates:
        source = editable_source(candidate.name)
        if source is None or (candidate.url and candidate.url.rstrip("/") in made_editable):
            continue
        _say(
            f"warning: {candidate.name} is installed editable (pip install -e) from {source}; this install replaces "
            f"it with a copy, so edits there stop taking effect: to keep it editable, run instead: "
            f"loopai plugins install -e {source}"
        )


def _exact(candidate: Candidate, editable: dict[str, str]) -> list[str]:
    """How to name a forced candidate to the installer: editable, by its URL, or by name and version."""
    url = (candidate.url or "").rstrip("/")
    if url in editable:
        return ["-e", editable[url]]
    return [candidate.url] if candidate.direct and candidate.url else [f"{candidate.name}=={candidate.version}"]


def _run_install(
    installer: Installer,
    options: Sequence[str],
    specs: Sequence[str],
    editables: Sequence[str],
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
        forced_urls = {c.url.rstrip("/") for c in forced if c.url}
        needed += [word for path in editables if uri_of(path) not in forced_urls for word in ("-e", path)]
        if needed:
            done = run_installer(installer.install(*pinned, *options, *needed))
            if done.returncode != 0:
                kept = f"; {CORE} stays at {core}, pinned: a package that needs another version is refused"
                _say(
                    f"loopai plugins install: {installer.tool} failed (exit {done.returncode}): its message above "
                    "says why (a requirement that cannot be found or met, say)" + (kept if core else "")
                )
                return 2
        if forced:
            editable = {uri_of(path): path for path in editables}
            exact = [_exact(c, editable) for c in forced]
            done = run_installer(installer.install("--no-deps", *options, *(w for words in exact for w in words)))
            if done.returncode != 0:
                _say(f"loopai plugins install: {installer.tool} failed (exit {done.returncode})")
                return 2
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
    from loopai._suggest import did_you_mean
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
                plugin_names = {ep.name for d in inventory.plugins for ep in d.entry_points}
                hint = did_you_mean(name, plugin_names) or did_you_mean(name, (d.name for d in inventory.plugins))
                problems.append(
                    f"{name!r}: no installed plugin or plugin distribution has that name{hint} "
                    "(see: loopai plugins list --all)"
                )
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
        return 2
    for target in targets:
        print(f"{target.distribution} {target.version}: {', '.join(target.plugins)}")
    if not args.yes:
        answer = _confirmation(targets)
        if answer is None:
            _say("loopai plugins uninstall: no answer on standard input: pass --yes, or pipe in 'y' (echo y | ...)")
            return 2
        if not answer:
            _say("loopai plugins uninstall: nothing was uninstalled")
            return 1  # the answer was no: not a failure (documented)
    installer = find_installer()
    if installer is None:
        _say("loopai plugins uninstall: " + NO_INSTALLER.format(python=sys.executable))
        return 2
    done = run_installer(installer.uninstall(*(t.distribution for t in targets)))
    if done.returncode != 0:
        _say(f"loopai plugins uninstall: {installer.tool} failed (exit {done.returncode})")
        return 2
    print(f"uninstalled {', '.join(f'{t.distribution} {t.version}' for t in targets)}")
    return 0
