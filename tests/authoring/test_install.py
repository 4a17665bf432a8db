"""``loopai plugins install / uninstall`` in a fresh virtual environment, offline.

The plugins are tiny wheels written here (no build backend needed); loopai-core is built from the
checkout and installed (not editable) into a venv made for this module, whose own pip then runs
every ``loopai plugins install`` with ``--no-index --find-links``. Its dependencies (pydantic,
pluggy, packaging...) are those of the test environment, put on the venv's path by a ``.pth``
file: nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from loopai import __version__
from loopai.cli import main
from loopai.cli._pip import Candidate, admits, core_requirement

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "loopai-core"

PLUGIN = """
import loopai

class {cls}(loopai.ValidatorPlugin):
    version = {version!r}

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


# -- wheels, written by hand ------------------------------------------------------------------------------


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] = (),
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
    code: str = "",
) -> Path:
    """A pure-Python wheel of one package named like the distribution, as pip expects it."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {name} for tests\n"
    metadata += "".join(f"Requires-Dist: {line}\n" for line in requires)
    files = {
        f"{module}/__init__.py": textwrap.dedent(code),
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: loopai-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if entry_points:
        files[f"{info}/entry_points.txt"] = "".join(
            f"[{group}]\n" + "".join(f"{ep} = {value}\n" for ep, value in eps.items()) + "\n"
            for group, eps in entry_points.items()
        )
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        record = []
        for member, text in files.items():
            data = text.encode()
            wheel.writestr(member, data)
            record.append(_record_line(member, data))
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def validator_wheel(directory: Path, name: str, version: str, core: str, *, code: str | None = None) -> Path:
    module = name.replace("-", "_")
    plugin = name.removeprefix("loopai-")
    cls = "Plugin" + version.replace(".", "_")
    return make_wheel(
        directory,
        name,
        version,
        requires=(f"loopai-core{core}",),
        entry_points={"loopai.validators": {plugin: f"{module}:{cls}"}},
        code=code if code is not None else PLUGIN.format(cls=cls, version=version),
    )


# -- a fresh environment -----------------------------------------------------------------------------------


def _dependency_closure(name: str) -> list[importlib.metadata.Distribution]:
    """loopai-core's installed dependencies, recursively, markers applied (not loopai-core itself)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(line) for line in importlib.metadata.requires(name) or []]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = requirement.name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = importlib.metadata.distribution(requirement.name)
        seen[key] = dist
        todo += [Requirement(line) for line in dist.requires or []]
    return list(seen.values())


def _link_dependencies(target: Path) -> None:
    """Symlink the top-level files of loopai-core's dependencies (and their metadata) into ``target``."""
    target.mkdir()
    for dist in _dependency_closure("loopai-core"):
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            if top != "__pycache__" and (base / top).exists() and not (target / top).exists():
                (target / top).symlink_to(base / top)


@dataclass
class Env:
    """The fresh environment: its ``loopai`` command, its wheel directory and its environment variables."""

    root: Path
    bin: Path
    links: Path
    environ: dict[str, str]

    def loopai(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "loopai"), *args],
            capture_output=True,
            text=True,
            env=self.environ,
            cwd=self.root,
            timeout=300,
        )

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.loopai("plugins", "install", "--no-index", "--find-links", str(self.links), *args)

    def listing(self) -> dict[str, dict[str, object]]:
        done = self.loopai("plugins", "list", "--json", "--all")
        assert done.returncode == 0, done.stderr
        return {p["name"]: p for p in json.loads(done.stdout)}

    def installed(self) -> set[str]:
        done = subprocess.run(
            [str(self.bin / "python"), "-m", "pip", "list", "--format=json", "--path", self.site],
            capture_output=True,
            text=True,
            env=self.environ,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return {f"{p['name']}=={p['version']}" for p in json.loads(done.stdout)}

    @property
    def site(self) -> str:
        scheme = "nt" if os.name == "nt" else "posix_prefix"
        return sysconfig.get_path("purelib", scheme, vars={"base": str(self.root / "venv")})


def _check(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("install")
    links = root / "links"
    links.mkdir()
    validator_wheel(links, "loopai-good", "1.0", ">=0.1,<1.0")
    validator_wheel(links, "loopai-old", "1.0", ">=0.1,<1.0")
    validator_wheel(links, "loopai-old", "2.0", "<0.1")
    validator_wheel(links, "loopai-broken", "1.0", ">=0.1", code="raise RuntimeError('broken at import')\n")
    make_wheel(links, "plain-library", "1.0")
    make_wheel(links, "needs-missing", "1.0", requires=("no-such-package-for-loopai>=2",))

    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPAI_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    environ |= {
        "LOOPAI_CACHE_DIR": str(root / "cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",  # a safety net: nothing in this module may reach an index
        "PIP_NO_CACHE_DIR": "1",
    }
    made = Env(root, bin_dir, links, environ)
    _link_dependencies(root / "deps")
    Path(made.site, "loopai-test-deps.pth").write_text(str(root / "deps") + "\n", encoding="utf-8")
    # loopai-core from the checkout, not editable: built here (hatchling is a test dependency).
    core_wheels = root / "core"
    _check(
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", core_wheels, CORE],
            capture_output=True,
            text=True,
            env=environ,
            timeout=300,
        )
    )
    _check(
        subprocess.run(
            [bin_dir / "python", "-m", "pip", "install", "-q", "--no-index", *core_wheels.glob("*.whl")],
            capture_output=True,
            text=True,
            env=environ,
            timeout=300,
        )
    )
    yield made


# -- install ---------------------------------------------------------------------------------------------


def test_a_compatible_plugin_installs_and_is_listed_ok(env: Env) -> None:
    done = _check(env.install("loopai-good"))
    assert "loopai-good 1.0: validator 'good' ok" in done.stdout
    assert "loopai-good==1.0" in env.installed()
    assert env.listing()["good"]["status"] == "ok"


def test_an_incompatible_plugin_is_refused_naming_the_version_that_fits(env: Env) -> None:
    done = env.install("loopai-old")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"refused loopai-old 2.0: it requires loopai-core<0.1, but loopai-core {__version__} is installed" in (
        done.stderr
    )
    assert f"loopai-old 1.0 fits loopai-core {__version__}: loopai plugins install 'loopai-old==1.0'" in done.stderr
    assert "--force installs loopai-old 2.0 anyway" in done.stderr
    assert "nothing was installed" in done.stderr
    assert not any(name.startswith("loopai-old==") for name in env.installed())

    # The suggestion works, and a wheel named by its path is checked too.
    _check(env.install("loopai-old==1.0"))
    assert "loopai-old==1.0" in env.installed()
    direct = env.install(str(env.links / "loopai_old-2.0-py3-none-any.whl"))
    assert direct.returncode == 2
    assert "refused loopai-old 2.0" in direct.stderr and "named by a path or URL" in direct.stderr
    assert "loopai-old==1.0" in env.installed()


def test_a_requirement_pip_cannot_meet_is_said_by_pip_and_not_blamed_on_the_core(env: Env) -> None:
    done = env.install("needs-missing")
    assert done.returncode == 2
    assert "no-such-package-for-loopai" in done.stderr  # pip's own message says what is missing
    assert "its message above says why" in done.stderr
    assert "a package above may need another version" not in done.stderr
    assert not any(name.startswith("needs-missing==") for name in env.installed())


def test_force_installs_an_incompatible_plugin_and_keeps_the_core(env: Env) -> None:
    done = _check(env.install("--force", "loopai-old==2.0", "plain-library"))
    assert "--force: installing loopai-old 2.0 although it requires loopai-core<0.1" in done.stderr
    assert "loopai-old 2.0: validator 'old' incompatible" in done.stdout
    assert "plain-library 1.0: declares no loopai plugins" in done.stdout
    installed = env.installed()
    assert {"loopai-old==2.0", "plain-library==1.0", f"loopai-core=={__version__}"} <= installed
    assert env.listing()["old"]["status"] == "incompatible"


def test_uninstall_by_plugin_name_works_for_a_plugin_that_raises_at_import(env: Env) -> None:
    # Each test installs what it needs: with pytest-xdist the tests of this module may share a venv or not.
    if not any(name.startswith("loopai-old==") for name in env.installed()):
        _check(env.install("--force", "loopai-old==2.0"))
    _check(env.install("loopai-broken"))
    check = env.loopai("plugins", "check")
    assert check.returncode == 1 and "broken at import" in check.stderr

    done = _check(env.loopai("plugins", "uninstall", "broken", "--yes"))
    assert "loopai-broken 1.0: validator 'broken'" in done.stdout
    assert "uninstalled loopai-broken 1.0" in done.stdout
    assert not any(name.startswith("loopai-broken==") for name in env.installed())
    assert "broken" not in env.listing()

    # An incompatible plugin goes as easily, by its distribution name.
    _check(env.loopai("plugins", "uninstall", "loopai-old", "--yes"))
    assert "old" not in env.listing()


def test_uninstall_refuses_what_it_should_not_touch(env: Env) -> None:
    _check(env.install("loopai-good", "plain-library"))
    for name, message in [
        ("no-such-plugin", "no installed plugin or plugin distribution has that name"),
        ("plain-library", "is installed but declares no loopai plugins"),
        ("loopai-core", "does not remove loopai-core itself"),
    ]:
        done = env.loopai("plugins", "uninstall", name, "--yes")
        assert done.returncode == 2, name
        assert message in done.stderr and "nothing was uninstalled" in done.stderr
    assert f"loopai-core=={__version__}" in env.installed()
    without_yes = env.loopai("plugins", "uninstall", "good")
    assert without_yes.returncode == 2 and "pass --yes" in without_yes.stderr
    assert "loopai-good==1.0" in env.installed()


# -- in-process: the pieces ------------------------------------------------------------------------------


def test_the_core_requirement_is_read_with_markers_and_extras() -> None:
    candidate = Candidate(
        "loopai-x",
        "1.0",
        requires=[
            "loopai-core>=0.1,<1.0",
            "loopai-core<0.1; python_version < '3'",
            "loopai-core!=0.1.0; extra == 'strict'",
            "httpx>=0.27",
        ],
    )
    assert core_requirement(candidate) == "<1.0,>=0.1"
    assert admits(core_requirement(candidate), "0.1.0")
    candidate.extras = ["strict"]
    assert not admits(core_requirement(candidate), "0.1.0")
    assert core_requirement(Candidate("plain", "1.0", requires=["httpx"])) is None
    assert admits(None, "0.1.0")
    assert admits(">=2.0.0rc1", "2.0.0rc2")  # pre-releases of the core count


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plugins", "install"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["plugins", "uninstall"])
    assert exited.value.code == 2
    assert "NAME" in capsys.readouterr().err
