"""What every command shares: its own usage on a usage error, --version, -v / -q / --log-level / --trace,
shell completion; and ``plugins show`` / ``plugins check`` in text and JSON."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

from loopai._version import core_version


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (("run", "records.jsonl", "--bogus"), "usage: loopai run "),
        (("plugins", "list", "--bogus"), "usage: loopai plugins list "),
        (("config", "check", "--bogus"), "usage: loopai config check "),
        (("events", "list", "--limit", "0"), "usage: loopai events list "),
        (("plugins", "install"), "usage: loopai plugins install "),
    ],
)
def test_a_usage_error_shows_that_commands_usage(cli, args, usage) -> None:
    done = cli(*args)

    assert done.code == 2
    assert done.err.startswith(usage)
    assert f"{usage.removeprefix('usage: ').strip()}: error: " in done.err
    assert "usage: loopai [-h]" not in done.err


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (("rnu", "records.jsonl"), "invalid choice: 'rnu'; did you mean 'run'?"),
        (("plugin", "list"), "invalid choice: 'plugin'; did you mean 'plugins'?"),
        (("plugins", "lst"), "invalid choice: 'lst'; did you mean 'list'?"),
        (("install", "loopai-x"), "invalid choice: 'install'; did you mean 'loopai plugins install'?"),
        (("deliver",), "invalid choice: 'deliver'; did you mean 'loopai events deliver'?"),
        (("list",), "invalid choice: 'list'; did you mean 'loopai plugins list' or 'loopai events list'?"),
        (("run", "--log-level", "warnig", "x"), "invalid choice: 'warnig'; did you mean 'warning'?"),
        (("plugins", "new", "--kind", "validater", "x"), "invalid choice: 'validater'; did you mean 'validator'?"),
        (("run", "--outptu", "out.jsonl", "in.jsonl"), "; --outptu: did you mean '--output'?"),
        (("serve", "--prot=80"), "unrecognized arguments: --prot=80; --prot: did you mean '--port'?"),
        (("run", "--workers", "lots", "x"), "not a whole number: 'lots'; a number of processes, 1 or more, or auto"),
        (("serve", "--workers", "0"), "must be at least 1 (got 0); a number of processes, 1 or more, or auto"),
    ],
)
def test_a_mistyped_word_gets_what_was_meant(cli, args, meant) -> None:
    done = cli(*args)

    assert done.code == 2
    assert meant in done.err


@pytest.mark.parametrize("command", ["run", "serve"])
def test_workers_auto_is_one_per_cpu_for_run_and_serve(command: str) -> None:
    from loopai.cli._main import build_parser
    from loopai.run import available_cpus

    line = [command, "--workers", "auto", *(["in.jsonl"] if command == "run" else [])]
    assert build_parser(command).parse_args(line).workers == available_cpus()


def test_a_word_close_to_nothing_gets_only_the_choices(cli) -> None:
    done = cli("zzz")

    assert done.code == 2
    assert "invalid choice: 'zzz' (choose from 'config', 'plugins', 'run'," in done.err
    assert "did you mean" not in done.err


def test_version_names_core_builtin_and_python(proc) -> None:
    done = proc("--version")

    assert done.code == 0
    assert done.out.splitlines() == [
        f"loopai-core {core_version()}",
        "loopai-builtin 0.1.0",
        f"Python {platform.python_version()} ({platform.python_implementation()}) {sys.executable}",
    ]


def test_quiet_verbose_and_log_level_work_on_every_command(project, proc, installed) -> None:
    installed("loopai-fragile", "validators", "fragile", "raise RuntimeError('broken at import')\n")
    records = str(project.records())

    plain = proc("run", records, "--seed", "7")
    quiet = proc("run", records, "--seed", "7", "-q")
    verbose = proc("run", records, "--seed", "7", "-v")
    named = proc("run", records, "--seed", "7", "--log-level", "ERROR")
    before = proc("-q", "plugins", "check")

    assert "warning: validator 'fragile'" in plain.err and "events are kept in the outbox" in plain.err
    assert quiet.err == named.err == ""  # errors only: no warning, no summary
    assert quiet.out == plain.out  # the results are the same
    assert "info: configuration: <defaults>" in verbose.err.splitlines()  # what -v adds: what was found and used
    assert "info: samplers (priority): percentage-sampler (100), time-based-sampler (50)" in verbose.err.splitlines()
    assert "info:" not in plain.err
    assert before.code == 1 and "- validator 'fragile'" in before.err and "warning" not in before.err


def test_trace_prints_every_hook_call_as_loopai_trace_does(project, proc) -> None:
    records = str(project.records(each=1))

    traced = proc("run", records, "--trace")
    by_variable = proc("run", records, env={"LOOPAI_TRACE": "1"})

    hook_lines = [line for line in traced.err.splitlines() if "validate" in line and "json-schema-validator" in line]
    assert hook_lines, traced.err
    assert len(hook_lines) == len(
        [line for line in by_variable.err.splitlines() if "validate" in line and "json-schema-validator" in line]
    )


# -- completion ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shells_code(cli, shell) -> None:
    done = cli("completion", shell)

    assert done.code == 0, done.err
    assert "loopai" in done.out and "_ARGCOMPLETE" in done.out


def test_the_shell_gets_completions_from_the_command_tree(project, proc, tmp_path: Path) -> None:
    answers = tmp_path / "completions.txt"

    def complete(line: str) -> list[str]:
        env = {
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": "bash",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answers),
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_IFS": "\n",
        }
        done = proc(env=env)
        assert done.code == 0, done.err
        return sorted(word for word in answers.read_text().split() if not word.startswith("-") or "-" in line[-3:])

    assert complete("loopai plugins ") == ["check", "install", "list", "new", "order", "show", "uninstall"]
    assert complete("loopai plugins list --ki") == ["--kind"]
    assert complete("loopai plugins list --kind s") == ["sampler"]


def test_completion_without_argcomplete_says_how_to_get_it(proc, tmp_path: Path) -> None:
    blocker = tmp_path / "no-argcomplete"
    blocker.mkdir()
    (blocker / "argcomplete.py").write_text("raise ImportError('not installed here')\n", encoding="utf-8")

    done = proc("completion", "bash", env={"PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})

    assert (done.code, done.out) == (2, "")
    assert done.err == "loopai completion needs argcomplete, an optional extra: pip install 'loopai-core[completion]'\n"


# -- plugins show / check ------------------------------------------------------------------------------------


def test_plugins_show_shows_the_settings_schema(project, cli) -> None:
    project.write("loopai.toml", '[plugins.samplers.tuned]\nfactory = "loopai_cli_plugins:Tuned"\n')

    shown = cli("plugins", "show", "percentage-sampler")
    as_json = cli("plugins", "show", "percentage-sampler", "--json")

    assert shown.code == 0, shown.err
    schema = shown.out.split("settings schema:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in schema] == ["sampling_rate", "seed"]
    assert "float, >= 0, <= 1" in schema[0] and "default 0.1" in schema[0]
    assert "Share of executions to sample" in schema[0]
    assert "int | None" in schema[1] and "default (none)" in schema[1]
    [info] = as_json.json
    assert info["settings_schema"][0] == {
        "name": "sampling_rate",
        "type": "float, >= 0, <= 1",
        "required": False,
        "default": 0.1,
        "description": "Share of executions to sample, 0..1, when the context gives no rate of its own.",
        "secret": False,
        "default_breaks_constraints": False,
    }
    assert info["settings"] == {"sampling_rate": 0.1, "seed": None}
    assert (info["name"], info["kind"], info["status"], info["loaded"]) == ("percentage-sampler", "sampler", "ok", True)


def test_plugins_show_of_an_unknown_name_suggests_the_closest(cli) -> None:
    done = cli("plugins", "show", "percentage-samplr")

    assert done.code == 2
    assert done.err == (
        "no installed plugin is named 'percentage-samplr'; did you mean 'percentage-sampler'? "
        "(see: loopai plugins list --all)\n"
    )


def test_plugins_check_names_what_it_turned_off_in_text_and_json(project, cli) -> None:
    project.write("loopai.toml", "[plugins.samplers.time-based-sampler]\nenabled = false\n")

    text = cli("plugins", "check")
    as_json = cli("plugins", "check", "--json")

    assert text.code == as_json.code == 0, text.err
    first, *off = text.out.splitlines()
    assert first.startswith("ok: ") and first.endswith("3 turned off")
    assert sorted(line.split("'")[1] for line in off) == [
        "http-webhook-handler",
        "slack-webhook-handler",
        "time-based-sampler",
    ]
    report = as_json.json
    assert report["ok"] is True and report["problems"] == []
    assert {p["name"] for p in report["turned_off"]} == {
        "http-webhook-handler",
        "slack-webhook-handler",
        "time-based-sampler",
    }
    assert all(p["reason"] for p in report["turned_off"])
    assert {p["name"] for p in report["loaded"]} >= {"percentage-sampler", "json-schema-validator"}


def test_plugins_check_json_lists_the_problems(project, cli, monkeypatch) -> None:
    project.write("loopai.toml", '[plugins.validators.broken]\nfactory = "loopai_cli_plugins:Raises"\n')

    done = cli("plugins", "check", "--json")

    assert done.code == 1
    [problem] = done.json["problems"]
    assert "loopai.toml:1: validators.broken" in problem and "cannot be built" in problem


def test_plugins_check_json_says_a_refused_configuration_in_its_report(project, cli) -> None:
    project.write("loopai.toml", 'strict = "maybe"\n[dispatch]\nmax_retries = -1\n')

    done = cli("plugins", "check", "--json")

    assert done.code == 2
    assert (done.json["ok"], done.json["started"], done.json["loaded"]) == (False, False, [])
    assert done.json["problems"] == [
        "loopai.toml:1: strict: input should be a valid boolean (got 'maybe')",
        "loopai.toml:3: dispatch.max_retries: must be >= 0 (got -1)",
    ]
    assert "2 error(s) in the configuration; nothing was loaded" in done.err


@pytest.mark.serve  # needs the serve extra
def test_serve_refusing_its_configuration_says_every_error_at_once_plugin_settings_too(project, cli) -> None:
    (project.root / "loopai.toml").write_text(
        "[serve]\nshutdown_timeout = -1\n[plugins.samplers.percentage-sampler.configuration]\nsampling_rate = 1.5\n",
        encoding="utf-8",
    )

    done = cli("serve", "--port", "0")

    assert done.code == 2
    assert [line.split(": ")[:2] for line in done.err.splitlines()] == [
        ["loopai.toml:2", "serve.shutdown_timeout"],
        ["loopai.toml:4", "samplers.percentage-sampler.sampling_rate"],
    ]


def test_plugins_show_names_a_setting_as_its_messages_do_and_its_alias_beside(project, cli) -> None:
    shown = cli("plugins", "show", "slack-webhook-handler", "--json")

    [info] = shown.json
    [url] = [field for field in info["settings_schema"] if "url" in field["name"]]
    assert url["name"] == "webhook_url"  # as 'webhook_url is required' says it
    assert url["description"].endswith("(also read as slack_webhook_url)")
