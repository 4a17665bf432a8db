"""The plugin template: rendered with no input for every kind, by cookiecutter and by ``loopai plugins new``,
then installed into a fresh virtual environment where its own tests pass and loopai lists it as ok."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter

from loopai import __version__, parse_config
from loopai.cli import main
from loopai.cli._new import core_range

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

    assert workflow["env"] == {"LOOPAI_CORE": "${{ vars.LOOPAI_CORE }}"}

    license_text = files["LICENSE"].decode()
    assert license_text.startswith("MIT License") and "Your Name" in license_text

    readme = files["README.md"].decode()
    assert "pip install loopai-business-rules" in readme
    assert "LOOPAI_CORE" in readme and "git+https://" in readme
    snippet = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert snippet is not None
    config = parse_config(tomllib.loads(snippet.group(1)), label="README.md")
    entries = config.plugins.for_kind(kind)
    assert [e.name for e in entries] == ["business-rules"] and entries[0].configuration


@pytest.mark.skipif(os.name == "nt" or shutil.which("bash") is None, reason="the workflow's steps run in bash")
@pytest.mark.parametrize(
    ("loopai_core", "installs"),
    [
        ("", [["-m", "pip", "install", "-e", ".[test]"]]),
        (
            "loopai-core @ git+https://example.org/loopai@main#subdirectory=loopai-core",
            [
                ["-m", "pip", "install", "loopai-core @ git+https://example.org/loopai@main#subdirectory=loopai-core"],
                ["-m", "pip", "install", "-e", ".[test]"],
            ],
        ),
    ],
)
def test_ci_installs_loopai_core_from_pypi_or_from_loopai_core(
    loopai_core: str, installs: list[list[str]], tmp_path: Path
) -> None:
    """The workflow's install step, run by bash with a stand-in ``python`` that logs its arguments."""
    project = render("sampler", tmp_path / "out")
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    script = next(step["run"] for step in workflow["jobs"]["test"]["steps"] if step.get("name") == "Install")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    python = bin_dir / "python"
    logger = f"with open({str(log)!r}, 'a') as f: f.write(json.dumps(sys.argv[1:]) + '\\n')"
    python.write_text(f"#!{sys.executable}\nimport json, sys\n{logger}\n")
    python.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOOPAI_CORE": loopai_core}
    subprocess.run(["bash", "-euc", script], cwd=project, env=env, check=True, timeout=60)
    assert [json.loads(line) for line in log.read_text().splitlines()] == installs


@pytest.fixture
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Git's configuration for this test alone: empty unless the test writes to the file returned."""
    config = tmp_path / "gitconfig"
    config.write_text("", encoding="utf-8")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return config


@pytest.mark.parametrize("kind", KINDS)
def test_loopai_plugins_new_renders_the_same_project(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], git_identity: Path
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


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["9lives"], "plugin name '9lives' must start with a letter"),
        (["ok", "--author", 'O"Brien'], "author 'O\"Brien' may not contain double quotes"),
    ],
)
def test_bad_input_shows_the_problem_and_no_traceback(
    args: list[str], problem: str, tmp_path: Path, cookiecutter_home: Path
) -> None:
    """Only the template's message and loopai's verdict reach the terminal, not cookiecutter's log."""
    command = [sys.executable, "-m", "loopai", "plugins", "new", *args, "--kind", "sampler", "--no-input"]
    result = subprocess.run(
        [*command, "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COOKIECUTTER_CONFIG": str(cookiecutter_home)},
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(problem in line for line in lines), result.stderr
    assert lines[-1] == "loopai plugins new: nothing was created"
    assert all(line.startswith("loopai plugin") for line in lines), result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "kind", "description"),
    [
        ("error rate sampler", "sampler", "Error rate sampler for loopai."),
        ("error rate", "sampler", "Error rate sampler for loopai."),
        ("audit log handler", "webhook-handler", "Audit log handler for loopai."),
        ("audit log", "webhook-handler", "Audit log webhook handler for loopai."),
        ("business rules validator", "validator", "Business rules validator for loopai."),
    ],
)
def test_the_default_description_names_the_kind_once(name: str, kind: str, description: str, tmp_path: Path) -> None:
    project = render(kind, tmp_path, plugin_name=name)
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["description"] == description


def test_an_existing_project_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plugins", "new", "business rules", "--kind", "validator", "--output-dir", str(tmp_path), "--no-input"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "already exists; choose another --output-dir or remove it" in capsys.readouterr().err


def test_without_cookiecutter_the_message_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "cookiecutter", None)
    status = main(["plugins", "new", "x", "--kind", "sampler", "--output-dir", str(tmp_path), "--no-input"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.endswith(": pip install 'loopai-core[new]'\n") and "uv" not in err
    assert list(tmp_path.iterdir()) == []


def test_without_cookiecutter_or_pip_the_message_says_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An environment made by uv has no pip: the hint must work there too."""
    monkeypatch.setitem(sys.modules, "cookiecutter", None)
    monkeypatch.setitem(sys.modules, "pip", None)
    status = main(["plugins", "new", "x", "--kind", "sampler", "--output-dir", str(tmp_path), "--no-input"])
    assert status == 2
    err = capsys.readouterr().err
    assert f"uv pip install --python {sys.executable} 'loopai-core[new]' (this Python has no pip)" in err


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


def test_the_checkout_template_links_to_the_one_in_the_package() -> None:
    """One copy of the template: loopai-plugin-template/ holds its README and relative symlinks
    into the package data, so that it is a real cookiecutter template without duplicated files."""
    assert {p.name for p in CHECKOUT_TEMPLATE.iterdir()} == {p.name for p in TEMPLATE.iterdir()} | {"README.md"}
    assert not (CHECKOUT_TEMPLATE / "README.md").is_symlink()
    for entry in TEMPLATE.iterdir():
        link = CHECKOUT_TEMPLATE / entry.name
        assert link.is_symlink(), f"{link} should be a symlink to {entry}"
        target = Path(os.readlink(link))
        assert not target.is_absolute(), f"{link} -> {target} must be relative (it is committed)"
        assert (CHECKOUT_TEMPLATE / target).resolve() == entry.resolve()
    settings = json.loads((CHECKOUT_TEMPLATE / "cookiecutter.json").read_text())
    assert "templates" not in settings and "plugin_name" in settings


def test_interactive_cookiecutter_asks_the_plugin_questions_first(tmp_path: Path, cookiecutter_home: Path) -> None:
    answers = "error rate\n2\n" + "\n" * 8  # a name, the sampler, then every default
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(CHECKOUT_TEMPLATE), "--output-dir", str(tmp_path)],
        input=answers,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COOKIECUTTER_CONFIG": str(cookiecutter_home)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Select a template" not in result.stdout
    assert result.stdout.lstrip().startswith("[1/10] Plugin name")
    assert (tmp_path / "loopai-error-rate" / "src" / "loopai_error_rate" / "plugin.py").is_file()


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
