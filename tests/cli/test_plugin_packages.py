"""``plugins new`` asks only what the command line left open and takes the author from git; ``plugins install``
passes the usual pip flags on; ``plugins uninstall`` takes a confirmation piped in, as pip does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

# A stand-in for pip, first on the path: it logs how it was called and plays its part (a report for
# --report -, success otherwise), so that nothing reaches an index.
FAKE_PIP = """
import json, os, sys

with open(os.environ["FAKE_PIP_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "--report" in sys.argv:
    print(json.dumps({"install": [{
        "metadata": {"name": "loopai-good", "version": "1.0", "requires_dist": ["loopai-core>=0.1"]},
        "download_info": {"url": "https://files.example.invalid/loopai_good-1.0-py3-none-any.whl"},
        "is_direct": False,
    }]}))
"""


@pytest.fixture
def pip_log(project, tmp_path: Path) -> Path:
    fake = tmp_path / "fake-pip" / "pip"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("", encoding="utf-8")
    (fake / "__main__.py").write_text(FAKE_PIP, encoding="utf-8")
    log = tmp_path / "pip.log"
    project.env["PYTHONPATH"] = os.pathsep.join([str(fake.parent), project.env["PYTHONPATH"]])
    project.env["FAKE_PIP_LOG"] = str(log)
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


# -- new ---------------------------------------------------------------------------------------------------


@pytest.fixture
def git_identity(project, tmp_path: Path) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n", encoding="utf-8")
    project.env.update(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1")


def at_a_terminal(project, args: list[str], answers: str) -> tuple[int, str]:
    """Run ``loopai ARGS`` with a terminal for stdin and stdout (``answers`` typed ahead); its exit and screen."""
    import pty
    import select

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "loopai", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.STDOUT,
        cwd=project.root,
        env=project.env,
    )
    os.close(terminal)
    os.write(controller, answers.encode())
    screen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    return process.wait(timeout=60), screen.decode(errors="replace")


@needs_git
@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_new_asks_only_what_the_command_line_left_open_with_git_as_the_default(project, git_identity) -> None:
    code, screen = at_a_terminal(
        project, ["plugins", "new", "audit trail", "--kind", "validator", "--author", "Grace"], "\nKeeps a trail.\n"
    )

    assert code == 0, screen
    assert "Author's email (may be empty) [ada@example.org]: " in screen
    assert "One-line description: " in screen
    for given in ("Plugin name", "Kind", "Author ["):
        assert given not in screen
    project_file = tomllib.loads((project.root / "loopai-audit-trail" / "pyproject.toml").read_text())["project"]
    assert project_file["authors"] == [{"name": "Grace", "email": "ada@example.org"}]
    assert project_file["description"] == "Keeps a trail."


@needs_git
def test_new_without_a_terminal_asks_nothing_and_takes_the_author_from_git(project, proc, git_identity) -> None:
    done = proc("plugins", "new", "audit trail", "--kind", "sampler", stdin=subprocess.DEVNULL)

    assert done.code == 0, done.err
    authors = tomllib.loads((project.root / "loopai-audit-trail" / "pyproject.toml").read_text())["project"]["authors"]
    assert authors == [{"name": "Ada Lovelace", "email": "ada@example.org"}]


# -- install / uninstall -----------------------------------------------------------------------------------


def test_install_passes_the_usual_pip_flags_on(project, proc, pip_log) -> None:
    done = proc(
        "plugins",
        "install",
        "-q",
        "--pre",
        "--no-deps",
        "--index-url",
        "https://pypi.example.invalid/simple",
        "loopai-good",
    )

    assert done.code == 0, done.err
    resolve, install = calls(pip_log)
    assert resolve[:2] == ["install", "--dry-run"] and "--report" in resolve
    assert "-q" not in resolve[resolve.index("-") :]  # the report is read from its output: kept clean
    assert install[0] == "install" and install[-1] == "loopai-good"
    for flag in ("-q", "--pre", "--no-deps"):
        assert flag in install, flag
    assert install[install.index("--index-url") + 1] == "https://pypi.example.invalid/simple"
    assert "-c" in install  # loopai-core stays pinned


def test_uninstall_takes_a_confirmation_piped_in_as_pip_does(project, proc, pip_log, installed) -> None:
    installed("loopai-fragile", "validators", "fragile", "raise RuntimeError('broken')\n")

    declined = proc("plugins", "uninstall", "fragile", input="n\n")
    no_answer = proc("plugins", "uninstall", "fragile", stdin=subprocess.DEVNULL)
    nothing_yet = calls(pip_log)
    confirmed = proc("plugins", "uninstall", "fragile", input="y\n")

    assert declined.code == 1 and "nothing was uninstalled" in declined.err
    assert no_answer.code == 2
    assert "no answer on standard input: pass --yes, or pipe in 'y'" in no_answer.err
    assert nothing_yet == []
    assert confirmed.code == 0, confirmed.err
    assert "Uninstall loopai-fragile 1.0? [y/N] y" in confirmed.err
    assert calls(pip_log) == [["uninstall", "-y", "loopai-fragile"]]
