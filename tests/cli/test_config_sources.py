"""Where the configuration comes from: upwards from the current folder, the user's folder, ``LOOPAI_*`` variables."""

from __future__ import annotations

import os
from pathlib import Path

import loopai
from loopai.config import read_config


def test_a_subfolder_of_the_project_finds_the_projects_file(project, proc) -> None:
    project.write("loopai.toml", "[dispatch]\nmax_retries = 7\n")
    deep = project.root / "src" / "pkg"
    deep.mkdir(parents=True)

    shown = proc("config", "show", cwd=deep)

    assert shown.code == 0, shown.err
    assert (shown.json["source"], shown.json["found_by"]) == ("../../loopai.toml", "a parent folder")
    assert shown.json["dispatch"]["max_retries"] == 7


def test_a_pyproject_with_a_loopai_table_counts_and_one_without_is_passed_over(project, cli) -> None:
    project.write("pyproject.toml", "[tool.loopai.dispatch]\nmax_retries = 4\n")
    inner = project.root / "sub"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'other'\n", encoding="utf-8")
    os.chdir(inner)

    shown = cli("config", "show")

    assert shown.json["source"] == "../pyproject.toml"
    assert shown.json["dispatch"]["max_retries"] == 4


def test_the_search_stops_at_the_repository_root(project, proc, tmp_path: Path) -> None:
    (tmp_path / "loopai.toml").write_text("[dispatch]\nmax_retries = 9\n", encoding="utf-8")  # above the repository

    shown = proc("config", "show")

    assert (shown.json["source"], shown.json["found_by"]) == ("<defaults>", "built-in defaults")
    assert shown.json["dispatch"]["max_retries"] == 3


def test_the_users_file_is_used_when_the_project_has_none_and_config_show_says_so(project, proc) -> None:
    user = Path(project.env["XDG_CONFIG_HOME"], "loopai", "loopai.toml")
    user.parent.mkdir(parents=True)
    user.write_text("[dispatch]\nmax_retries = 5\n", encoding="utf-8")

    from_user = proc("config", "show")
    project.write("loopai.toml", "[dispatch]\nmax_retries = 1\n")
    from_project = proc("config", "show")

    assert from_user.json["found_by"] == "the user's configuration folder"
    assert from_user.json["source"] == str(user) and from_user.json["dispatch"]["max_retries"] == 5
    assert from_project.json["found_by"] == "the current folder"
    assert from_project.json["dispatch"]["max_retries"] == 1


def test_every_value_can_come_from_a_loopai_variable_and_wins_over_the_file(project, proc, kit) -> None:
    project.write(
        "loopai.toml",
        """
        [dispatch]
        max_retries = 1

        [plugins.samplers.percentage-sampler]
        priority = 3
        """,
    )
    env = {
        "LOOPAI_DISPATCH__MAX_RETRIES": "5",  # over the file
        "LOOPAI_DISPATCH__DRY_RUN": "true",
        "LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__CONFIGURATION__SAMPLING_RATE": "0.2",  # the file's entry
        "LOOPAI_PLUGINS__VALIDATORS__JSON_SCHEMA_VALIDATOR__PRIORITY": "50",  # an entry the file has not
        "LOOPAI_PLUGINS__WEBHOOK_HANDLERS__HTTP_WEBHOOK_HANDLER__CONFIGURATION__URL": "https://example.invalid/h",
        f"LOOPAI_TASKS__{kit.TASK_A.replace('-', '_').upper()}__SAMPLING_RATE": "0.5",
        "LOOPAI_DENY": "old-*, beta-*",  # a top-level value: globs, as LOOPAI_PLUGINS takes them
        "LOOPAI_STRICT": "true",
        "LOOPAI_AUTOLOAD": "",  # empty: not set
        "LOOPAI_OUTBOX_KEPT": "x",  # no "__" and no top-level key: not a configuration value (and not an error)
        "LOOPAI_ALLOW__X": "",  # a scalar is not a table: refused, naming the variable
    }

    shown = proc("config", "show", env={**env, "LOOPAI_ALLOW__X": ""})
    del env["LOOPAI_ALLOW__X"]
    good = proc("config", "show", env=env)

    assert shown.code == 2 and "LOOPAI_ALLOW__X: allow" in shown.err
    document = good.json
    assert document["dispatch"] == {**document["dispatch"], "max_retries": 5, "dry_run": True}
    samplers = {entry["name"]: entry for entry in document["plugins"]["samplers"]}
    assert samplers["percentage-sampler"]["priority"] == 3
    assert samplers["percentage-sampler"]["configuration"] == {"sampling_rate": "0.2"}
    assert document["plugins"]["validators"][0]["name"] == "json-schema-validator"
    assert document["plugins"]["validators"][0]["priority"] == 50
    assert document["plugins"]["webhook_handlers"][0]["name"] == "http-webhook-handler"
    assert document["tasks"][kit.TASK_A]["sampling_rate"] == 0.5
    assert (document["deny"], document["strict"], document["autoload"]) == (["old-*", "beta-*"], True, True)


def test_the_top_level_values_from_variables_select_plugins_and_are_named(project, proc) -> None:
    env = {"LOOPAI_DENY": '["percentage-*"]', "LOOPAI_AUTOLOAD": "false", "LOOPAI_ALLOW": "json-schema-validator"}

    listed = proc("plugins", "list", "--all", env=env)
    refused = proc("config", "check", env={"LOOPAI_STRICT": "sometimes"})

    why = {line.split()[0]: line.split(None, 6)[6] for line in listed.out.splitlines()[1:] if line.strip()}
    assert listed.code == 0, listed.err
    assert why["json-schema-validator"] == "allowed by LOOPAI_ALLOW (json-schema-validator)"
    assert why["percentage-sampler"] == "denied by LOOPAI_DENY (percentage-*)"
    assert why["time-based-sampler"] == "not in the allow list of LOOPAI_ALLOW (json-schema-validator)"
    assert refused.code == 1
    assert refused.err.splitlines()[0] == (
        "LOOPAI_STRICT: strict: input should be a valid boolean (got 'sometimes' from ${LOOPAI_STRICT})"
    )


def test_a_bad_value_from_a_variable_names_the_variable(project, proc) -> None:
    checked = proc(
        "config",
        "check",
        env={
            "LOOPAI_DISPATCH__MAX_RETRIES": "many",
            "LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__CONFIGURATION__SAMPLING_RATE": "1.5",
            "LOOPAI_PLUGINS__WEBHOOK_HANDLERS__HTTP_WEBHOK_HANDLER__CONFIGURATION__URL": "https://example.invalid/h",
        },
    )

    assert checked.code == 1
    assert checked.err.splitlines() == [
        "LOOPAI_DISPATCH__MAX_RETRIES: dispatch.max_retries: input should be a valid integer "
        "(got 'many' from ${LOOPAI_DISPATCH__MAX_RETRIES})",
        "LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__CONFIGURATION__SAMPLING_RATE: "
        "samplers.percentage-sampler.sampling_rate: must be <= 1 "
        "(got '1.5' from ${LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__CONFIGURATION__SAMPLING_RATE})",
        "LOOPAI_PLUGINS__WEBHOOK_HANDLERS__HTTP_WEBHOK_HANDLER__CONFIGURATION__URL: "
        "webhook_handlers.http-webhok-handler: no webhook handler named 'http-webhok-handler' is registered; "
        "did you mean 'http-webhook-handler', 'slack-webhook-handler' or 'console-webhook-handler'?",
        "3 error(s)",
    ]


def test_a_plugin_entry_only_a_variable_makes_is_named_by_the_variable_beside_a_file(project, proc) -> None:
    project.write("loopai.toml", "[dispatch]\nmax_retries = 2\n")
    variable = "LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLR__PRIORITY"

    checked = proc("config", "check", env={variable: "5"})

    assert checked.code == 1
    assert checked.err.splitlines()[0] == (
        f"{variable}: samplers.percentage-samplr: no sampler named 'percentage-samplr' is registered; "
        "did you mean 'percentage-sampler'?"
    )


def test_the_variables_apply_to_a_real_run(project, proc) -> None:
    records = project.records(each=4)
    env = {
        "LOOPAI_PLUGINS__SAMPLERS__PERCENTAGE_SAMPLER__CONFIGURATION__SAMPLING_RATE": "1",
        "LOOPAI_PLUGINS__SAMPLERS__TIME_BASED_SAMPLER__ENABLED": "false",
    }

    ran = proc("run", str(records), env=env)

    assert ran.code == 0, ran.err
    assert [line["sampling"]["sampler_type"] for line in ran.lines] == ["percentage-sampler"] * 4


def test_repr_and_str_of_the_configuration_show_no_secret(project, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "whsec-very-secret-1")
    project.write(
        "loopai.toml",
        """
        [delivery]
        outbox = "postgresql://loopai:db-pass-2@db/loopai"

        [plugins.webhook_handlers.http-webhook-handler.configuration]
        url = "https://user:url-pass-3@hooks.example.invalid/in?token=tok-4"
        secret = "${HOOK_SECRET}"
        anything = "plain-but-hidden-5"

        [plugins.webhook_handlers.http-webhook-handler.metadata]
        api_key = "meta-key-6"
        """,
    )

    config = loopai.load_config()
    reading = read_config()

    for text in (repr(config), str(config), repr(reading), repr(config.plugins), str(config.plugins.webhook_handlers)):
        for secret in ("whsec-very-secret-1", "db-pass-2", "url-pass-3", "tok-4", "plain-but-hidden-5", "meta-key-6"):
            assert secret not in text
    assert "http-webhook-handler" in repr(config)  # what is not secret is still there to read
    assert config.plugins.webhook_handlers[0].configuration["secret"] == "whsec-very-secret-1"


def test_a_loopai_toml_that_is_a_folder_is_an_error_naming_it(project, cli, proc) -> None:
    (project.root / "loopai.toml").mkdir()
    deep = project.root / "sub"
    deep.mkdir()

    checked = cli("config", "check")
    named = cli("config", "check", "loopai.toml")
    below = proc("config", "check", cwd=deep)
    ran = proc("run", str(project.records()))

    refused = "is a folder, not a configuration file; rename or remove it (the configuration is a TOML file)"
    assert checked.code == 1
    assert checked.err.splitlines() == [f"loopai.toml: {refused}", "1 error(s)"]
    assert checked.out == ""
    assert named.code == 1
    assert named.err.splitlines() == [
        "loopai.toml: is a folder, not a configuration file; name a TOML or JSON file",
        "1 error(s)",
    ]
    assert below.code == 1 and below.err.splitlines()[0] == f"../loopai.toml: {refused}"
    assert (ran.code, ran.out) == (2, "")
    assert ran.err.splitlines() == [f"loopai.toml: {refused}"]


def test_a_users_loopai_toml_that_is_a_folder_is_an_error_naming_it(project, cli) -> None:
    user = Path(project.env["XDG_CONFIG_HOME"], "loopai", "loopai.toml")
    user.mkdir(parents=True)

    checked = cli("config", "check")

    assert checked.code == 1
    assert (
        checked.err.splitlines()[0]
        == f"{user}: is a folder, not a configuration file; rename or remove it (the configuration is a TOML file)"
    )
