"""Real wheels, built by hatchling and installed by pip, discovered by ``loopai plugins`` in a fresh process.

Three tiny plugin projects are built once per module: a good validator, one whose module fails
to import, and one that refuses the installed loopai-core. pip installs them into a target
directory that the command line finds on PYTHONPATH; every plugin module writes its name to a
marker file when imported, so each test can tell what was imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import loopai

MARKS_VARIABLE = "LOOPAI_TEST_WHEEL_MARKS"

_RECORD_IMPORT = f"""
import os as _os

with open(_os.environ["{MARKS_VARIABLE}"], "a", encoding="utf-8") as _marks:
    _marks.write(__name__ + "\\n")
"""

PROJECTS: dict[str, dict[str, Any]] = {
    "loopai-wheel-good": {
        "version": "1.2.0",
        "dependencies": ["loopai-core>=0.1"],
        "entry_points": {"loopai.validators": {"wheel-good": "loopai_wheel_good:Good"}},
        "code": """
            import loopai

            class Good(loopai.ValidatorPlugin):
                priority = 7

                def validate(self, execution, context):
                    return loopai.ValidationResult(is_valid=True, validator_type=self.name)
            """,
    },
    "loopai-wheel-broken": {
        "version": "0.2.0",
        "dependencies": [],
        "entry_points": {"loopai.samplers": {"wheel-broken": "loopai_wheel_broken:Sampler"}},
        "code": "import loopai_wheel_not_installed_xyz\n",
    },
    "loopai-wheel-old": {
        "version": "0.3.0",
        "dependencies": ["loopai-core<0.1"],
        "entry_points": {"loopai.validators": {"wheel-old": "loopai_wheel_old:Good"}},
        "code": "raise AssertionError('an incompatible plugin must never be imported')\n",
    },
}


def _pyproject(name: str, project: dict[str, Any]) -> str:
    module = name.replace("-", "_")
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{name}"',
        f'version = "{project["version"]}"',
        f"dependencies = {json.dumps(project['dependencies'])}",
    ]
    for group, declared in project["entry_points"].items():
        lines += ["", f'[project.entry-points."{group}"]']
        lines += [f'{ep} = "{value}"' for ep, value in declared.items()]
    lines += ["", "[tool.hatch.build.targets.wheel]", f'packages = ["{module}"]', ""]
    return "\n".join(lines)


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@dataclass
class Installed:
    """The target directory pip installed the wheels into, and how to run ``loopai plugins`` against it."""

    target: Path
    root: Path

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPAI_", "PYTHONPATH"))}
        environ = {
            **base,
            "PYTHONPATH": str(self.target),
            "LOOPAI_CACHE_DIR": str(self.root / "cache"),
            MARKS_VARIABLE: str(self.marks),
            **(env or {}),
        }
        workdir = self.root / "work"  # no loopai.toml here
        workdir.mkdir(exist_ok=True)
        return subprocess.run(
            [sys.executable, "-m", "loopai", "plugins", *args],
            env=environ,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def listed(self, *args: str) -> dict[str, dict[str, Any]]:
        done = self.cli("list", "--json", "--all", *args)
        assert done.returncode == 0, done.stderr
        return {p["name"]: p for p in json.loads(done.stdout) if p["distribution"] in PROJECTS}

    @property
    def marks(self) -> Path:
        return self.root / "imported.txt"

    def imported(self) -> list[str]:
        """Plugin modules imported since the last call."""
        if not self.marks.exists():
            return []
        names = self.marks.read_text(encoding="utf-8").split()
        self.marks.unlink()
        return names


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The three projects, built into wheels by hatchling and installed by pip (once per module)."""
    root = tmp_path_factory.mktemp("wheels")
    sources = []
    for name, project in PROJECTS.items():
        source = root / "src" / name
        package = source / name.replace("-", "_")
        package.mkdir(parents=True)
        (source / "pyproject.toml").write_text(_pyproject(name, project), encoding="utf-8")
        code = _RECORD_IMPORT + textwrap.dedent(project["code"])
        (package / "__init__.py").write_text(code, encoding="utf-8")
        sources.append(str(source))
    wheels, target = root / "wheels", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), *sources)
    _run(*pip, "install", "--no-deps", "--no-index", "--target", str(target), *map(str, sorted(wheels.glob("*.whl"))))
    return Installed(target, root)


@pytest.fixture
def installed(built: Installed) -> Installed:
    """The installed wheels, with no import recorded yet."""
    built.imported()
    return built


def test_listing_reads_the_installed_wheels_metadata_and_imports_nothing(installed: Installed) -> None:
    listed = installed.listed()

    assert installed.imported() == []
    assert set(listed) == {"wheel-good", "wheel-broken", "wheel-old"}
    good = listed["wheel-good"]
    assert (good["kind"], good["distribution"], good["version"]) == ("validator", "loopai-wheel-good", "1.2.0")
    assert (good["status"], good["enabled"], good["priority"], good["loaded"]) == ("ok", True, None, False)
    assert good["entry_point"] == "wheel-good = loopai_wheel_good:Good"
    assert (listed["wheel-broken"]["status"], listed["wheel-broken"]["kind"]) == ("ok", "sampler")  # not known yet
    old = listed["wheel-old"]
    assert (old["status"], old["enabled"]) == ("incompatible", False)
    assert old["reason"] == (
        f"loopai-wheel-old 0.3.0 requires loopai-core<0.1, but {loopai.__version__} is installed; "
        "upgrade it: pip install -U loopai-wheel-old"
    )


def test_loading_reports_the_broken_import_and_never_imports_the_incompatible_plugin(installed: Installed) -> None:
    listed = installed.listed("--load")

    assert sorted(installed.imported()) == ["loopai_wheel_broken", "loopai_wheel_good"]
    good, broken = listed["wheel-good"], listed["wheel-broken"]
    assert (good["status"], good["loaded"], good["priority"]) == ("ok", True, 7)
    assert broken["status"] == "failed" and broken["loaded"] is False
    assert "ModuleNotFoundError: No module named 'loopai_wheel_not_installed_xyz'" in broken["reason"]
    assert "declare it among loopai-wheel-broken's dependencies" in broken["reason"]
    assert listed["wheel-old"]["status"] == "incompatible"


def test_check_exits_1_listing_both_problems_and_0_once_they_are_turned_off(installed: Installed) -> None:
    failing = installed.cli("check")
    passing = installed.cli("check", "--disable-plugins", "loopai_wheel_broken,Loopai.Wheel.Old:*")

    problems = [line for line in failing.stderr.splitlines() if line.startswith("- ")]
    assert failing.returncode == 1
    assert len(problems) == 2, failing.stderr
    assert any("sampler 'wheel-broken' (loopai-wheel-broken 0.2.0) is left out: importing" in p for p in problems)
    assert any(
        "validator 'wheel-old' (loopai-wheel-old 0.3.0) is left out: it does not fit the installed loopai-core" in p
        for p in problems
    )
    assert "Traceback" not in failing.stderr
    assert passing.returncode == 0, passing.stderr
    assert passing.stdout.startswith("ok: ")
    assert installed.imported().count("loopai_wheel_good") == 2
