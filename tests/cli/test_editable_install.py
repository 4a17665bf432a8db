"""``loopai plugins install -e PATH``, and a plain install over an editable one, in a fresh virtual environment.

The environment is made here without pip or loopai of its own: a ``.pth`` file puts this
interpreter's site folders (pip, hatchling, loopai-core and its dependencies) on its path, so
that ``python -m loopai`` there runs this checkout, its pip installs into the new environment,
and nothing is downloaded (``--no-index --no-build-isolation``: hatchling builds the projects).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN = """
import loopai


class Pager(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type={label!r})
"""


@dataclass
class Env:
    root: Path
    python: Path
    site: Path
    environ: dict[str, str]

    def loopai(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "loopai", *args],
            capture_output=True,
            text=True,
            env=self.environ,
            cwd=self.root,
            timeout=300,
        )

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.loopai("plugins", "install", "--no-index", "--no-build-isolation", *args)

    def project(self, name: str, *, core: str = ">=0.1", label: str = "v1") -> Path:
        """A plugin project folder (hatchling) declaring validator ``name`` of distribution loopai-NAME."""
        folder = self.root / f"loopai-{name}"
        package = folder / "src" / f"loopai_{name}"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(textwrap.dedent(PLUGIN.format(label=label)), encoding="utf-8")
        (folder / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [project]
                name = "loopai-{name}"
                version = "0.1.0"
                dependencies = ["loopai-core{core}"]

                [project.entry-points."loopai.validators"]
                {name} = "loopai_{name}:Pager"

                [tool.hatch.build.targets.wheel]
                packages = ["src/loopai_{name}"]
                dev-mode-dirs = ["src"]  # a .pth file: no "editables" package needed offline
                """
            ),
            encoding="utf-8",
        )
        return folder

    def direct_url(self, distribution: str) -> dict[str, object] | None:
        found = list(self.site.glob(f"{distribution.replace('-', '_')}-*.dist-info/direct_url.json"))
        return json.loads(found[0].read_text(encoding="utf-8")) if found else None


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("editable")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    scheme = "nt" if os.name == "nt" else "posix_prefix"
    site = Path(sysconfig.get_path("purelib", scheme, vars={"base": str(root / "venv")}))
    stdlib = sysconfig.get_paths()["stdlib"]
    ours = [entry for entry in sys.path if entry and Path(entry).is_dir() and not entry.startswith(stdlib)]
    (site / "loopai-test-host.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPAI_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    environ |= {
        "HOME": str(root / "home"),
        "LOOPAI_CACHE_DIR": str(root / "cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",  # a safety net: nothing here may reach an index
        "PIP_NO_CACHE_DIR": "1",
    }
    yield Env(root, python, site, environ)


def test_editable_installs_a_project_folder_editable_after_checking_it(env: Env) -> None:
    folder = env.project("pager")

    done = env.install("-e", str(folder))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "loopai-pager 0.1.0: validator 'pager' ok" in done.stdout
    assert env.direct_url("loopai-pager") == {"url": folder.as_uri(), "dir_info": {"editable": True}}


def test_editable_refuses_a_project_that_does_not_fit_the_core(env: Env) -> None:
    folder = env.project("future", core=">=99")

    done = env.install("-e", str(folder))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "refused loopai-future 0.1.0: it requires loopai-core>=99" in done.stderr
    assert env.direct_url("loopai-future") is None


def test_editable_of_a_folder_that_is_not_there_is_refused(env: Env) -> None:
    done = env.install("-e", str(env.root / "no-such-folder"))

    assert done.returncode == 2
    assert "no-such-folder: no such folder; -e takes the folder of a project" in done.stderr


def test_a_plain_install_over_an_editable_one_says_how_to_keep_it_editable(env: Env) -> None:
    folder = env.project("flip")
    assert env.install("-e", str(folder)).returncode == 0

    done = env.install(str(folder))

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"warning: loopai-flip is installed editable (pip install -e) from {folder}" in done.stderr
    assert f"to keep it editable, run instead: loopai plugins install -e {folder}" in done.stderr
    assert env.direct_url("loopai-flip") == {"url": folder.as_uri(), "dir_info": {}}


def test_pip_arg_values_come_after_loopais_own_flags(env: Env) -> None:
    folder = env.project("passed")

    done = env.install("-q", "--pip-arg=-e", str(folder))

    assert done.returncode == 0, done.stdout + done.stderr
    assert env.direct_url("loopai-passed") == {"url": folder.as_uri(), "dir_info": {"editable": True}}
    assert "warning" not in done.stderr
