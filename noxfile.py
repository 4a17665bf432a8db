"""Sessions for the loopai workspace: tests on every supported Python found, lint, typecheck, examples, bench."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
DISTRIBUTIONS = ("loopai-core", "loopai-builtin")
# The guide's example plugin packages: installed and tested by the examples session only (the workspace's
# pytest collects tests/ alone).
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("loopai-*") if (p / "pyproject.toml").is_file())

# uv makes the environments (each session installs the workspace: seconds instead of half a minute);
# without uv (nox installed without its [uv] extra), the standard library's venv and pip do.
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["tests", "lint", "typecheck", "examples"]
# CI sets CI=true, which makes nox fail on missing interpreters; we skip them instead.
nox.options.error_on_missing_interpreters = False


def _works(executable: str) -> bool:
    try:
        return subprocess.run([executable, "-c", "pass"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _found_pythons() -> list[str]:
    """Supported versions (from pyproject classifiers) that run here, on PATH or under pyenv.

    A pyenv shim answers for every version but fails for those not selected, so each
    candidate is run once; a pyenv install that is not on PATH is put there.
    """
    found = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version in nox.project.python_versions(PYPROJECT):
        on_path = shutil.which(f"python{version}")
        if on_path and _works(on_path):
            found.append(version)
            continue
        for candidate in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True):
            if _works(str(candidate)):
                os.environ["PATH"] = f"{candidate.parent}{os.pathsep}{os.environ['PATH']}"
                found.append(version)
                break
    return found


PYTHONS = _found_pythons()
NEWEST = PYTHONS[-1] if PYTHONS else None
"""The one Python whose test run includes the tests marked ``postgres`` (a real server), ``processes``
(many worker processes) and ``serve`` (a real ``loopai serve``): they test what does not change between
Python versions, and they cost the most."""
ONE_PYTHON_ONLY = "not postgres and not processes and not serve"


def _install_workspace(session: nox.Session, *groups: str, extras: str = "") -> None:
    """The distributions, editable (loopai-core with ``extras``, e.g. ``[postgres,serve]``), and ``groups``."""
    requirements = [req for group in groups for req in nox.project.dependency_groups(PYPROJECT, group)]
    core = str(ROOT / "loopai-core") + extras
    editable = ["-e", core, *(arg for dist in DISTRIBUTIONS[1:] for arg in ("-e", str(ROOT / dist)))]
    session.install(*editable, *requirements)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every supported Python found (server and process tests on the newest only)."""
    every_core = ["-n", "auto"]  # pytest-xdist: one test process per core
    if session.python == NEWEST:
        _install_workspace(session, "test", "serve", extras="[postgres,serve]")
        session.run("pytest", *(session.posargs or every_core))
    else:
        _install_workspace(session, "test")
        session.run("pytest", *(session.posargs or [*every_core, "-m", ONE_PYTHON_ONLY]))


@nox.session(python=PYTHONS[-1:] or None)
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff, and the architecture's import contracts with import-linter."""
    _install_workspace(session, "lint")
    checked = ("loopai-core", "loopai-builtin", "tests", "bench", "noxfile.py", "examples/quickstart.py")
    session.run("ruff", "check", *checked, "examples/make_examples.py")
    session.run("ruff", "format", "--check", "--diff", "loopai-core", "loopai-builtin")
    session.run("lint-imports")  # the contracts in pyproject.toml [tool.importlinter]


@nox.session(python=PYTHONS[:1] or None)
def typecheck(session: nox.Session) -> None:
    """Type-check the distributions' sources with mypy --strict (on the oldest Python found)."""
    _install_workspace(session, "typecheck", extras="[postgres,serve]")  # mypy reads the extras' libraries' types
    session.run("mypy")


@nox.session(python=PYTHONS[-1:] or None)
def examples(session: nox.Session) -> None:
    """Install the example plugins next to loopai-core and loopai-builtin; run their tests and plugins check."""
    session.install("hatchling>=1.21", "pytest>=8")  # builds below reuse it: no isolated build environments
    # As a user installs them: built, not editable (uv would make the workspace's members editable).
    as_built = ["--no-sources"] if session.venv_backend == "uv" else []
    session.install(
        "--no-build-isolation", *as_built, *(str(ROOT / dist) for dist in DISTRIBUTIONS), *map(str, EXAMPLES)
    )
    work = Path(session.create_tmp())
    env = {"LOOPAI_CACHE_DIR": str(work / "cache"), "LOOPAI_CONFIG": ""}
    for example in EXAMPLES:
        with session.chdir(example):
            session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", env=env)
    with session.chdir(work):  # no loopai.toml here: every installed plugin on its defaults
        session.run("loopai", "plugins", "list", env=env)
        session.run("loopai", "plugins", "check", "--strict", env=env)


@nox.session(python=PYTHONS[-1:] or None, default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks side by side and write their tables to docs/PERFORMANCE.md."""
    _install_workspace(session, "bench", extras="[postgres,serve]")  # the service, the shared outbox
    session.run("python", "bench/run.py", *session.posargs)
