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

nox.options.default_venv_backend = "venv"
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


def _install_workspace(session: nox.Session, *groups: str) -> None:
    requirements = [req for group in groups for req in nox.project.dependency_groups(PYPROJECT, group)]
    editable = [arg for dist in DISTRIBUTIONS for arg in ("-e", str(ROOT / dist))]
    session.install(*editable, *requirements)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every supported Python found on this machine (multi-process tests on the newest)."""
    _install_workspace(session, "test")
    # Tests that start worker processes cost seconds each and depend little on the version: one
    # Python runs them, so that four Pythons on two cores stay within CI's time.
    newest = not PYTHONS or session.python == PYTHONS[-1]
    session.run("pytest", *([] if newest else ["-m", "not multiprocess"]), *session.posargs)


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
    _install_workspace(session, "typecheck")
    session.run("mypy")


@nox.session(python=PYTHONS[-1:] or None)
def examples(session: nox.Session) -> None:
    """Install the example plugins next to loopai-core and loopai-builtin; run their tests and plugins check."""
    session.install("hatchling>=1.21", "pytest>=8")  # builds below reuse it: no isolated build environments
    session.install("--no-build-isolation", *(str(ROOT / dist) for dist in DISTRIBUTIONS), *map(str, EXAMPLES))
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
    _install_workspace(session, "bench")
    session.run("python", "bench/run.py", *session.posargs)
