"""``loopai run`` and the plugins the configuration names: a named plugin that cannot run stops the run before
any record; one that was only discovered is left out with a warning; a validator or sampler can be scoped to tasks."""

from __future__ import annotations

import pytest

import loopai

BROKEN_AT_IMPORT = "raise RuntimeError('this plugin is broken at import')\n"


def test_a_named_plugin_with_wrong_settings_stops_the_run_before_any_record(project, proc) -> None:
    project.write("loopai.toml", "[plugins.samplers.percentage-sampler]\nconfiguration = { sampling_rate = 1.5 }\n")
    records = project.records()
    results = project.write("results.jsonl", '{"earlier": "results"}\n')

    ran = proc("run", str(records), "-o", str(results))

    assert (ran.code, ran.out) == (2, "")
    assert "loopai.toml:2: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)" in ran.err
    assert "is failed" not in ran.err
    assert "its settings are wrong; fix them, or set enabled = false under [plugins.samplers.percentage-sampler]" in (
        ran.err
    )
    assert ran.err.rstrip().endswith("(loopai config check lists every error)")
    assert results.read_text() == '{"earlier": "results"}\n'  # nothing processed, nothing overwritten
    assert not list(project.root.glob("results.outbox.sqlite3*"))  # and no outbox left behind


def test_a_named_plugin_that_is_not_installed_stops_the_run_with_the_closest_name(project, proc) -> None:
    project.write("loopai.toml", "[plugins.samplers.percentage-samplr]\n")

    ran = proc("run", str(project.records()))

    assert ran.code == 2
    assert (
        "loopai.toml:1: samplers.percentage-samplr: no sampler named 'percentage-samplr' is registered; "
        "did you mean 'percentage-sampler'?"
    ) in ran.err


def test_a_named_plugin_whose_required_plugin_is_missing_stops_the_run_with_the_closest_name(project, proc) -> None:
    """Left out, the validator would let every record pass unjudged: the run refuses, as for wrong settings."""
    project.write(
        "loopai.toml", '[plugins.validators.json-schema-validator]\nrequires_plugins = ["percentage-samplr"]\n'
    )

    ran = proc("run", str(project.records()))

    assert (ran.code, ran.out) == (2, "")
    assert (
        "loopai.toml:1: validators.json-schema-validator: validator 'json-schema-validator' (loopai-builtin 0.1.0) "
        "is left out: it requires 'percentage-samplr' (did you mean 'percentage-sampler'?), which is not loaded "
        "and enabled"
    ) in ran.err
    project.write(  # a plugin made by its factory, not discovered: the same
        "loopai.toml",
        '[plugins.validators.judge]\nfactory = "loopai_cli_plugins:Judge"\nrequires_plugins = ["absent"]\n',
    )
    made = proc("run", str(project.records()))
    assert made.code == 2, made.err
    assert "loopai.toml:1: validators.judge: validator 'judge' is disabled (missing-plugin): it requires 'absent'" in (
        made.err
    )


def test_a_named_plugin_that_its_factory_cannot_make_stops_the_run(project, proc) -> None:
    project.write("loopai.toml", '[plugins.validators.judge]\nfactory = "loopai_cli_plugins:Raises"\n')

    ran = proc("run", str(project.records()))

    assert (ran.code, ran.out) == (2, "")
    assert (
        "loopai.toml:1: validators.judge: making it with loopai_cli_plugins:Raises failed: RuntimeError: "
        "this validator cannot be built"
    ) in ran.err


def test_a_named_plugin_turned_off_or_denied_is_no_error(project, proc) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.samplers.percentage-sampler]
        enabled = false
        configuration = { sampling_rate = 1.5 }

        [plugins.validators.judge]
        factory = "loopai_cli_plugins:Raises"
        """,
    )

    ran = proc("run", str(project.records()), "--disable-plugins", "judge")

    assert ran.code == 0, ran.err


def test_a_plugin_that_was_only_discovered_is_left_out_with_a_warning_and_the_run_goes_on(
    project, proc, installed
) -> None:
    installed("loopai-fragile", "validators", "fragile", BROKEN_AT_IMPORT)

    ran = proc("run", str(project.records()))

    assert ran.code == 0, ran.err
    assert len(ran.lines) == 3
    [warning] = [line for line in ran.err.splitlines() if "fragile" in line]
    assert warning.startswith("warning: validator 'fragile' (loopai-fragile 1.0) is left out: importing ")
    assert "this plugin is broken at import" in warning and "reinstall or upgrade loopai-fragile" in warning


def test_a_host_in_code_keeps_isolating_a_named_plugin_and_reports_it(project) -> None:
    project.write("loopai.toml", '[plugins.validators.broken]\nfactory = "loopai_cli_plugins:Raises"\n')

    with loopai.Host(loopai.load_config(), outbox=False) as host:
        report = host.validate(loopai.testing.make_execution(output="ok"))

    assert report.is_valid
    assert any("validators.broken" in problem and "cannot be built" in problem for problem in host.problems)


# -- tasks = [...] ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["1", "4"], ids=["sync", "async"])
def test_a_validator_and_a_sampler_scoped_to_tasks_run_only_for_those(project, proc, kit, concurrency) -> None:
    project.write(
        "loopai.toml",
        f"""
        autoload = false

        [plugins.validators.everywhere]
        factory = "loopai_cli_plugins:Judge"
        metadata = {{ label = "everywhere" }}

        [plugins.validators.only-a]
        factory = "loopai_cli_plugins:Judge"
        tasks = ["{kit.TASK_A}"]
        metadata = {{ label = "only-a" }}

        [plugins.samplers.samples-b]
        factory = "loopai_cli_plugins:Always"
        tasks = ["{kit.TASK_B.upper()}"]
        metadata = {{ label = "samples-b" }}
        """,
    )
    records = project.records(tasks=(kit.TASK_A, kit.TASK_B), each=2)

    ran = proc("run", str(records), "--concurrency", concurrency)

    assert ran.code == 0, ran.err
    by_task: dict[str, list[tuple[list[str], str]]] = {}
    for line in ran.lines:
        validators = [result["validator_type"] for result in line["validation"]["results"]]
        by_task.setdefault(line["task_id"], []).append((validators, line["sampling"]["sampler_type"]))
    assert by_task == {
        kit.TASK_A: [(["everywhere", "only-a"], "")] * 2,
        kit.TASK_B: [(["everywhere"], "samples-b")] * 2,
    }


def test_tasks_on_a_webhook_handler_or_a_task_that_is_no_uuid_is_refused(project, cli) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.webhook_handlers.console-webhook-handler]
        tasks = ["6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"]

        [plugins.validators.json-schema-validator]
        tasks = ["sentiment"]
        """,
    )

    checked = cli("config", "check")

    assert checked.err.splitlines() == [
        "loopai.toml:2: webhook_handlers.console-webhook-handler.tasks: only validators and samplers can be scoped "
        "to tasks; a webhook handler gets every event it supports (remove tasks, or set the handler's events)",
        "loopai.toml:5: validators.json-schema-validator.tasks[0]: a task id must be a UUID (got 'sentiment')",
        "2 error(s)",
    ]
