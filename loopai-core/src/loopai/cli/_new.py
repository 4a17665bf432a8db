"""``loopai plugins new``: scaffold a plugin package from the template shipped inside loopai."""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import importlib.util
import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopai._kinds import KINDS as ALL_KINDS

__all__ = ["add_command", "core_range", "template_path"]

KINDS = tuple(kind.label for kind in ALL_KINDS)
_MISSING = "loopai plugins new needs cookiecutter, an optional extra: "


def add_command(sub: Any, name: str, help_text: str, parent: argparse.ArgumentParser) -> None:
    """Add ``new`` (``name``) to the ``plugins`` sub-commands (an argparse subparsers object);
    it takes no plugin selection options (``parent``)."""
    new = sub.add_parser(
        name,
        help=help_text,
        description="Create loopai-NAME/, a plugin package with tests, README, license and CI, "
        "from the template that ships with loopai-core.",
        epilog="Exit status: 0 created; 2 nothing created (a usage error, cookiecutter missing, a name that is "
        "loopai's own, installed already or too long, a folder that exists already).",
    )
    new.add_argument("name", help="the plugin's name, in words or hyphenated ('business rules')")
    new.add_argument("--kind", required=True, choices=KINDS, help="what the plugin is")
    new.add_argument("--output-dir", default=".", metavar="DIR", help="where to create the project (default: .)")
    new.add_argument(
        "--no-input",
        action="store_true",
        help="ask nothing; use the defaults for what is not given (asked at a terminal)",
    )
    new.add_argument("--author", help="author's name (default: git config user.name)")
    new.add_argument("--email", help="author's email (default: git config user.email)")
    new.add_argument("--description", help="one-line description")
    new.set_defaults(handler=_new)


@contextlib.contextmanager
def template_path() -> Iterator[Path]:
    """The cookiecutter template inside the installed ``loopai`` package, as a directory."""
    with importlib.resources.as_file(importlib.resources.files("loopai") / "_template") as path:
        yield path


def _install_hint() -> str:
    """How to add the ``new`` extra to this environment: with its pip, or with uv when it has none."""
    if importlib.util.find_spec("pip") is not None:
        return "pip install 'loopai-core[new]'"
    return f"uv pip install --python {shlex.quote(sys.executable)} 'loopai-core[new]' (this Python has no pip)"


def core_range(version: str) -> str | None:
    """The loopai-core range a new plugin should declare: from this version to the next major.

    ``0.1.0`` gives ``>=0.1,<1.0``, ``1.4.2`` gives ``>=1.4,<2.0``; a pre-release is its own
    lower bound (``>=2.0.0rc1,<3.0``) so that it admits itself. None for a version that is
    not a release (a source tree without metadata).
    """
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    if parsed.local is not None and parsed.release == (0,):
        return None
    major = parsed.major
    lower = str(parsed) if parsed.is_prerelease else f"{major}.{parsed.minor}"
    return f">={lower},<{major + 1}.0"


_OURS = frozenset({"core", "builtin", "workspace", "plugin-template"})
"""Plugin names whose package would take the name of one of loopai's own (loopai-core, loopai-builtin...)."""
_LONGEST = 64
"""The longest plugin name: it names a folder, an import package and a distribution."""
_ASKED = {"author": "Author", "email": "Author's email (may be empty)", "description": "One-line description"}


def _context(args: argparse.Namespace, ask: bool) -> dict[str, str]:
    """What the template gets: the command line's values; for the others, ``git config``'s author and
    email, or (on a terminal) the answers to a question for each."""
    from loopai._version import core_version

    context = {"plugin_name": args.name, "kind": args.kind}
    defaults = _git_identity(Path(args.output_dir))
    for field, question in _ASKED.items():
        value = getattr(args, field)
        if value is None and ask:
            value = _ask(question, defaults.get(field))
        if value is None:
            value = defaults.get(field)
        if value is not None:
            context[field] = value
    supported = core_range(core_version())
    if supported is not None:
        context["loopai_core_range"] = supported
    return context


def _git_identity(folder: Path) -> dict[str, str]:
    """``user.name`` and ``user.email`` from ``git config`` (as a commit there would have them), when set."""
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        return {}
    found = {}
    for field, key in (("author", "user.name"), ("email", "user.email")):
        try:
            done = subprocess.run(
                [git, "config", "--get", key],
                cwd=next((f for f in (folder, *folder.absolute().parents) if f.is_dir()), None),
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout.strip():
            found[field] = done.stdout.strip()
    return found


def _ask(question: str, default: str | None) -> str | None:
    shown = f" [{default}]" if default else ""
    try:
        answer = input(f"{question}{shown}: ").strip()
    except EOFError:
        return None
    return answer or None


def _names_problem(template: Path, context: dict[str, str], output_dir: Path) -> str | None:
    """What is wrong with the names the template would derive from ``context`` (in ``output_dir``),
    before anything is written."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    rendered = prompt_for_config(generate_context(str(template / "cookiecutter.json"), None, context), no_input=True)
    slug, distribution = str(rendered["plugin_slug"]), str(rendered["distribution"])
    if slug in _OURS:
        named = context["plugin_name"]
        return f"{named!r} would make a package named {distribution}, which is loopai's own; choose another name"
    taken = _installed(slug, context["kind"])
    if taken is not None:
        return (
            f"a {context['kind']} named {slug!r} is already installed ({taken}): two plugins of one name "
            "are both left out as duplicates; choose another name"
        )
    held = _distribution_installed(distribution)
    if held is not None:
        return (
            f"{context['plugin_name']!r} would make a distribution named {distribution}, which is installed already "
            f"({held}): installing the new one would replace it; choose another name"
        )
    if len(slug) > _LONGEST:
        return (
            f"the plugin name is {len(slug)} characters long; keep it to {_LONGEST} "
            f"(it names the folder {distribution[:20]}..., an import package and a distribution)"
        )
    if (output_dir / distribution).exists():
        return f"{output_dir / distribution} already exists; choose another --output-dir or remove it (or another name)"
    return None


def _distribution_installed(distribution: str) -> str | None:
    """``name version`` of the installed distribution ``distribution`` (any plugin kind), or None."""
    from importlib import metadata

    try:
        found = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    return f"{found.metadata['Name']} {found.version}"


def _installed(name: str, kind: str) -> str | None:
    """The distribution and version of the installed ``kind`` plugin named ``name``, or None (read
    from the metadata: nothing is imported)."""
    from loopai.discovery import discover

    found = [record for record in discover(environ={}) if record.name == name and record.kind == kind]
    return f"{found[0].distribution} {found[0].version}" if found else None


def _new(args: argparse.Namespace) -> int:
    try:
        from cookiecutter import exceptions
        from cookiecutter.main import cookiecutter
    except ImportError:
        print(_MISSING + _install_hint(), file=sys.stderr)
        return 2
    if not args.name.strip():
        print("loopai plugins new: the plugin name is empty", file=sys.stderr)
        return 2
    output_dir = Path(args.output_dir)
    # Only what the command line left open is asked, and only of someone at a terminal.
    context = _context(args, ask=not args.no_input and sys.stdin is not None and sys.stdin.isatty())
    try:
        with template_path() as template, _quiet_cookiecutter():
            problem = _names_problem(template, context, output_dir)
            if problem is not None:
                print(f"loopai plugins new: {problem}", file=sys.stderr)
                print("loopai plugins new: nothing was created", file=sys.stderr)
                return 2
            created = Path(
                cookiecutter(str(template), no_input=True, extra_context=context, output_dir=str(output_dir))
            )
    except exceptions.OutputDirExistsException as exc:  # made meanwhile: the check above found none
        print(f"loopai plugins new: {exc}; choose another --output-dir or remove it", file=sys.stderr)
        return 2
    except exceptions.FailedHookException:
        # The template's check printed what is wrong with the name or the texts.
        print("loopai plugins new: nothing was created", file=sys.stderr)
        return 2
    except (exceptions.CookiecutterException, ValueError) as exc:
        print(f"loopai plugins new: {exc}; nothing was created", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or output_dir
        print(
            f"loopai plugins new: {where}: {exc.strerror or exc}; choose another --output-dir or name", file=sys.stderr
        )
        return 2
    _print_next_steps(created, args.kind)
    return 0


@contextlib.contextmanager
def _quiet_cookiecutter() -> Iterator[None]:
    """Keep cookiecutter's log (a failed hook's traceback) off the terminal: the hook has printed
    what is wrong, and the errors that matter are reported by :func:`_new`."""
    logger = logging.getLogger("cookiecutter")
    handler = logging.NullHandler()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _print_next_steps(created: Path, kind: str) -> None:
    try:
        shown = created.relative_to(Path.cwd())
    except ValueError:
        shown = created
    print(f"created {kind} plugin package {shown}/")
    print("next:")
    print(f"  cd {shown}")
    print("  python -m pip install -e '.[test]'")
    print("  python -m pytest")
    print("  loopai plugins list")
