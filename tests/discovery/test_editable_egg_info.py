"""The egg-info setuptools leaves in an editable install's project folder is that install's own
metadata, not a second install: no warning, and strict mode starts. A real second copy still counts."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
import venv
from pathlib import Path

import pytest

import loopai
from loopai.discovery import read_inventory

from .conftest import Dist, Site


def _editable(site: Site, name: str = "mini-plugin", version: str = "0.1.0") -> tuple[Dist, Path]:
    """``pip install -e PROJECT`` of a setuptools src-layout plugin, as it is on disk: the dist-info in
    the site (``direct_url.json``: editable from PROJECT) and setuptools' ``PROJECT/src/*.egg-info``."""
    dist = site.add_good(name, "mini", version)
    project = site.root / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "{version}"\n', encoding="utf-8")
    direct = {"url": project.as_uri(), "dir_info": {"editable": True}}
    (dist.info / "direct_url.json").write_text(json.dumps(direct), encoding="utf-8")
    _egg_info(project / "src", name, version, dist.module)
    return dist, project


def _egg_info(where: Path, name: str, version: str, module: str) -> Path:
    """``name.egg-info`` as ``setup.py egg_info`` writes it (no version in its name: it is in PKG-INFO)."""
    info = where / f"{name.replace('-', '_')}.egg-info"
    info.mkdir(parents=True)
    (info / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[loopai.validators]\nmini = {module}:Good\n", encoding="utf-8")
    (info / "top_level.txt").write_text(f"{module}\n", encoding="utf-8")
    return info


def _shadowed(site: Site, paths: list[str]) -> tuple[list[tuple[str, str, str]], bool]:
    inventory = read_inventory(paths, environ=site.environ)
    found = [(s.name, s.used_version, s.hidden_version) for s in inventory.shadowed if s.name in site.added]
    return found, inventory.from_cache


def test_an_editable_installs_own_egg_info_after_it_on_the_path_is_not_a_second_install(site: Site) -> None:
    _, project = _editable(site)
    paths = [*site.paths[:2], str(project / "src"), *site.paths[2:]]  # the editable .pth's entry

    host = site.host(paths=paths, strict=True)  # strict: any shadow would raise StartupError

    assert host.problems == []
    assert [(r.name, r.distribution, r.version, r.status) for r in site.mine(host.discovered)] == [
        ("mini", "mini-plugin", "0.1.0", "ok")
    ]
    assert _shadowed(site, paths) == ([], True)  # the cache says the same


def test_an_editable_installs_own_egg_info_first_on_the_path_is_not_a_second_install(site: Site) -> None:
    # Run from the src folder (or with it on PYTHONPATH): the egg-info comes first.
    _, project = _editable(site)
    paths = [str(project / "src"), *site.paths]

    host = site.host(paths=paths, strict=True)

    assert host.problems == []
    assert [r.name for r in site.mine(host.discovered)] == ["mini"]


def test_the_command_line_says_nothing_of_an_editable_installs_own_egg_info(site: Site) -> None:
    _, project = _editable(site)
    env = {"PYTHONPATH": os.pathsep.join([*site.paths[:2], str(project / "src")])}

    done = site.cli("check", "--strict", env=env)

    assert done.returncode == 0, done.stderr
    assert "two distributions" not in done.stderr


@pytest.mark.parametrize(
    "change",
    ["other version", "other folder", "not editable", "no direct_url.json", "editable elsewhere"],
)
def test_a_real_second_copy_beside_an_editable_install_is_still_reported(site: Site, change: str) -> None:
    dist, project = _editable(site)
    src = project / "src"
    direct = dist.info / "direct_url.json"
    if change == "other version":
        (src / "mini_plugin.egg-info" / "PKG-INFO").write_text(
            "Metadata-Version: 2.1\nName: mini-plugin\nVersion: 0.2.0\n\n", encoding="utf-8"
        )
    elif change == "other folder":
        src = site.root / "elsewhere"
        _egg_info(src, "mini-plugin", "0.1.0", dist.module)
    elif change == "not editable":
        direct.write_text(json.dumps({"url": project.as_uri(), "dir_info": {}}), encoding="utf-8")
    elif change == "no direct_url.json":
        direct.unlink()
    else:
        other = site.root / "other-project"
        direct.write_text(json.dumps({"url": other.as_uri(), "dir_info": {"editable": True}}), encoding="utf-8")
    paths = [*site.paths[:2], str(src), *site.paths[2:]]

    with pytest.raises(loopai.StartupError, match="two distributions named mini-plugin are installed") as raised:
        site.host(paths=paths, strict=True)

    hidden = "0.2.0" if change == "other version" else "0.1.0"
    [problem] = raised.value.problems
    assert problem.startswith(f"two distributions named mini-plugin are installed: mini-plugin 0.1.0 at {dist.info}")
    assert f"hides mini-plugin {hidden} at {src / 'mini_plugin.egg-info'};" in problem


def test_an_egg_info_whose_version_is_rewritten_in_place_is_reported_from_a_warm_cache(site: Site) -> None:
    # ``setup.py egg_info`` after a version bump rewrites PKG-INFO in place: the directories' mtimes
    # stay, and the cache must not keep saying that the egg-info is the editable install's own.
    _, project = _editable(site)
    src = project / "src"
    info = src / "mini_plugin.egg-info"
    paths = [*site.paths[:2], str(src), *site.paths[2:]]
    past = time.time_ns() - 3600 * 10**9
    for directory in (site.path, src, info):
        os.utime(directory, ns=(past, past))
    assert _shadowed(site, paths) == ([], False)
    assert _shadowed(site, paths) == ([], True)

    with open(info / "PKG-INFO", "r+", encoding="utf-8") as handle:
        handle.truncate(0)
        handle.write("Metadata-Version: 2.1\nName: mini-plugin\nVersion: 0.2.0\n\n")

    assert [d.stat().st_mtime_ns for d in (site.path, src, info)] == [past] * 3
    assert _shadowed(site, paths) == ([("mini-plugin", "0.1.0", "0.2.0")], False)
    assert _shadowed(site, paths) == ([("mini-plugin", "0.1.0", "0.2.0")], True)


_PLUGIN = """
import loopai


class Mini(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


def _setuptools_builds_wheels() -> bool:
    """Whether setuptools here can build an editable wheel offline (it needs ``bdist_wheel``: the
    ``wheel`` package, or setuptools 70.1 and later). Read from metadata: importing setuptools in
    the test process would replace distutils for every test after it (a warning, an error here)."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    release = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    return release >= (70, 1)


@pytest.mark.slow
@pytest.mark.skipif(not _setuptools_builds_wheels(), reason="setuptools cannot build wheels here (no bdist_wheel)")
def test_pip_install_editable_of_a_setuptools_src_layout_plugin_starts_in_strict_mode(tmp_path: Path) -> None:
    # A fresh environment whose .pth file puts this interpreter's site folders (pip, setuptools,
    # loopai-core) on its path, as tests/cli/test_editable_install.py does: nothing is downloaded.
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    scheme = "nt" if os.name == "nt" else "posix_prefix"
    site = Path(sysconfig.get_path("purelib", scheme, vars={"base": str(tmp_path / "venv")}))
    stdlib = sysconfig.get_paths()["stdlib"]
    ours = [entry for entry in sys.path if entry and Path(entry).is_dir() and not entry.startswith(stdlib)]
    (site / "loopai-test-host.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    project = tmp_path / "mini-plugin"
    (project / "src" / "mini_plugin").mkdir(parents=True)
    (project / "src" / "mini_plugin" / "__init__.py").write_text(textwrap.dedent(_PLUGIN), encoding="utf-8")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "mini-plugin"
            version = "0.1.0"

            [project.entry-points."loopai.validators"]
            mini = "mini_plugin:Mini"
            """
        ),
        encoding="utf-8",
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPAI_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    environ |= {
        "HOME": str(tmp_path / "home"),
        "LOOPAI_CACHE_DIR": str(tmp_path / "cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_NO_CACHE_DIR": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), *args], capture_output=True, text=True, env=environ, cwd=project, timeout=300
        )

    installed = run("-m", "pip", "install", "--no-index", "--no-build-isolation", "-e", str(project))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Older setuptools leave src/mini_plugin.egg-info behind; `setup.py egg_info` (and sdist builds) do on any.
    if not (project / "src" / "mini_plugin.egg-info").is_dir():
        made = run("-c", "from setuptools import setup; setup()", "egg_info")
        assert made.returncode == 0, made.stdout + made.stderr
    assert (project / "src" / "mini_plugin.egg-info" / "entry_points.txt").is_file()

    checked = run("-m", "loopai", "plugins", "check", "--strict")
    started = run("-c", "import loopai; print(loopai.Host(discover=True, strict=True).problems)")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "two distributions" not in checked.stderr
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "[]"
