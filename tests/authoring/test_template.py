"""The plugin template: rendered with no input for every kind, by cookiecutter and by ``loopai plugins new``,
then installed into a fresh virtual environment where its own tests pass and loopai lists it as ok."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter

from loopai import __version__, parse_config
from loopai._cli import main
from loopai._cli_new import core_range

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "loopai-core"
TEMPLATE = CORE / "src" / "loopai" / "_template"
CHECKOUT_TEMPLATE = ROOT / "loopai-plugin-template"
KINDS = ("validator", "sampler", "webhook-handler")
GROUPS = {"validator": "loopai.validators", "sampler": "loopai.samplers", "webhook-handler": "loopai.webhook_handlers"}
CLASSES = {
    "validator": "BusinessRulesValidator",
    "sampler": "BusinessRulesSampler",
    "webhook-handler": "BusinessRulesHandler",
}
FILES = {
    ".github/workflows/ci.yml",
    ".gitignore",
    "LICENSE",
    "README.md",
    "pyproject.toml",
    "src/loopai_business_rules/__init__.py",
    "src/loopai_business_rules/plugin.py",
    "src/loopai_business_rules/py.typed",
    "tests/test_plugin.py",
}


@pytest.fixture(autouse=True)
def cookiecutter_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cookiecutter's replay files and clones go to a temporary directory, not the user's home."""
    home = tmp_path_factory.mktemp("cookiecutter")
    config = home / "config.yaml"
    config.write_text(f"replay_dir: {home / 'replay'}\ncookiecutters_dir: {home / 'clones'}\n", encoding="utf-8")
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    return config


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def render(kind: str, output: Path, **context: str) -> Path:
    """Render from a checkout, as ``cookiecutter loopai-plugin-template --no-input kind=...`` does."""
    return Path(
        cookiecutter(
            str(CHECKOUT_TEMPLATE), no_input=True, extra_context={"kind": kind, **context}, output_dir=str(output)
        )
    )


# -- fast: render and inspect ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_cookiecutter_renders_each_kind_with_no_input(kind: str, tmp_path: Path) -> None:
    project = render(kind, tmp_path)
    assert project == tmp_path / "loopai-business-rules"
    files = tree(project)
    assert set(files) == FILES

    pyproject = tomllib.loads(files["pyproject.toml"].decode())
    assert pyproject["project"]["name"] == "loopai-business-rules"
    assert pyproject["project"]["dependencies"] == ["loopai-core>=0.1,<1.0"]
    assert pyproject["project"]["entry-points"] == {
        GROUPS[kind]: {"business-rules": f"loopai_business_rules:{CLASSES[kind]}"}
    }
    plugin = files["src/loopai_business_rules/plugin.py"].decode()
    assert f"class {CLASSES[kind]}(loopai." in plugin
    assert "class Config(BaseModel):" in plugin
    assert "{{" not in plugin and "{%" not in plugin
    for name, content in files.items():
        if name.endswith(".py"):
            compile(content, name, "exec")
    tests = files["tests/test_plugin.py"].decode()
    assert "from loopai.testing import" in tests and "check_plugin(" in tests and "loopai_host" in tests

    workflow = yaml.safe_load(files[".github/workflows/ci.yml"])
    steps = workflow["jobs"]["test"]["steps"]
    assert steps[1]["with"]["python-version"] == "${{ matrix.python-version }}"
    assert any("pytest" in step.get("run", "") for step in steps)

    license_text = files["LICENSE"].decode()
    assert license_text.startswith("MIT License") and "Your Name" in license_text

    readme = files["README.md"].decode()
    assert "pip install loopai-business-rules" in readme
    snippet = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert snippet is not None
    config = parse_config(tomllib.loads(snippet.group(1)), label="README.md")
    entries = config.plugins.for_kind(kind)
    assert [e.name for e in entries] == ["business-rules"] and entries[0].configuration


@pytest.mark.parametrize("kind", KINDS)
def test_loopai_plugins_new_renders_the_same_project(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = tree(render(kind, tmp_path / "cookiecutter"))
    status = main(
        ["plugins", "new", "business rules", "--kind", kind, "--output-dir", str(tmp_path / "new"), "--no-input"]
    )
    assert status == 0
    assert tree(tmp_path / "new" / "loopai-business-rules") == expected
    out = capsys.readouterr().out
    assert f"created {kind} plugin package" in out and "python -m pytest" in out


def test_names_and_texts_flow_into_the_project(tmp_path: Path) -> None:
    status = main(
        [
            "plugins",
            "new",
            "Loopai Error-Rate",
            "--kind",
            "sampler",
            "--output-dir",
            str(tmp_path),
            "--no-input",
            "--author",
            "Ada O'Brien",
            "--email",
            "",
            "--description",
            "Samples tasks whose error rate climbs.",
        ]
    )
    assert status == 0
    project = tmp_path / "loopai-error-rate"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["name"] == "loopai-error-rate"
    assert pyproject["authors"] == [{"name": "Ada O'Brien"}]
    assert pyproject["description"] == "Samples tasks whose error rate climbs."
    assert pyproject["entry-points"] == {"loopai.samplers": {"error-rate": "loopai_error_rate:ErrorRateSampler"}}
    assert 'author = "Ada O\'Brien"' in (project / "src/loopai_error_rate/plugin.py").read_text()


def test_a_bad_name_creates_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status = main(["plugins", "new", "3d check", "--kind", "validator", "--output-dir", str(tmp_path), "--no-input"])
    assert status == 2
    assert list(tmp_path.iterdir()) == []
    err = capfd.readouterr().err
    assert "plugin name '3d-check' must start with a letter" in err
    assert "nothing was created" in err


def test_an_existing_project_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plugins", "new", "business rules", "--kind", "validator", "--output-dir", str(tmp_path), "--no-input"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    assert "already exists; choose another --output-dir or remove it" in capsys.readouterr().err


def test_without_cookiecutter_the_message_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "cookiecutter", None)
    status = main(["plugins", "new", "x", "--kind", "sampler", "--output-dir", str(tmp_path), "--no-input"])
    assert status == 2
    assert "pip install 'loopai-core[new]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_default_core_range_is_the_current_major() -> None:
    assert core_range("0.1.0") == ">=0.1,<1.0"
    assert core_range("0.7.3") == ">=0.7,<1.0"
    assert core_range("1.4.2") == ">=1.4,<2.0"
    assert core_range("2.0.0rc1") == ">=2.0.0rc1,<3.0"
    assert core_range("0+unknown") is None
    default = json.loads((TEMPLATE / "cookiecutter.json").read_text())["loopai_core_range"]
    assert default == core_range(__version__), "update loopai_core_range in the template's cookiecutter.json"


def test_the_template_stays_out_of_the_workspace_and_the_tools() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert all("template" not in member for member in root["tool"]["uv"]["workspace"]["members"])
    assert root["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    assert {"loopai-plugin-template", "loopai-core/src/loopai/_template"} <= set(root["tool"]["ruff"]["extend-exclude"])
    assert "loopai-core/src/loopai/_template/" in root["tool"]["mypy"]["exclude"]
    pointer = json.loads((CHECKOUT_TEMPLATE / "cookiecutter.json").read_text())
    assert (CHECKOUT_TEMPLATE / pointer["templates"]["loopai-plugin"]["path"]).resolve() == TEMPLATE


# -- slow: install into a fresh environment ------------------------------------------------------------

NAMES = {"validator": "business rules", "sampler": "error rate", "webhook-handler": "audit log"}


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A fresh virtual environment with loopai-core[new] installed from the checkout (not editable) and one
    project per kind, each made by that environment's ``loopai plugins new`` and installed (not editable)."""
    root = tmp_path_factory.mktemp("fresh-env")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPAI_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {
        "LOOPAI_CACHE_DIR": str(root / "cache"),
        "COOKIECUTTER_CONFIG": str(root / "cookiecutter.yaml"),
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    (root / "cookiecutter.yaml").write_text(f"replay_dir: {root / 'replay'}\n", encoding="utf-8")
    work = root / "work"
    work.mkdir()
    python = bin_dir / "python"
    pip = (python, "-m", "pip", "install", "-q")
    # hatchling in the environment: each local build skips making an isolated build environment.
    run(*pip, "hatchling>=1.21", "pytest>=8", cwd=work, env=env)
    run(*pip, "--no-build-isolation", f"{CORE}[new]", cwd=work, env=env)
    projects = []
    for kind, name in NAMES.items():
        run(bin_dir / "loopai", "plugins", "new", name, "--kind", kind, "--no-input", cwd=work, env=env)
        projects.append(work / f"loopai-{name.replace(' ', '-')}")
    run(*pip, "--no-build-isolation", *projects, cwd=work, env=env)
    yield bin_dir, work, env


def test_generated_tests_pass_in_a_fresh_environment(installed: tuple[Path, Path, dict[str, str]]) -> None:
    bin_dir, work, env = installed
    for name in NAMES.values():
        project = work / f"loopai-{name.replace(' ', '-')}"
        result = run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env)
        assert re.search(r"\b\d+ passed\b", result.stdout) and "failed" not in result.stdout, result.stdout


def test_loopai_lists_every_generated_plugin_as_ok(installed: tuple[Path, Path, dict[str, str]]) -> None:
    bin_dir, work, env = installed
    listing = json.loads(run(bin_dir / "loopai", "plugins", "list", "--json", cwd=work, env=env).stdout)
    found = {(p["name"], p["kind"], p["distribution"], p["status"]) for p in listing}
    assert found == {
        ("business-rules", "validator", "loopai-business-rules", "ok"),
        ("error-rate", "sampler", "loopai-error-rate", "ok"),
        ("audit-log", "webhook-handler", "loopai-audit-log", "ok"),
    }
    run(bin_dir / "loopai", "plugins", "check", cwd=work, env=env)


def test_each_readme_configuration_is_accepted_by_loopai(installed: tuple[Path, Path, dict[str, str]]) -> None:
    bin_dir, work, env = installed
    for name in NAMES.values():
        project = work / f"loopai-{name.replace(' ', '-')}"
        snippet = re.search(r"```toml\n(.*?)```", (project / "README.md").read_text(), re.S)
        assert snippet is not None
        (project / "loopai.toml").write_text(snippet.group(1), encoding="utf-8")
        run(bin_dir / "loopai", "config", "check", "loopai.toml", cwd=project, env=env)
