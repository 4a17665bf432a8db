"""``loopai config check`` and ``loopai config show``, in-process and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loopai.cli import main

GOOD = """
[dispatch]
max_retries = 2

[plugins.samplers.every-other]
factory = "loopai_cli_test_plugins:EveryOther"
priority = 10
configuration = { every = 2 }

[plugins.webhook_handlers.not-installed-yet]
enabled = false
"""

PLUGINS = """
import loopai
from pydantic import BaseModel, Field, SecretStr


class EveryOther(loopai.SamplerPlugin):
    class Config(BaseModel):
        every: int = Field(2, ge=1)

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=context.total_executions % self.config.every == 0)


class Poster(loopai.WebhookHandlerPlugin):
    class Config(BaseModel):
        url: str
        key_material: SecretStr
        channel: str = "#alerts"

    def handle_event(self, event, context):
        pass
"""

BAD = """
colour = "blue"

[plugins.samplers.s]
priority = "high"
enabled = "yes"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, no LOOPAI_* variables, no discovery cache, a plugin module on sys.path."""
    for name in list(os.environ):
        if name.startswith("LOOPAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LOOPAI_NO_CACHE", "1")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "loopai_cli_test_plugins.py").write_text(PLUGINS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(modules))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run(*argv: str) -> int:
    """The exit status ``loopai ARGV`` would have (argparse exits on usage errors)."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


# -- config check ----------------------------------------------------------------------


def test_check_of_a_good_file_says_ok(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "loopai.toml", GOOD)

    status = run("config", "check")

    out, err = capsys.readouterr()
    assert status == 0, err
    assert out == "loopai.toml: ok (2 plugin entries)\n"


def test_check_of_an_explicit_path(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "other.toml", "[dispatch]\ndry_run = true\n")

    assert run("config", "check", "other.toml") == 0
    assert capsys.readouterr().out == "other.toml: ok (0 plugin entries)\n"


def test_check_with_no_file_checks_the_defaults(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("config", "check") == 0
    assert capsys.readouterr().out == "<defaults>: ok (0 plugin entries)\n"


def test_check_of_a_bad_file_lists_every_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "loopai.toml", BAD)

    status = run("config", "check")

    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert sorted(err.splitlines()) == sorted(
        [
            "loopai.toml:1: colour: is not a known setting",
            "loopai.toml:4: samplers.s.priority: input should be a valid integer (got 'high')",
            "loopai.toml:5: samplers.s.enabled: input should be a valid boolean (got 'yes')",
            # the same pass goes on to the plugins the file names
            "loopai.toml:3: samplers.s: no sampler named 's' is registered; install the package that provides it, "
            'register it in code, or set factory = "module:attribute"',
            "4 error(s)",
        ]
    )
    assert err.splitlines()[-1] == "4 error(s)"


def test_check_reports_plugin_settings_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        project,
        "loopai.toml",
        """
        [plugins.samplers.every-other]
        factory = "loopai_cli_test_plugins:EveryOther"
        configuration = { every = 0, colour = "blue" }
        """,
    )

    status = run("config", "check")

    err = capsys.readouterr().err
    assert status == 1
    assert err.splitlines() == [
        "loopai.toml:3: samplers.every-other.every: must be >= 1 (got 0)",
        "loopai.toml:3: samplers.every-other.colour: is not a known setting (the known ones: every)",
        "2 error(s)",
    ]


def test_check_warns_of_unset_variables_and_lists_plugin_settings_errors(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project,
        "loopai.toml",
        """
        [plugins.samplers.every-other]
        factory = "loopai_cli_test_plugins:EveryOther"
        priority = "${PRIORITY}"
        configuration = { every = 0 }

        [plugins.webhook_handlers.poster]
        factory = "loopai_cli_test_plugins:Poster"
        configuration = { url = "${POSTER_URL}", key_material = "k", colour = "blue" }
        """,
    )

    status = run("config", "check")

    err = capsys.readouterr().err
    assert status == 1
    # An unset variable is what CI looks like: a warning naming it, while everything else is checked.
    assert err.splitlines() == [
        "loopai.toml:4: samplers.every-other.every: must be >= 1 (got 0)",
        "loopai.toml:8: webhook_handlers.poster.colour: is not a known setting "
        "(the known ones: url, key_material, channel)",
        "warning: loopai.toml:3: samplers.every-other.priority: environment variable PRIORITY is not set "
        "(export it, or write ${PRIORITY:-default}); loopai run needs it",
        "warning: loopai.toml:8: webhook_handlers.poster.configuration.url: environment variable POSTER_URL is not set "
        "(export it, or write ${POSTER_URL:-default}); loopai run needs it",
        "2 error(s)",
    ]


def test_check_creates_no_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "loopai.toml", '[delivery]\noutbox = "events.db"\n')

    assert run("config", "check") == 0
    assert sorted(path.name for path in project.iterdir()) == ["loopai.toml"]


def test_check_of_a_missing_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("config", "check", "missing.toml") == 1
    assert capsys.readouterr().err.splitlines() == ["missing.toml: configuration file not found", "1 error(s)"]


def test_check_of_invalid_toml_names_the_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "loopai.toml", "[plugins.samplers.s]\npriority = \n")

    assert run("config", "check") == 1
    (problem, total) = capsys.readouterr().err.splitlines()
    assert problem.startswith("loopai.toml:2:12: invalid TOML: ")
    assert total == "1 error(s)"


@pytest.mark.parametrize(
    "argv",
    [
        ("config",),
        ("config", "frobnicate"),
        ("config", "check", "a.toml", "b.toml"),
        ("config", "check", "--no-such-option"),
    ],
)
def test_usage_errors_exit_2(project: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert "usage: loopai" in err


# -- config show -----------------------------------------------------------------------


def test_show_prints_json_with_secrets_redacted(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "xoxb-very-secret-value")
    write(
        project,
        "loopai.toml",
        """
        [plugins.webhook_handlers.slack]
        enabled = false
        configuration = { api_token = "${TOKEN}", channel = "#alerts" }
        """,
    )

    status = run("config", "show")

    out = capsys.readouterr().out
    assert status == 0
    assert "xoxb-very-secret-value" not in out
    shown = json.loads(out)
    assert shown["source"] == "loopai.toml"
    assert shown["plugins"]["webhook_handlers"][0]["configuration"] == {"api_token": "**********", "channel": "#alerts"}
    assert shown["plugins"]["webhook_handlers"][0]["enabled"] is False


def test_show_hides_secret_settings_of_a_loaded_plugin_and_credentials_in_urls(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project,
        "loopai.toml",
        """
        [plugins.webhook_handlers.poster]
        factory = "loopai_cli_test_plugins:Poster"
        configuration = { url = "https://bot:pa55@hooks.example.com/in?sig=abc123&page=2", key_material = "kkk-123" }
        """,
    )

    status = run("config", "show")

    out = capsys.readouterr().out
    assert status == 0
    assert "kkk-123" not in out and "pa55" not in out and "abc123" not in out
    assert json.loads(out)["plugins"]["webhook_handlers"][0]["configuration"] == {
        "url": "https://bot:***@hooks.example.com/in?sig=***&page=2",
        "key_material": "**********",
    }


def test_show_creates_no_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "loopai.toml", '[delivery]\noutbox = "events.db"\n')

    assert run("config", "show") == 0
    assert sorted(path.name for path in project.iterdir()) == ["loopai.toml"]


def test_show_of_a_bad_file_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "loopai.toml", BAD)

    assert run("config", "show") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "loopai.toml:1: colour: is not a known setting" in err.splitlines()


# -- as a real process -----------------------------------------------------------------


def _loopai(project: Path, *argv: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(LOOPAI_NO_CACHE="1", PYTHONPATH=str(project.parent / "modules"), **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "loopai", *argv],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_python_dash_m_loopai_config_check_and_show(project: Path) -> None:
    write(project, "loopai.toml", GOOD)
    write(project, "bad.toml", BAD)
    write(
        project, "secret.toml", '[plugins.validators.v]\nenabled = false\nconfiguration = { api_token = "${TOKEN}" }\n'
    )

    good = _loopai(project, "config", "check")
    bad = _loopai(project, "config", "check", "bad.toml")
    usage = _loopai(project, "config", "check", "a", "b")
    shown = _loopai(project, "config", "show", "secret.toml", TOKEN="s3cr3t-t0ken")

    assert (good.returncode, good.stdout, good.stderr) == (0, "loopai.toml: ok (2 plugin entries)\n", "")
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[-1] == "4 error(s)"
    assert usage.returncode == 2
    assert shown.returncode == 0
    assert "s3cr3t-t0ken" not in shown.stdout
    assert json.loads(shown.stdout)["plugins"]["validators"][0]["configuration"]["api_token"] == "**********"


def test_python_dash_m_loopai_config_check_prints_each_problem_once(project: Path) -> None:
    write(project, "loopai.toml", "[plugins.samplers.not-installed]\n")

    result = _loopai(project, "config", "check")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "loopai.toml:1: samplers.not-installed: no sampler named 'not-installed' is registered; install the package "
        'that provides it, register it in code, or set factory = "module:attribute"',
        "1 error(s)",
    ]
