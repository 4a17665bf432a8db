"""Diagnostics work where the secrets are not: an unset ``${VAR}`` is shown as such; only commands that need it stop."""

from __future__ import annotations

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
