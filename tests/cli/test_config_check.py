"""``loopai config check``: every error of a file in one pass, with its line, and the closest names for typos."""

from __future__ import annotations

import json

# Five mistakes in the file's structure and four in the plugins' settings, as the issue found them.
NINE_MISTAKES = """
strict = "no"
colour = "blue"

[dispatch]
max_retires = 5
retry_backoff = -1

[plugins.sampler.x]

[plugins.samplers.percentage-sampler]
configuration = { sampling_rate = 1.5 }

[plugins.samplers.percentage-samplr]
configuration = { sampling_rate = 0.2 }

[plugins.webhook_handlers.http-webhook-handler.configuration]
url = "ftp://example.invalid/hook"
timeout = -3
"""


def test_a_setting_written_in_the_wrong_table_names_the_table_that_has_it(project, cli) -> None:
    project.write(
        "loopai.toml",
        "[dispatch]\ndrain_timeout = 3\n[delivery]\nmax_retries = 2\n"
        "[plugins.samplers.percentage-sampler]\nretry_backoff = 1\n",
    )

    checked = cli("config", "check")

    assert checked.err.splitlines() == [
        "loopai.toml:2: dispatch.drain_timeout: is not a known setting; [delivery] has a setting of that name",
        "loopai.toml:4: delivery.max_retries: is not a known setting; [dispatch] has a setting of that name",
        "loopai.toml:6: samplers.percentage-sampler.retry_backoff: is not a known setting; "
        "[dispatch] has a setting of that name",
        "3 error(s)",
    ]


def test_a_required_plugin_that_is_missing_is_said_once_with_the_closest_name(project, cli) -> None:
    project.write(
        "loopai.toml", '[plugins.validators.json-schema-validator]\nrequires_plugins = ["percentage-samplr"]\n'
    )

    checked = cli("config", "check")

    assert checked.code == 1
    assert checked.err.splitlines() == [
        "loopai.toml:1: validators.json-schema-validator: validator 'json-schema-validator' (loopai-builtin 0.1.0) "
        "is left out: it requires 'percentage-samplr' (did you mean 'percentage-sampler'?), which is not loaded "
        "and enabled; install and enable it, or take it out of its requires_plugins",
        "1 error(s)",
    ]


def test_every_structural_and_settings_error_is_reported_in_one_pass_with_its_line(project, cli) -> None:
    project.write("loopai.toml", NINE_MISTAKES)

    checked = cli("config", "check")

    assert checked.code == 1 and checked.out == ""
    *errors, total = checked.err.splitlines()
    assert total == "9 error(s)"
    assert errors == [
        "loopai.toml:1: strict: input should be a valid boolean (got 'no')",
        "loopai.toml:2: colour: is not a known setting",
        "loopai.toml:5: dispatch.max_retires: is not a known setting; did you mean 'max_retries'?",
        "loopai.toml:6: dispatch.retry_backoff: must be >= 0 (got -1)",
        "loopai.toml:8: plugins.sampler: unknown plugin kind; did you mean 'samplers'? "
        "(use validators, samplers or webhook_handlers)",
        "loopai.toml:11: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)",
        "loopai.toml:13: samplers.percentage-samplr: no sampler named 'percentage-samplr' is registered; "
        "did you mean 'percentage-sampler'?",
        "loopai.toml:17: webhook_handlers.http-webhook-handler.url: value error, must be an http:// or https:// URL "
        "with a host (got 'ftp://example.invalid/hook')",
        "loopai.toml:18: webhook_handlers.http-webhook-handler.timeout: must be > 0 (got -3)",
    ]


def test_a_misspelt_setting_of_a_plugin_gets_the_closest_names(project, cli) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.samplers.tuned]
        factory = "loopai_cli_plugins:Tuned"
        priorty = 2

        [plugins.samplers.tuned.configuration]
        rat = 0.2
        """,
    )

    checked = cli("config", "check")

    assert checked.err.splitlines() == [
        "loopai.toml:3: samplers.tuned.priorty: is not a known setting; did you mean 'priority'?",
        "loopai.toml:6: samplers.tuned.rat: is not a known setting; did you mean 'rate'?",
        "2 error(s)",
    ]


def test_a_json_file_gets_line_numbers_too(project, cli) -> None:
    project.write(
        "appsettings.json",
        """
        {
          "Loopai": {
            "Plugins": {
              "Samplers": [
                {"Name": "percentage-sampler", "Priority": "high"},
                {
                  "Name": "tuned",
                  "Factory": "loopai_cli_plugins:Tuned",
                  "Configuration": {"Rate": 7}
                }
              ]
            },
            "Dispatch": {"max_retries": -1}
          }
        }
        """,
    )

    checked = cli("config", "check", "appsettings.json")

    assert checked.err.splitlines() == [
        "appsettings.json:5: samplers.percentage-sampler.priority: input should be a valid integer (got 'high')",
        "appsettings.json:9: samplers.tuned.rate: must be <= 1 (got 7)",
        "appsettings.json:13: dispatch.max_retries: must be >= 0 (got -1)",
        "3 error(s)",
    ]


def test_config_is_taken_as_an_option_as_every_other_command_takes_it(project, cli) -> None:
    project.write("bad.toml", "colour = 1\n")
    project.write("good.toml", "[dispatch]\nmax_retries = 1\n")

    by_option = cli("config", "check", "--config", "bad.toml")
    positional = cli("config", "check", "bad.toml")
    both_agree = cli("config", "check", "good.toml", "--config", "good.toml")
    both_differ = cli("config", "check", "good.toml", "--config", "bad.toml")
    shown = cli("config", "show", "--config", "good.toml")

    assert by_option.code == positional.code == 1
    assert by_option.err == positional.err == "bad.toml:1: colour: is not a known setting\n1 error(s)\n"
    assert (both_agree.code, both_agree.out) == (0, "good.toml: ok (0 plugin entries)\n")
    assert both_differ.code == 2 and "name one file" in both_differ.err
    assert shown.code == 0 and shown.json["dispatch"]["max_retries"] == 1


def test_json_output_lists_each_error_with_file_and_line(project, cli) -> None:
    project.write("loopai.toml", "[dispatch]\nmax_retries = -1\n\n[plugins.samplers.percentage-sampler]\n")

    bad = cli("config", "check", "--json")
    project.write("loopai.toml", "[plugins.samplers.percentage-sampler]\nconfiguration = { sampling_rate = 0.5 }\n")
    good = cli("config", "check", "--json")

    assert bad.code == 1
    assert bad.json == {
        "source": "loopai.toml",
        "found_by": "the current folder",
        "ok": False,
        "plugin_entries": 1,
        "errors": [
            {
                "message": "loopai.toml:2: dispatch.max_retries: must be >= 0 (got -1)",
                "file": "loopai.toml",
                "line": 2,
            }
        ],
        "warnings": [],
    }
    assert good.code == 0 and good.json["ok"] is True and good.json["errors"] == []
    assert json.loads(good.out)["plugin_entries"] == 1


def test_a_plain_text_webhook_secret_is_accepted_with_a_warning_on_how_receivers_verify_it(project, cli) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.webhook_handlers.http-webhook-handler.configuration]
        url = "http://127.0.0.1:9/hook"
        secret = "correct horse battery staple"
        """,
    )

    checked = cli("config", "check")

    assert checked.code == 0 and checked.out.startswith("loopai.toml: ok")
    assert "warning: http-webhook-handler: secret: the secret is not base64" in checked.err
    assert "Webhook(secret.encode())" in checked.err
    assert "correct horse" not in checked.err + checked.out  # the warning never shows the secret itself
    reported = json.loads(cli("config", "check", "--json").out)
    assert reported["ok"] is True and any("secret.encode()" in warning for warning in reported["warnings"])

    project.write(
        "loopai.toml",
        """
        [plugins.webhook_handlers.http-webhook-handler.configuration]
        url = "http://127.0.0.1:9/hook"
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        """,
    )
    assert "warning" not in cli("config", "check").err


def test_a_cycle_of_order_constraints_or_requirements_is_a_warning_not_an_error(project, cli) -> None:
    """As loopai run says it: the plugins run, by priority among themselves."""
    project.write(
        "loopai.toml",
        "autoload = false\n"
        "[plugins.validators.first]\n"
        'factory = "loopai_cli_plugins:Judge"\n'
        'run_before = ["second"]\n'
        'requires_plugins = ["second"]\n'
        "[plugins.validators.second]\n"
        'factory = "loopai_cli_plugins:Judge"\n'
        'run_before = ["first"]\n'
        'requires_plugins = ["first"]\n',
    )

    checked = cli("config", "check")

    assert checked.code == 0, checked.err
    assert "error(s)" not in checked.err
    warnings = [line for line in checked.err.splitlines() if line.startswith("warning: ")]
    assert any("'first', 'second' are in a cycle of run_before/run_after constraints" in w for w in warnings)
    assert any("plugins 'first', 'second' require each other" in w for w in warnings)


def test_a_misspelt_run_before_name_is_an_error_at_its_line_with_the_closest_name(project, cli) -> None:
    """As loopai plugins check counts it (the plugin would run by priority, the constraint ignored)."""
    project.write(
        "loopai.toml",
        "autoload = false\n"
        "[plugins.validators.first]\n"
        'factory = "loopai_cli_plugins:Judge"\n'
        'run_before = ["secnod"]\n'
        "[plugins.validators.second]\n"
        'factory = "loopai_cli_plugins:Judge"\n',
    )

    checked = cli("config", "check")
    plugins = cli("plugins", "check")

    assert checked.code == 1, checked.err
    error, total = checked.err.splitlines()
    assert error == (
        "loopai.toml:4: validators.first.run_before: validator 'first': run_before 'secnod' is ignored: 'secnod' is "
        "not a registered validator (did you mean 'second'?); correct the name in the run_before key of its "
        "[plugins.validators.first] table"
    )
    assert total == "1 error(s)"
    assert plugins.code == 1
    assert f"- {error}" in plugins.err


def test_a_factory_naming_a_misspelt_class_gets_the_closest_name(project, cli) -> None:
    project.write("loopai.toml", '[plugins.validators.judge]\nfactory = "loopai_cli_plugins:Judg"\n')

    checked = cli("config", "check")

    assert checked.code == 1
    assert (
        "loopai.toml:2: validators.judge.factory: cannot import 'loopai_cli_plugins:Judg': module "
        "'loopai_cli_plugins' has no attribute 'Judg' (did you mean 'Judge'?); correct it"
    ) in checked.err
