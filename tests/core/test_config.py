"""Configuration: where it is read from, both file shapes, ${ENV} references, and every error."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr

import loopai
from loopai import ConfigError, SamplerPlugin, SamplingDecision, ValidationResult, ValidatorPlugin
from loopai.config import with_lines

SEED_JSON = {
    "Loopai": {
        "Plugins": {
            "Samplers": [
                {
                    "Name": "percentage-sampler",
                    "Type": "sampler",
                    "Enabled": True,
                    "Priority": 100,
                    "Configuration": {"SamplingRate": 0.1},
                }
            ]
        }
    }
}


class PercentageSampler(SamplerPlugin):
    """The sampler of the issue's example message, with a typed ``sampling_rate``."""

    name = "percentage-sampler"
    priority = 30

    class Config(BaseModel):
        sampling_rate: float = Field(0.1, ge=0, le=1)

    def should_sample(self, execution, context):
        return SamplingDecision(should_sample=False, reason=str(self.config.sampling_rate))


class Accept(ValidatorPlugin):
    def validate(self, execution, context):
        return ValidationResult(is_valid=True)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load(folder: Path, path: str | None = None, **environ: str) -> loopai.LoopaiConfig:
    return loopai.load_config(path, environ=environ, cwd=folder)


def problems_of(folder: Path, path: str | None = None, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(folder, path, **environ)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def sampler_names(config: loopai.LoopaiConfig) -> list[str]:
    return [entry.name for entry in config.plugins.samplers]


# -- where the configuration comes from ------------------------------------------------


def test_defaults_when_there_is_no_file(tmp_path: Path) -> None:
    config = load(tmp_path)

    assert config.source is None
    assert config.source_label == "<defaults>"
    assert config.model_dump() == loopai.LoopaiConfig().model_dump()
    assert config.searched and not loopai.LoopaiConfig().searched  # a reload looks for a file again only then
    assert config.plugins.validators == config.plugins.samplers == config.plugins.webhook_handlers == []
    assert loopai.find_config(environ={}, cwd=tmp_path) == (None, "defaults")


def test_loopai_toml_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.from-loopai-toml]\n")

    config = load(tmp_path)

    assert sampler_names(config) == ["from-loopai-toml"]
    assert config.source == (tmp_path / "loopai.toml").resolve()


def test_tool_loopai_in_pyproject(tmp_path: Path) -> None:
    write(
        tmp_path,
        "pyproject.toml",
        """
        [project]
        name = "app"

        [tool.loopai.plugins.samplers.from-pyproject]
        priority = 4
        """,
    )

    config = load(tmp_path)

    assert sampler_names(config) == ["from-pyproject"]
    assert config.plugins.samplers[0].priority == 4
    assert loopai.find_config(environ={}, cwd=tmp_path) == (tmp_path / "pyproject.toml", "pyproject")


def test_pyproject_without_tool_loopai_means_defaults(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "app"\n\n[tool.ruff]\nline-length = 99\n')

    config = load(tmp_path)

    assert config.source is None
    assert config.model_dump() == loopai.LoopaiConfig().model_dump()


def test_loopai_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.loopai.plugins.samplers.from-pyproject]\n")
    write(tmp_path, "loopai.toml", "[plugins.samplers.from-loopai-toml]\n")

    assert sampler_names(load(tmp_path)) == ["from-loopai-toml"]


def test_loopai_config_variable_wins_over_loopai_toml(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.from-loopai-toml]\n")
    write(tmp_path, "elsewhere.toml", "[plugins.samplers.from-variable]\n")

    assert sampler_names(load(tmp_path, LOOPAI_CONFIG="elsewhere.toml")) == ["from-variable"]


def test_explicit_path_wins_over_loopai_config_variable(tmp_path: Path) -> None:
    write(tmp_path, "elsewhere.toml", "[plugins.samplers.from-variable]\n")
    explicit = write(tmp_path, "explicit.toml", "[plugins.samplers.from-explicit-path]\n")

    assert sampler_names(load(tmp_path, str(explicit), LOOPAI_CONFIG="elsewhere.toml")) == ["from-explicit-path"]
    assert sampler_names(load(tmp_path, "explicit.toml")) == ["from-explicit-path"]


def test_loopai_config_may_name_a_pyproject_or_a_json_file(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.loopai.plugins.samplers.from-pyproject]\n")
    (tmp_path / "appsettings.json").write_text(json.dumps(SEED_JSON), encoding="utf-8")

    assert sampler_names(load(tmp_path, LOOPAI_CONFIG="pyproject.toml")) == ["from-pyproject"]
    assert sampler_names(load(tmp_path, LOOPAI_CONFIG="appsettings.json")) == ["percentage-sampler"]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("path", "missing.toml: configuration file not found"),
        ("variable", "missing.toml: configuration file not found (from LOOPAI_CONFIG)"),
    ],
)
def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path, how: str, message: str) -> None:
    write(tmp_path, "loopai.toml", "")  # not silently used instead

    if how == "path":
        assert problems_of(tmp_path, "missing.toml") == [message]
    else:
        assert problems_of(tmp_path, LOOPAI_CONFIG="missing.toml") == [message]


def test_empty_loopai_config_variable_is_ignored(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.from-loopai-toml]\n")

    assert sampler_names(load(tmp_path, LOOPAI_CONFIG="")) == ["from-loopai-toml"]


# -- shapes ----------------------------------------------------------------------------


def test_toml_tables_by_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        strict = true

        [dispatch]
        max_retries = 5
        dry_run = true

        [plugins.samplers.percentage-sampler]
        enabled = false
        priority = 100
        timeout = 2.5
        metadata = { team = "quality" }
        configuration = { sampling_rate = 0.1 }

        [plugins.validators.schema]

        [plugins.webhook_handlers.console]
        type = "webhook-handler"
        """,
    )

    config = load(tmp_path)
    sampler = config.plugins.find("samplers", "percentage-sampler")

    assert config.strict is True
    assert config.dispatch.max_retries == 5 and config.dispatch.dry_run is True
    assert sampler is not None
    assert (sampler.enabled, sampler.priority, sampler.timeout) == (False, 100, 2.5)
    assert sampler.metadata == {"team": "quality"}
    assert sampler.configuration == {"sampling_rate": 0.1}
    assert [e.name for e in config.plugins.for_kind(ValidatorPlugin)] == ["schema"]
    assert [e.name for e in config.plugins.webhook_handlers] == ["console"]


def test_toml_arrays_of_tables(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        [[plugins.samplers]]
        name = "first"
        priority = 1

        [[plugins.samplers]]
        name = "second"
        configuration = { sampling_rate = 0.5 }
        """,
    )

    config = load(tmp_path)

    assert sampler_names(config) == ["first", "second"]
    assert config.plugins.samplers[1].configuration == {"sampling_rate": 0.5}


def test_seed_json_shape_with_pascal_case_keys(tmp_path: Path) -> None:
    (tmp_path / "appsettings.json").write_text(json.dumps(SEED_JSON), encoding="utf-8")

    config = load(tmp_path, "appsettings.json")
    entry = config.plugins.samplers[0]

    assert entry.name == "percentage-sampler"
    assert entry.type == "sampler"
    assert entry.enabled is True
    assert entry.priority == 100
    assert entry.configuration == {"SamplingRate": 0.1}


def test_seed_json_settings_reach_the_plugin_in_snake_case(tmp_path: Path) -> None:
    seed = json.loads(json.dumps(SEED_JSON))
    seed["Loopai"]["Plugins"]["Samplers"][0]["Configuration"]["SamplingRate"] = 0.25
    (tmp_path / "appsettings.json").write_text(json.dumps(seed), encoding="utf-8")
    sampler = PercentageSampler()

    host = loopai.Host(load(tmp_path, "appsettings.json"), plugins=[sampler])

    assert host.problems == []
    assert sampler.config.sampling_rate == 0.25
    assert sampler.priority == 100


def test_seed_json_with_other_top_level_sections_reads_only_the_loopai_section(tmp_path: Path) -> None:
    appsettings = {"Logging": {"LogLevel": {"Default": "Information"}}, "AllowedHosts": "*", **SEED_JSON}
    (tmp_path / "appsettings.json").write_text(json.dumps(appsettings), encoding="utf-8")

    config = load(tmp_path, "appsettings.json")

    assert sampler_names(config) == ["percentage-sampler"]
    assert config.plugins.samplers[0].priority == 100


def test_other_top_level_sections_without_a_loopai_section_are_still_unknown() -> None:
    with pytest.raises(ConfigError) as caught:
        loopai.parse_config({"Logging": {}, "plugins": {}}, label="appsettings.json")

    assert caught.value.problems == ["appsettings.json: logging: is not a known setting"]


def test_parse_config_takes_an_already_parsed_document() -> None:
    config = loopai.parse_config(SEED_JSON, label="appsettings.json")

    assert sampler_names(config) == ["percentage-sampler"]
    with pytest.raises(ConfigError, match=r"^appsettings\.json: samplers\.x\.priority: "):
        loopai.parse_config({"plugins": {"samplers": {"x": {"priority": "high"}}}}, label="appsettings.json")


def test_parse_config_label_names_the_source_of_host_problems() -> None:
    config = loopai.parse_config({"plugins": {"validators": {"nowhere": {}}}}, label="appsettings.json")

    host = loopai.Host(config)

    assert config.source_label == "appsettings.json"
    assert host.problems[0].startswith("appsettings.json: validators.nowhere: no validator named 'nowhere'")


def test_duplicate_names_in_the_seed_json_list_are_an_error(tmp_path: Path) -> None:
    seed = {"Loopai": {"Plugins": {"Samplers": [{"Name": "a", "Priority": 1}, {"Name": "a", "Priority": 2}]}}}
    (tmp_path / "appsettings.json").write_text(json.dumps(seed), encoding="utf-8")

    assert problems_of(tmp_path, "appsettings.json") == [
        "appsettings.json:1: samplers[1].name: 'a' is already the name of samplers[0]; "
        "give each plugin of a kind its own name"
    ]


def test_duplicate_names_in_toml_arrays_of_tables_are_an_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        [[plugins.samplers]]
        name = "a"

        [[plugins.samplers]]
        name = "b"

        [[plugins.samplers]]
        name = "a"

        [[plugins.validators]]
        name = "a"
        """,
    )

    assert problems_of(tmp_path) == [
        "loopai.toml:8: samplers[2].name: 'a' is already the name of samplers[0]; "
        "give each plugin of a kind its own name"
    ]


# -- ${ENV} references -----------------------------------------------------------------


def test_environment_references_are_resolved(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        [plugins.webhook_handlers.slack.configuration]
        url = "https://${HOST}/hooks"
        channel = "${CHANNEL:-#alerts}"
        price = "$$5"
        empty = "${EMPTY:-}"
        """,
    )

    config = load(tmp_path, HOST="hooks.example.com")

    assert config.plugins.webhook_handlers[0].configuration == {
        "url": "https://hooks.example.com/hooks",
        "channel": "#alerts",
        "price": "$5",
        "empty": "",
    }


def test_a_set_variable_wins_over_the_default(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", '[plugins.samplers.s]\nconfiguration = { mode = "${MODE:-fast}" }\n')

    assert load(tmp_path, MODE="slow").plugins.samplers[0].configuration == {"mode": "slow"}


def test_escaped_dollar_is_not_a_reference(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", '[plugins.samplers.s]\nconfiguration = { literal = "$${NOT_A_VAR}" }\n')

    assert load(tmp_path).plugins.samplers[0].configuration == {"literal": "${NOT_A_VAR}"}


def test_missing_variable_names_file_plugin_and_field(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", '[plugins.webhook_handlers.slack]\nconfiguration = { token = "${SLACK_TOKEN}" }\n')

    assert problems_of(tmp_path) == [
        "loopai.toml:2: webhook_handlers.slack.configuration.token: environment variable SLACK_TOKEN is not set "
        "(export it, or write ${SLACK_TOKEN:-default})"
    ]


def test_missing_variable_outside_plugins(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", 'allow = ["${FIRST_PLUGIN}"]\n')

    assert problems_of(tmp_path) == [
        "loopai.toml:1: allow[0]: environment variable FIRST_PLUGIN is not set "
        "(export it, or write ${FIRST_PLUGIN:-default})"
    ]


def test_a_whole_reference_feeds_boolean_and_integer_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        strict = "${STRICT}"

        [dispatch]
        max_retries = "${RETRIES}"
        dry_run = "${DRY:-false}"

        [plugins.samplers.s]
        enabled = "${ON}"
        priority = "${PRIORITY}"
        """,
    )

    config = load(tmp_path, STRICT="true", RETRIES="5", ON="0", PRIORITY="-3")

    assert (config.strict, config.dispatch.max_retries, config.dispatch.dry_run) == (True, 5, False)
    assert (config.plugins.samplers[0].enabled, config.plugins.samplers[0].priority) == (False, -3)


def test_a_variable_that_is_not_a_number_is_an_error_naming_the_field(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", '[dispatch]\nmax_retries = "${RETRIES}"\n[plugins.samplers.s]\npriority = "p${N}"\n')

    assert problems_of(tmp_path, RETRIES="five", N="1") == [
        "loopai.toml:2: dispatch.max_retries: input should be a valid integer (got 'five' from ${RETRIES})",
        "loopai.toml:4: samplers.s.priority: input should be a valid integer (got 'p1' from ${N})",
    ]


def test_an_unset_variable_is_reported_once_not_again_as_a_wrong_field(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", '[[plugins.samplers]]\nname = "${NAME}"\npriority = "${PRIORITY}"\n')

    assert problems_of(tmp_path) == [
        "loopai.toml:2: samplers.${NAME}.name: environment variable NAME is not set "
        "(export it, or write ${NAME:-default})",
        "loopai.toml:3: samplers.${NAME}.priority: environment variable PRIORITY is not set "
        "(export it, or write ${PRIORITY:-default})",
    ]


# -- every error path ------------------------------------------------------------------


def test_bad_toml_names_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.s]\npriority = 1\nenabled = tru\n")

    (problem,) = problems_of(tmp_path)

    assert problem.startswith("loopai.toml:3:11: invalid TOML: ")


def test_a_key_set_twice_in_toml_is_named_so(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[dispatch]\nmax_retries = 1\nmax_retries = 2\n")

    assert problems_of(tmp_path) == ["loopai.toml:3:16: invalid TOML: Cannot overwrite a value (is a key set twice?)"]


def test_bad_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "appsettings.json").write_text('{\n  "Loopai": {\n    "Plugins": [,]\n  }\n}\n', encoding="utf-8")

    (problem,) = problems_of(tmp_path, "appsettings.json")

    assert problem.startswith("appsettings.json:3:17: invalid JSON: ")


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")

    assert problems_of(tmp_path, "list.json") == ["list.json: the configuration must be a table/object, got list"]


NOT_SAMPLERS = "does not match the section 'samplers' (use validator, sampler or webhook-handler, or leave it out)"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("colour = 'blue'\n", "loopai.toml:1: colour: is not a known setting"),
        (
            "[dispatch]\nretries = 3\n",
            "loopai.toml:2: dispatch.retries: is not a known setting; did you mean 'max_retries'?",
        ),
        (  # a name other tools use: too far from the spelling for difflib, known all the same
            "[plugins.samplers.s.settings]\nrate = 1\n",
            "loopai.toml:1: samplers.s.settings: is not a known setting; did you mean 'configuration'?",
        ),
        (
            "[plugins.gadgets.g]\n",
            "loopai.toml:1: plugins.gadgets: unknown plugin kind; use validators, samplers or webhook_handlers",
        ),
        (
            "[plugins.samplers.s]\npriority = 'high'\n",
            "loopai.toml:2: samplers.s.priority: input should be a valid integer (got 'high')",
        ),
        (
            "[plugins.samplers.s]\npriority = 1.5\n",
            "loopai.toml:2: samplers.s.priority: input should be a valid integer (got 1.5)",
        ),
        (
            "[plugins.samplers.s]\nenabled = 'yes'\n",
            "loopai.toml:2: samplers.s.enabled: input should be a valid boolean (got 'yes')",
        ),
        (
            "[plugins.samplers.s]\nenabled = 'false'\n",
            "loopai.toml:2: samplers.s.enabled: input should be a valid boolean (got 'false')",
        ),
        ("[plugins.samplers.s]\ntimeout = -1\n", "loopai.toml:2: samplers.s.timeout: must be > 0 (got -1)"),
        ("[plugins.samplers.s]\ncolour = 'blue'\n", "loopai.toml:2: samplers.s.colour: is not a known setting"),
        ("[plugins.samplers.s]\nname = 't'\n", "loopai.toml:2: samplers.s.name: 't' differs from the table name 's'"),
        ("[plugins.samplers.s]\ntype = 'validator'\n", f"loopai.toml:2: samplers.s.type: 'validator' {NOT_SAMPLERS}"),
        ("[plugins.samplers.s]\ntype = 'gadget'\n", f"loopai.toml:2: samplers.s.type: 'gadget' {NOT_SAMPLERS}"),
        (
            "[plugins.samplers.s]\nmetadata = { owner = 3 }\n",
            "loopai.toml:2: samplers.s.metadata.owner: input should be a valid string (got 3)",
        ),
        ("[[plugins.samplers]]\npriority = 3\n", "loopai.toml:1: samplers[0].name: is required"),
        ("[dispatch]\nmax_retries = -1\n", "loopai.toml:2: dispatch.max_retries: must be >= 0 (got -1)"),
        ("plugins = 3\n", "loopai.toml:1: plugins: must be a table, got int"),
        ("[plugins]\nsamplers = 3\n", "loopai.toml:2: samplers: must be a table of plugins or a list, got int"),
        ("[plugins.samplers]\ns = 3\n", "loopai.toml:2: samplers.s: must be a table, got int"),
    ],
)
def test_each_error_names_the_file_the_plugin_and_the_field(tmp_path: Path, toml: str, expected: str) -> None:
    write(tmp_path, "loopai.toml", toml)

    assert problems_of(tmp_path) == [expected]


def test_json_errors_name_the_plugin_not_its_index(tmp_path: Path) -> None:
    seed = json.loads(json.dumps(SEED_JSON))
    seed["Loopai"]["Plugins"]["Samplers"][0]["Priority"] = "high"
    seed["Loopai"]["Plugins"]["Samplers"][0]["Enabled"] = "true"
    (tmp_path / "appsettings.json").write_text(json.dumps(seed), encoding="utf-8")

    assert problems_of(tmp_path, "appsettings.json") == [
        "appsettings.json:1: samplers.percentage-sampler.enabled: input should be a valid boolean (got 'true')",
        "appsettings.json:1: samplers.percentage-sampler.priority: input should be a valid integer (got 'high')",
    ]


def test_all_errors_of_a_file_are_listed_at_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        colour = "blue"

        [plugins.gadgets.g]

        [plugins.samplers.s]
        name = "t"
        type = "validator"
        priority = "high"
        timeout = 0
        configuration = { token = "${UNSET_TOKEN}" }
        """,
    )

    problems = problems_of(tmp_path)

    assert sorted(problems) == sorted(
        [
            "loopai.toml:3: plugins.gadgets: unknown plugin kind; use validators, samplers or webhook_handlers",
            "loopai.toml:6: samplers.s.name: 't' differs from the table name 's'",
            "loopai.toml:10: samplers.s.configuration.token: environment variable UNSET_TOKEN is not set "
            "(export it, or write ${UNSET_TOKEN:-default})",
            "loopai.toml:1: colour: is not a known setting",
            "loopai.toml:8: samplers.s.priority: input should be a valid integer (got 'high')",
            "loopai.toml:9: samplers.s.timeout: must be > 0 (got 0)",
            "loopai.toml:7: samplers.s.type: 'validator' does not match the section 'samplers' "
            "(use validator, sampler or webhook-handler, or leave it out)",
        ]
    )


def test_errors_of_a_file_outside_the_working_directory_name_its_path(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    path = write(elsewhere, "loopai.toml", "[plugins.samplers.s]\npriority = 'high'\n")
    here = tmp_path / "work"
    here.mkdir()

    assert problems_of(here, str(path)) == [
        f"{path}:2: samplers.s.priority: input should be a valid integer (got 'high')"
    ]


def test_errors_in_pyproject_name_the_tool_loopai_table(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.loopai]\ncolour = 1\n\n[tool.loopai.plugins.samplers.s]\npriority = 'x'\n")

    assert problems_of(tmp_path) == [
        "pyproject.toml:2: tool.loopai.colour: is not a known setting",
        "pyproject.toml:5: tool.loopai.samplers.s.priority: input should be a valid integer (got 'x')",
    ]


def test_plugin_settings_errors_from_pyproject_name_the_tool_loopai_table(tmp_path: Path) -> None:
    write(
        tmp_path,
        "pyproject.toml",
        "[tool.loopai.plugins.samplers.percentage-sampler.configuration]\nsampling_rate = 1.5\n",
    )
    config = load(tmp_path)

    host = loopai.Host(config, plugins=[PercentageSampler()], environ={})

    assert host.problems == [
        f"{config.source_label}: tool.loopai.samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)"
    ]


# -- what a configured entry changes on a plugin ---------------------------------------


def test_entry_without_priority_keeps_the_plugins_own_priority(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.percentage-sampler]\nconfiguration = { sampling_rate = 0.5 }\n")
    sampler = PercentageSampler()

    host = loopai.Host(load(tmp_path), plugins=[sampler])

    assert host.problems == []
    assert sampler.priority == 30
    assert sampler.enabled is True
    assert sampler.config.sampling_rate == 0.5


def test_entry_with_priority_and_enabled_overrides_the_plugin(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.percentage-sampler]\npriority = 0\nenabled = false\n")
    sampler = PercentageSampler()

    host = loopai.Host(load(tmp_path), plugins=[sampler])

    assert host.problems == []
    assert sampler.priority == 0
    assert sampler.enabled is False
    assert host.registry.list(SamplerPlugin) == []


def test_entry_without_configuration_keeps_the_plugins_settings(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.percentage-sampler]\npriority = 9\n")
    sampler = PercentageSampler({"sampling_rate": 0.7})

    loopai.Host(load(tmp_path), plugins=[sampler])

    assert sampler.config.sampling_rate == 0.7
    assert sampler.priority == 9


def test_configured_plugin_that_is_not_registered_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.validators.nowhere]\n")

    host = loopai.Host(load(tmp_path), plugins=[Accept()])

    assert len(host.problems) == 1
    assert host.problems[0].startswith("loopai.toml: validators.nowhere: no validator named 'nowhere' is registered")


# -- plugin settings -------------------------------------------------------------------


def test_settings_error_message_of_the_issue(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.percentage-sampler]\nconfiguration = { sampling_rate = 1.5 }\n")

    host = loopai.Host(loopai.load_config(cwd=tmp_path, environ={}), plugins=[PercentageSampler()])

    assert host.problems == ["loopai.toml: samplers.percentage-sampler.sampling_rate: must be <= 1 (got 1.5)"]
    assert not host.registry.contains(SamplerPlugin, "percentage-sampler")


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.percentage-sampler]\nconfiguration = { sampling_rat = 0.5 }\n")

    host = loopai.Host(load(tmp_path), plugins=[PercentageSampler()])

    assert host.problems == [
        "loopai.toml: samplers.percentage-sampler.sampling_rat: is not a known setting; did you mean 'sampling_rate'?"
    ]


def test_pascal_case_setting_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.samplers.percentage-sampler]\nconfiguration = { SamplingRate = 0.3 }\n")
    sampler = PercentageSampler()

    host = loopai.Host(load(tmp_path), plugins=[sampler])

    assert host.problems == []
    assert sampler.config.sampling_rate == 0.3


def test_plugin_constructor_validates_settings_too() -> None:
    assert PercentageSampler({"SamplingRate": 0.2}).config.sampling_rate == 0.2
    with pytest.raises(loopai.PluginSettingsError) as caught:
        PercentageSampler({"sampling_rate": -1, "extra": True})

    assert caught.value.problems == [
        "percentage-sampler.sampling_rate: must be >= 0 (got -1)",
        "percentage-sampler.extra: is not a known setting (the known ones: sampling_rate)",
    ]


class AliasedSampler(SamplerPlugin):
    """Settings declared with the seed's PascalCase names as aliases."""

    class Config(BaseModel):
        sampling_rate: float = Field(0.1, alias="SamplingRate")

    def should_sample(self, execution, context):
        return SamplingDecision(should_sample=False)


@pytest.mark.parametrize("key", ["SamplingRate", "sampling_rate", "samplingRate"])
def test_a_setting_with_an_alias_is_accepted_by_alias_and_by_field_name(key: str) -> None:
    assert AliasedSampler({key: 0.3}).config.sampling_rate == 0.3


def test_a_nested_config_that_is_not_a_pydantic_model_is_a_clear_error() -> None:
    class LegacySampler(SamplerPlugin):
        class Config:
            rate = 0.1

        def should_sample(self, execution, context):
            return SamplingDecision(should_sample=False)

    with pytest.raises(loopai.PluginError) as caught:
        LegacySampler()

    assert str(caught.value) == (
        "legacy-sampler: test_a_nested_config_that_is_not_a_pydantic_model_is_a_clear_error.<locals>."
        "LegacySampler.Config must subclass pydantic.BaseModel to declare the plugin's settings "
        "(class Config(BaseModel): ...)"
    )


def test_plugin_without_settings_model_gets_a_plain_dict(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", "[plugins.validators.accept]\nconfiguration = { anything = [1, 2] }\n")
    plugin = Accept()

    loopai.Host(load(tmp_path), plugins=[plugin])

    assert plugin.config == {"anything": [1, 2]}


# -- factory = "module:attribute" ------------------------------------------------------


FACTORY_MODULE = """
import loopai
from pydantic import BaseModel, Field


class EveryNth(loopai.SamplerPlugin):
    class Config(BaseModel):
        every: int = Field(10, ge=1)

    def should_sample(self, execution, context):
        hit = (context.total_executions + 1) % self.config.every == 0
        return loopai.SamplingDecision(should_sample=hit, sampler_type="every-nth")


def make_validator():
    class Picky(loopai.ValidatorPlugin):
        def validate(self, execution, context):
            return loopai.ValidationResult(is_valid=execution.output == "ok")

    return Picky()


EVERY_FIFTH = EveryNth({"every": 5})
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"loopai_test_factories_{uuid.uuid4().hex[:8]}"
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{name}.py").write_text(FACTORY_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(modules))
    return name


def test_factory_registers_a_plugin_class_with_its_settings(tmp_path: Path, factory_module: str) -> None:
    write(
        tmp_path,
        "loopai.toml",
        f"""
        [plugins.samplers.every-third]
        factory = "{factory_module}:EveryNth"
        priority = 7
        configuration = {{ every = 3 }}
        """,
    )

    host = loopai.Host(load(tmp_path))
    sampler = host.registry.resolve(SamplerPlugin, "every-third")

    assert host.problems == []
    assert sampler is not None
    assert sampler.config.every == 3
    assert sampler.priority == 7
    execution = loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())
    assert [host.should_sample(execution).should_sample for _ in range(6)] == [False, False, True] * 2


def test_factory_may_be_a_function(tmp_path: Path, factory_module: str) -> None:
    write(tmp_path, "loopai.toml", f'[plugins.validators.picky]\nfactory = "{factory_module}:make_validator"\n')

    host = loopai.Host(load(tmp_path))

    assert host.problems == []
    assert host.registry.contains(ValidatorPlugin, "picky")


def test_factory_instance_gets_its_configured_settings(tmp_path: Path, factory_module: str) -> None:
    write(
        tmp_path,
        "loopai.toml",
        f'[plugins.samplers.nth]\nfactory = "{factory_module}:EVERY_FIFTH"\nconfiguration = {{ every = 2 }}\n',
    )

    host = loopai.Host(load(tmp_path))

    assert host.problems == []
    assert host.registry.resolve(SamplerPlugin, "nth").config.every == 2


def test_factory_settings_are_validated(tmp_path: Path, factory_module: str) -> None:
    write(
        tmp_path,
        "loopai.toml",
        f'[plugins.samplers.nth]\nfactory = "{factory_module}:EveryNth"\nconfiguration = {{ every = 0 }}\n',
    )

    host = loopai.Host(load(tmp_path))

    assert host.problems == ["loopai.toml: samplers.nth.every: must be >= 1 (got 0)"]
    assert not host.registry.contains(SamplerPlugin, "nth")


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("no_colon", "loopai.toml: samplers.x.factory: 'no_colon' must look like 'package.module:attribute'"),
        (
            "loopai_no_such_module_xyz:Thing",
            "loopai.toml: samplers.x.factory: cannot import 'loopai_no_such_module_xyz:Thing'",
        ),
    ],
)
def test_bad_factory_is_a_problem_naming_file_plugin_and_field(tmp_path: Path, factory: str, expected: str) -> None:
    write(tmp_path, "loopai.toml", f'[plugins.samplers.x]\nfactory = "{factory}"\n')

    host = loopai.Host(load(tmp_path))

    assert len(host.problems) == 1
    assert host.problems[0].startswith(expected)


def test_factory_attribute_missing_from_the_module(tmp_path: Path, factory_module: str) -> None:
    write(tmp_path, "loopai.toml", f'[plugins.samplers.x]\nfactory = "{factory_module}:Nope"\n')

    host = loopai.Host(load(tmp_path))

    assert len(host.problems) == 1
    assert host.problems[0].startswith(f"loopai.toml: samplers.x.factory: cannot import '{factory_module}:Nope'")


# -- redact ----------------------------------------------------------------------------


def test_redact_hides_secret_values_and_secret_looking_keys() -> None:
    class Settings(BaseModel):
        password: SecretStr
        endpoint: str = "https://example.com"

    shown = loopai.redact(
        {
            "settings": Settings(password=SecretStr("hunter2")),
            "api_key": "k-123",
            "apiKey": "k-456",
            "Authorization": "Bearer xyz",
            "nested": [{"client_secret": "s3"}, {"webhook_url": "https://hooks.example.com/T0/B0"}],
            "token": "",
            "channel": "#alerts",
            "retries": 3,
        }
    )

    text = json.dumps(shown)
    for secret in ("hunter2", "k-123", "k-456", "Bearer xyz", "s3", "hooks.example.com"):
        assert secret not in text
    assert shown["settings"] == {"password": "**********", "endpoint": "https://example.com"}
    assert shown["channel"] == "#alerts"
    assert shown["retries"] == 3
    assert shown["token"] == ""


def test_redact_of_a_loaded_configuration(tmp_path: Path) -> None:
    write(tmp_path, "loopai.toml", '[plugins.webhook_handlers.slack]\nconfiguration = { api_token = "${TOKEN}" }\n')

    shown = loopai.redact(load(tmp_path, TOKEN="xoxb-very-secret").model_dump())

    assert "xoxb-very-secret" not in json.dumps(shown)
    assert shown["plugins"]["webhook_handlers"][0]["configuration"]["api_token"] == "**********"


def test_messages_get_the_line_of_the_place_they_name(tmp_path: Path) -> None:
    path = write(
        tmp_path, "loopai.toml", "[dispatch]\nmax_retries = 3\n\n[plugins.samplers.s.configuration]\nrate = 2\n"
    )
    messages = [
        "loopai.toml: samplers.s.rate: must be <= 1",  # a plugin's own setting: "configuration" left out
        "sampler 's' is left out: its settings are wrong:\nloopai.toml: samplers.s.rate: must be <= 1",
        "loopai.toml: samplers.s.missing: is required",  # not written: the line of its table
        "loopai.toml: state.url: is required",  # no part of it written
        "LOOPAI_DISPATCH__MAX_RETRIES: dispatch.max_retries: must be >= 0",  # the environment's, not the file's
        "loopai.toml:2: dispatch.max_retries: must be >= 0",  # located already
    ]

    assert with_lines(messages, path, "loopai.toml") == [
        ("loopai.toml:5: samplers.s.rate: must be <= 1", 5),
        ("sampler 's' is left out: its settings are wrong:\nloopai.toml:5: samplers.s.rate: must be <= 1", 5),
        ("loopai.toml:4: samplers.s.missing: is required", 4),
        ("loopai.toml: state.url: is required", None),
        ("LOOPAI_DISPATCH__MAX_RETRIES: dispatch.max_retries: must be >= 0", None),
        ("loopai.toml:2: dispatch.max_retries: must be >= 0", 2),
    ]
    path.unlink()  # gone since: the messages stay as they are
    assert with_lines(messages[:1], path, "loopai.toml") == [(messages[0], None)]


def test_problems_come_in_the_order_of_the_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loopai.toml",
        """
        strict = "yes"

        [dispatch]
        max_retries = -1

        [plugins.validators.v]
        priority = "high"

        [serve]
        port = 99999
        """,
    )
    lines = [problem.split(":")[1] for problem in problems_of(tmp_path)]
    assert lines == ["1", "4", "7", "10"]
