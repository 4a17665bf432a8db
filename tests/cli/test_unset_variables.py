"""Diagnostics work where the secrets are not: an unset ``${VAR}`` is shown as such; only commands that need it stop."""

from __future__ import annotations

import pytest

CONFIG = """
[plugins.webhook_handlers.http-webhook-handler.configuration]
url = "https://hooks.example.invalid/loopai"
secret = "${LOOPAI_WEBHOOK_SECRET}"
events = ["latency.threshold.breached"]  # none in these tests: nothing is sent

[plugins.samplers.percentage-sampler]
configuration = { sampling_rate = 0.5 }
"""
UNSET = (
    "loopai.toml:3: webhook_handlers.http-webhook-handler.configuration.secret: "
    "environment variable LOOPAI_WEBHOOK_SECRET is not set"
)


def test_config_show_shows_the_reference_and_says_it_is_unset(project, cli) -> None:
    project.write("loopai.toml", CONFIG)

    shown = cli("config", "show")

    assert shown.code == 0, shown.err
    [handler] = shown.json["plugins"]["webhook_handlers"]
    assert handler["configuration"] == {
        "url": "https://hooks.example.invalid/loopai",
        "secret": "${LOOPAI_WEBHOOK_SECRET} (unset)",
        "events": ["latency.threshold.breached"],
    }
    assert UNSET in shown.err


def test_config_check_checks_everything_else_and_warns(project, cli) -> None:
    project.write("loopai.toml", CONFIG.replace("0.5", "5"))

    checked = cli("config", "check")

    assert checked.code == 1  # for the sampling rate, not for the variable
    assert checked.err.splitlines() == [
        "loopai.toml:7: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 5)",
        f"warning: {UNSET} (export it, or write ${{LOOPAI_WEBHOOK_SECRET:-default}}); loopai run needs it",
        "1 error(s)",
    ]


def test_plugins_list_and_show_work_and_show_the_reference(project, cli) -> None:
    project.write("loopai.toml", CONFIG)

    listed = cli("plugins", "list", "--json")
    shown = cli("plugins", "show", "http-webhook-handler", "--json")

    assert listed.code == 0, listed.err
    assert {p["name"] for p in listed.json} >= {"http-webhook-handler", "percentage-sampler"}
    assert UNSET in listed.err
    assert shown.code == 0, shown.err
    [info] = shown.json
    assert info["status"] == "ok"
    assert info["settings"]["secret"] == "${LOOPAI_WEBHOOK_SECRET} (unset)"
    assert info["unset"] == [f"{UNSET} (export it, or write ${{LOOPAI_WEBHOOK_SECRET:-default}})"]


def test_a_command_that_needs_the_value_stops_naming_the_variable(project, proc) -> None:
    project.write("loopai.toml", CONFIG)

    ran = proc("run", str(project.records()))
    with_it = proc("run", str(project.records()), env={"LOOPAI_WEBHOOK_SECRET": "s3cret-for-tests"})

    assert (ran.code, ran.out) == (2, "")
    assert UNSET in ran.err
    assert with_it.code == 0, with_it.err
    assert "s3cret-for-tests" not in with_it.out + with_it.err


@pytest.mark.parametrize(
    ("handler", "setting", "variable"),
    [("http-webhook-handler", "url", "HOOK_URL"), ("slack-webhook-handler", "webhook_url", "SLACK_WEBHOOK_URL")],
)
def test_config_check_says_the_variable_not_that_the_setting_it_gives_is_required(
    project, cli, handler, setting, variable
) -> None:
    project.write("loopai.toml", f'[plugins.webhook_handlers.{handler}.configuration]\n{setting} = "${{{variable}}}"\n')

    checked = cli("config", "check")
    as_json = cli("config", "check", "--json")

    unset = (
        f"loopai.toml:2: webhook_handlers.{handler}.configuration.{setting}: environment variable {variable} is not "
        f"set (export it, or write ${{{variable}:-default}})"
    )
    assert checked.code == 0, checked.err
    said = checked.err.splitlines()
    assert f"warning: {unset}; loopai run needs it" in said
    # The plugin's refusal, checked without the value, is a warning: every reason in it still shown.
    (refusal,) = [line for line in said if "refused its settings" in line]
    assert refusal.startswith(f"warning: loopai.toml: webhook_handlers.{handler}: ")
    assert refusal.endswith("(checked without the unset variable)") and len(said) == 2
    assert checked.out == "loopai.toml: ok (1 plugin entry)\n"
    assert (as_json.json["ok"], as_json.json["errors"]) == (True, [])


def test_a_command_that_needs_the_setting_names_the_variable_alone(project, proc) -> None:
    project.write("loopai.toml", '[plugins.webhook_handlers.http-webhook-handler.configuration]\nurl = "${HOOK_URL}"\n')

    ran = proc("run", str(project.records()))

    assert (ran.code, ran.out) == (2, "")
    assert ran.err.splitlines() == [
        "loopai.toml:2: webhook_handlers.http-webhook-handler.configuration.url: environment variable HOOK_URL is not "
        "set (export it, or write ${HOOK_URL:-default})"
    ]


def test_a_settings_error_of_another_setting_is_still_an_error(project, cli) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.samplers.tuned]
        factory = "loopai_cli_plugins:Tuned"
        configuration = { token = "${TUNED_TOKEN}", rate = 5 }
        """,
    )

    checked = cli("config", "check")

    assert checked.code == 1
    assert checked.err.splitlines() == [
        "loopai.toml:3: samplers.tuned.rate: must be <= 1 (got 5)",
        "warning: loopai.toml:3: samplers.tuned.configuration.token: environment variable TUNED_TOKEN is not set "
        "(export it, or write ${TUNED_TOKEN:-default}); loopai run needs it",
        "1 error(s)",
    ]


def test_plugins_show_says_an_unset_variable_of_its_plugin_once(project, cli) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.webhook_handlers.http-webhook-handler.configuration]
        url = "${HOOK_URL}"

        [plugins.samplers.tuned]
        factory = "loopai_cli_plugins:Tuned"
        configuration = { token = "${TUNED_TOKEN}" }
        """,
    )

    shown = cli("plugins", "show", "http-webhook-handler")

    assert shown.code == 0, shown.err
    said = shown.out + shown.err
    assert said.count("environment variable HOOK_URL is not set") == 1
    assert "  unset:         loopai.toml:2: webhook_handlers.http-webhook-handler.configuration.url: " in shown.out
    assert "note: loopai.toml:6: samplers.tuned.configuration.token: environment variable TUNED_TOKEN" in shown.err


SHARED = """
[serve]
port = "${SERVE_PORT}"
api_keys = ["${SERVE_KEY}"]

[plugins.webhook_handlers.http-webhook-handler]
enabled = false
configuration = { url = "https://hooks.example.invalid/loopai", secret = "${HOOK_SECRET}" }
"""


def test_a_variable_that_only_a_disabled_plugin_or_serve_uses_stops_nothing_else(project, proc) -> None:
    """A file shared by ``run`` and ``serve``: the service's keys and a disabled handler's secret
    are exported where they are used, not where ``loopai run`` or ``events deliver`` work."""
    project.write("loopai.toml", SHARED)

    ran = proc("run", str(project.records()))
    delivered = proc("events", "deliver")
    checked = proc("config", "check")

    assert ran.code == 0, ran.err
    assert ran.out.count("\n") == len(project.records().read_text().splitlines())
    assert delivered.code == 0, delivered.err
    assert checked.code == 0, checked.err
    assert checked.err.splitlines()[1:] == [
        "warning: loopai.toml:3: serve.api_keys[0]: environment variable SERVE_KEY is not set (export it, or write "
        "${SERVE_KEY:-default}); loopai serve needs it",
        "warning: loopai.toml:7: webhook_handlers.http-webhook-handler.configuration.secret: environment variable "
        "HOOK_SECRET is not set (export it, or write ${HOOK_SECRET:-default}); its plugin is disabled: nothing "
        "needs it",
    ]


@pytest.mark.serve  # needs the serve extra
def test_loopai_serve_stops_on_the_variables_it_needs(project, proc) -> None:
    project.write("loopai.toml", SHARED)

    served = proc("serve", "--port", "0")

    assert served.code == 2
    assert served.err.splitlines() == [
        "loopai.toml:2: serve.port: environment variable SERVE_PORT is not set (export it, or write "
        "${SERVE_PORT:-default})",
        "loopai.toml:3: serve.api_keys[0]: environment variable SERVE_KEY is not set (export it, or write "
        "${SERVE_KEY:-default})",
    ]


def test_loopai_state_url_replaces_a_file_url_whose_variable_is_unset(project, proc) -> None:
    project.write("loopai.toml", '[state]\nurl = "postgresql://loopai:${DB_PASSWORD}@db.internal/loopai"\n')
    env = {"LOOPAI_STATE_URL": "postgresql://loopai:pw@127.0.0.1:1/loopai", "LOOPAI_STATE__UNAVAILABLE_TIMEOUT": "0.2"}

    ran = proc("run", str(project.records()), env=env)
    without = proc("run", str(project.records()))

    assert ran.code == 2
    assert "DB_PASSWORD" not in ran.err and "127.0.0.1:1" in ran.err  # it tried the variable's database
    assert without.code == 2 and "environment variable DB_PASSWORD is not set" in without.err
