"""What a new plugin author ran into: a misspelt order name config check passed, exit codes, plugins check's
list of configuration errors, uninstall's did-you-mean, show of a plugin whose default breaks its own
constraints, and a plugin's print() in config check --json / config show output."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

MISSPELT_RUN_AFTER = """
autoload = false

[plugins.samplers.percentage-sampler]
configuration = { sampling_rate = 0.5 }

[plugins.samplers.time-based-sampler]
run_after = ["percentage-samplr"]
"""

# Four mistakes in the file's structure and four in the plugins' settings.
EIGHT_MISTAKES = """
strict = "no"
colour = "blue"

[dispatch]
max_retires = 5

[plugins.sampler.x]

[plugins.samplers.percentage-sampler]
configuration = { sampling_rate = 1.5 }

[plugins.samplers.percentage-samplr]
configuration = { sampling_rate = 0.2 }

[plugins.webhook_handlers.http-webhook-handler.configuration]
url = "ftp://example.invalid/hook"
timeout = -3
"""


def test_config_check_counts_a_misspelt_run_after_name_at_its_line_as_plugins_check_does(project, proc) -> None:
    project.write("loopai.toml", MISSPELT_RUN_AFTER)

    checked = proc("config", "check")
    as_json = proc("config", "check", "--json")
    plugins = proc("plugins", "check")

    located = (
        "loopai.toml:7: samplers.time-based-sampler.run_after: sampler 'time-based-sampler': run_after "
        "'percentage-samplr' is ignored: 'percentage-samplr' is not a registered sampler "
        "(did you mean 'percentage-sampler'?); correct the name in the run_after key of its "
        "[plugins.samplers.time-based-sampler] table"
    )
    assert checked.code == 1, checked.err
    assert checked.err.splitlines() == [located, "1 error(s)"]
    assert as_json.code == 1
    assert as_json.json["errors"] == [{"message": located, "file": "loopai.toml", "line": 7}]
    assert plugins.code == 1
    assert f"- {located}\n" in plugins.err
    assert "wherever it was set" not in checked.err + plugins.err


def test_plugins_check_lists_every_structural_and_settings_error_with_the_count(project, proc) -> None:
    project.write("loopai.toml", EIGHT_MISTAKES)

    checked = proc("plugins", "check")
    config = proc("config", "check")

    assert checked.code == 2, checked.err
    *errors, total = checked.err.splitlines()
    assert total == "8 error(s) in the configuration; nothing was loaded"
    assert errors == config.err.splitlines()[:-1]
    assert len(errors) == 8
    assert "loopai.toml:10: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)" in errors
    assert "loopai.toml:17: webhook_handlers.http-webhook-handler.timeout: must be > 0 (got -3)" in errors


# -- exit codes: README says any failure other than a listing of problems exits 2 ----------------------------


def test_plugins_new_into_a_folder_that_exists_exits_2_with_loopais_wording(project, proc) -> None:
    pytest.importorskip("cookiecutter")
    (project.root / "loopai-x").mkdir()

    done = proc("plugins", "new", "x", "--kind", "sampler", stdin=subprocess.DEVNULL)

    assert done.code == 2, done.err
    assert done.err.splitlines() == [
        "loopai plugins new: loopai-x already exists; choose another --output-dir or remove it (or another name)",
        "loopai plugins new: nothing was created",
    ]
    assert list((project.root / "loopai-x").iterdir()) == []


def test_config_show_of_a_file_with_errors_exits_2_and_points_to_config_check(project, proc) -> None:
    project.write("loopai.toml", 'strict = "no"\n')

    done = proc("config", "show")

    assert done.code == 2 and done.out == ""
    assert "loopai.toml:1: strict: input should be a valid boolean (got 'no')" in done.err
    assert "loopai config check lists every error" in done.err


@pytest.mark.parametrize(
    ("command", "promised"),
    [
        (("plugins", "install"), "2 nothing installed"),
        (("plugins", "uninstall"), "2 nothing uninstalled"),
        (("plugins", "new"), "2 nothing created"),
        (("plugins", "show"), "2 no installed plugin has that name"),
        (("config", "show"), "2 the configuration has errors"),
        (("config", "check"), "1 listing every error"),
    ],
)
def test_the_help_says_each_commands_exit_status(proc, command, promised) -> None:
    done = proc(*command, "--help")

    assert done.code == 0
    assert promised in " ".join(done.out.split())


# -- uninstall: did you mean -----------------------------------------------------------------------------


def test_uninstall_of_a_misspelt_name_suggests_the_closest_and_exits_2(project, proc, installed) -> None:
    installed("loopai-order-check", "validators", "order-check", "Plugin = None\n")

    done = proc("plugins", "uninstall", "order-chek", "--yes")

    assert done.code == 2
    assert done.err.splitlines() == [
        "loopai plugins uninstall: 'order-chek': no installed plugin or plugin distribution has that name; "
        "did you mean 'order-check'? (see: loopai plugins list --all)",
        "loopai plugins uninstall: nothing was uninstalled",
    ]


# -- show: the class's schema when the plugin failed to load ---------------------------------------------

BROKEN_DEFAULT = '''
from typing import Annotated

from pydantic import BaseModel, Field

import loopai


class Plugin(loopai.SamplerPlugin):
    class Config(BaseModel):
        rate: Annotated[float, Field(ge=0, le=1)] = 1.5
        """Share of executions to sample."""

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False, sampler_type=self.name)
'''


def test_show_of_a_plugin_whose_default_breaks_its_constraints_marks_it_invalid(project, proc, installed) -> None:
    installed("loopai-overdone", "samplers", "overdone", BROKEN_DEFAULT)

    text = proc("plugins", "show", "overdone")
    as_json = proc("plugins", "show", "overdone", "--json")

    assert text.code == 0, text.err
    assert "status:        failed" in text.out
    assert "settings schema (of its class: the plugin was not loaded):" in text.out
    assert re.search(r"^    rate +\S.* +default 1\.5 \(invalid\) +Share of executions to sample\.$", text.out, re.M)
    [info] = as_json.json
    assert info["settings_loaded"] is False
    assert [(f["name"], f["default"], f["default_breaks_constraints"]) for f in info["settings_schema"]] == [
        ("rate", 1.5, True)
    ]


# -- a plugin's print() keeps off stdout ----------------------------------------------------------------

CHATTY = """
import loopai

print("hello from loopai-chatty")


class Plugin(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


def test_a_plugin_that_prints_at_import_keeps_config_check_json_and_config_show_parseable(
    project, proc, installed
) -> None:
    installed("loopai-chatty", "validators", "chatty", CHATTY)
    project.write("loopai.toml", "[plugins.validators.chatty]\n")

    checked = proc("config", "check", "--json")
    shown = proc("config", "show")

    assert checked.code == 0, checked.err
    assert checked.json["ok"] is True
    assert "hello from loopai-chatty" in checked.err
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["source"] == "loopai.toml"
    assert "hello from loopai-chatty" in shown.err
