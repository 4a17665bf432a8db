"""Loading discovered plugins: each shape of plugin, settings, and isolation of every kind of breakage."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

import loopai
from loopai import SamplerPlugin, ValidatorPlugin, WebhookHandlerPlugin

if TYPE_CHECKING:
    from conftest import Site

GOOD_VALIDATOR = """
import loopai

class Good(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

THRESHOLD = """
from pydantic import BaseModel, Field, SecretStr

import loopai

class Threshold(loopai.ValidatorPlugin):
    description = "Fails executions below a threshold."

    class Config(BaseModel):
        threshold: float = Field(0.5, ge=0, le=1)
        api_key: SecretStr | None = None

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

EVERY_OTHER = """
import loopai

class EveryOther(loopai.SamplerPlugin):
    priority = 7

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=True, sampler_type=self.name)

plugin = EveryOther(name="every-other")
"""

HOOKS = """
import loopai

seen = []

@loopai.hookimpl
def handle_event(event, context):
    seen.append(event.event_type)
"""


def _execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())


def _result(host: loopai.Host, validator: str) -> loopai.ValidationResult:
    """The result of one validator among all those the host ran."""
    [result] = [
        r for r in host.validate(_execution(), loopai.ValidationContext()).results if r.validator_type == validator
    ]
    return result


def _broken_site(site: Site) -> None:
    """A good plugin next to one distribution per way of breaking at load time."""
    site.add("loopai-good", entry_points={"loopai.validators": {"good": ":Good"}}, code=GOOD_VALIDATOR)
    site.add(
        "loopai-importerror",
        entry_points={"loopai.validators": {"importerror": ":Broken"}},
        code="raise ImportError('no module named fancylib')\n",
    )
    site.add(
        "loopai-missingdep",
        entry_points={"loopai.validators": {"missingdep": ":Broken"}},
        code="import fancy_missing_lib.sub\n",
    )
    site.add(
        "loopai-syntaxerror",
        entry_points={"loopai.samplers": {"syntaxerror": ":Broken"}},
        code="def broken(:\n",
    )
    site.add(
        "loopai-ctor",
        entry_points={"loopai.samplers": {"ctor": ":Exploding"}},
        code="""
        import loopai

        class Exploding(loopai.SamplerPlugin):
            def __init__(self, config=None):
                raise RuntimeError("cannot reach the sampling service")

            def should_sample(self, execution, context):
                raise AssertionError
        """,
    )
    site.add(
        "loopai-signature",
        entry_points={"loopai.validators": {"signature": ":Bad"}},
        code="""
        import loopai

        class Bad(loopai.ValidatorPlugin):
            def validate(self, execution, ctx):
                return loopai.ValidationResult(is_valid=True)
        """,
    )
    site.add(
        "loopai-wrongkind",
        entry_points={"loopai.webhook_handlers": {"wrongkind": ":NotAHandler"}},
        code="""
        import loopai

        class NotAHandler(loopai.SamplerPlugin):
            def should_sample(self, execution, context):
                return loopai.SamplingDecision(should_sample=False)
        """,
    )


BROKEN = {
    "importerror": [
        "importing",
        "ImportError: no module named fancylib (at ",  # where it was raised: the module's file and line
        "/__init__.py:3); reinstall or upgrade loopai-importerror",
        "LOOPAI_DISABLE_PLUGINS=loopai-importerror:importerror",
    ],
    "missingdep": [  # a module it imports is not installed: that is what to do something about
        "ModuleNotFoundError: No module named 'fancy_missing_lib'",
        "the module 'fancy_missing_lib' it imports is not installed: install it (pip install fancy_missing_lib,",
        "declare it among loopai-missingdep's dependencies",
    ],
    "syntaxerror": ["importing", "SyntaxError", "/__init__.py:3); reinstall or upgrade loopai-syntaxerror"],
    "ctor": [
        "constructing",
        ":Exploding failed: RuntimeError: cannot reach the sampling service",
        "upgrade loopai-ctor",
        "LOOPAI_DISABLE_PLUGINS=loopai-ctor:ctor",
    ],
    "signature": [
        "hook 'validate' is defined as validate(execution, ctx), but the hookspec is validate(execution, context)",
        "rename or remove 'ctx'",
        "upgrade loopai-signature",
        "LOOPAI_DISABLE_PLUGINS=loopai-signature:signature",
    ],
    "wrongkind": [
        "entry point [loopai.webhook_handlers] wrongkind = ",
        "names NotAHandler, which is not a subclass of loopai.WebhookHandlerPlugin",
        "upgrade loopai-wrongkind",
    ],
}


# -- good plugins of each shape --------------------------------------------------------


def test_a_plugin_class_is_instantiated_with_settings_validated_by_its_config_model(site: Site) -> None:
    site.add(
        "loopai-threshold",
        "2.1.0",
        entry_points={"loopai.validators": {"threshold": ":Threshold"}},
        code=THRESHOLD,
        summary="Threshold checks",
    )
    path = site.config(
        """
        [plugins.validators.threshold]
        priority = 40
        configuration = { threshold = 0.75 }
        """
    )

    host = site.host(loopai.load_config(path))

    plugin = host.registry.resolve(ValidatorPlugin, "threshold")
    assert plugin is not None and type(plugin).__name__ == "Threshold"
    assert plugin.config.threshold == 0.75
    assert plugin.priority == 40
    assert plugin.version == "2.1.0"  # from the distribution, since the class states none
    [record] = site.mine(host.discovered)
    assert (record.status, record.loaded, record.enabled, record.priority) == ("ok", True, True, 40)
    assert site.own_problems(host.problems) == []
    assert _result(host, "threshold").is_valid


def test_a_plugin_instance_is_registered_as_it_is(site: Site) -> None:
    dist = site.add(
        "loopai-every-other", entry_points={"loopai.samplers": {"every-other": ":plugin"}}, code=EVERY_OTHER
    )

    host = site.host()

    plugin = host.registry.resolve(SamplerPlugin, "every-other")
    module = __import__(dist.module)
    assert plugin is module.plugin
    assert site.discover()["every-other"].status == "ok"
    assert site.mine(host.discovered)[0].priority == 7
    assert host.should_sample(_execution(), loopai.SamplingContext()).winner == "every-other"


def test_a_module_of_hookimpl_functions_is_a_plugin(site: Site) -> None:
    dist = site.add(
        "loopai-hooks",
        entry_points={"loopai.webhook_handlers": {"recorder": "{module}.hooks"}},
        files={"{module}/hooks.py": HOOKS},
    )  # an entry point without an attribute names the module itself

    host = site.host()

    plugin = host.registry.resolve(WebhookHandlerPlugin, "recorder")
    assert plugin is not None and plugin.wraps.__name__ == f"{dist.module}.hooks"
    event = loopai.WebhookEvent(event_type=loopai.WebhookEventType.TASK_CREATED, payload={})
    assert "recorder" in host.emit(event).delivered
    assert plugin.wraps.seen == [loopai.WebhookEventType.TASK_CREATED]


def test_one_distribution_may_declare_plugins_of_every_kind(site: Site) -> None:
    site.add(
        "loopai-suite",
        "0.4.0",
        entry_points={
            "loopai.validators": {"threshold": ":Threshold", "good": ":Good"},
            "loopai.samplers": {"every-other": ":plugin"},
            "loopai.webhook_handlers": {"recorder": "{module}.hooks"},
        },
        code=THRESHOLD + GOOD_VALIDATOR + EVERY_OTHER,
        files={"{module}/hooks.py": HOOKS},
    )

    host = site.host()

    assert {(r.kind, r.name, r.status, r.distribution) for r in site.mine(host.discovered)} == {
        ("validator", "threshold", "ok", "loopai-suite"),
        ("validator", "good", "ok", "loopai-suite"),
        ("sampler", "every-other", "ok", "loopai-suite"),
        ("webhook-handler", "recorder", "ok", "loopai-suite"),
    }
    assert [p.name for p in host.registry.list(ValidatorPlugin) if p.name in ("good", "threshold")] == [
        "good",
        "threshold",
    ]
    assert site.own_problems(host.problems) == []


def test_built_in_plugins_are_discovered_and_turned_off_like_any_other(site: Site) -> None:
    site.add(
        "loopai-builtin",
        "0.1.0",
        entry_points={
            "loopai.validators": {"json-schema-validator": ":Good"},
            "loopai.samplers": {"percentage": ":plugin"},
        },
        code=GOOD_VALIDATOR + EVERY_OTHER,
        requires=["loopai-core==0.1.0"],
    )

    on = site.host()
    off = site.host(env={"LOOPAI_DISABLE_PLUGINS": "loopai-builtin:*"})

    assert {r.name: r.status for r in site.mine(on.discovered)} == {"json-schema-validator": "ok", "percentage": "ok"}
    assert on.registry.contains("validator", "json-schema-validator")
    records = {r.name: r for r in site.mine(off.discovered)}
    assert {name: r.status for name, r in records.items()} == {
        "json-schema-validator": "disabled",
        "percentage": "disabled",
    }
    assert records["percentage"].reason == "denied by LOOPAI_DISABLE_PLUGINS (loopai-builtin:*)"
    assert not off.registry.contains("validator", "json-schema-validator")
    assert site.own_problems(off.problems) == []


# -- settings --------------------------------------------------------------------------


def test_settings_that_fail_validation_name_the_file_the_plugin_and_the_field(site: Site) -> None:
    site.add("loopai-threshold", entry_points={"loopai.validators": {"threshold": ":Threshold"}}, code=THRESHOLD)
    site.add("loopai-good", entry_points={"loopai.validators": {"good": ":Good"}}, code=GOOD_VALIDATOR)
    path = site.config(
        """
        [plugins.validators.threshold.configuration]
        threshold = 1.5
        colour = "red"
        """
    )

    host = site.host(loopai.load_config(path))

    record = next(r for r in host.discovered if r.name == "threshold")
    assert record.status == "failed"
    assert f"{path}: validators.threshold.threshold: must be <= 1 (got 1.5)" in record.reason
    assert f"{path}: validators.threshold.colour: is not a known setting" in record.reason
    assert host.registry.contains("validator", "good")
    assert not host.registry.contains("validator", "threshold")
    [problem] = site.own_problems(host.problems)
    assert problem.startswith(
        "validator 'threshold' (loopai-threshold 1.0.0) is left out: its settings are wrong; "
        "fix them, or set enabled = false under [plugins.validators.threshold] to leave it off:\n"
    )
    assert "is failed" not in problem
    assert "threshold.threshold: must be <= 1" in problem


# -- isolation -------------------------------------------------------------------------


def test_each_broken_plugin_is_left_out_with_its_reason_and_the_others_load(site: Site) -> None:
    _broken_site(site)

    host = site.host()

    records = {r.name: r for r in site.mine(host.discovered)}
    assert records["good"].status == "ok" and records["good"].loaded
    assert host.registry.contains("validator", "good")
    for name, fragments in BROKEN.items():
        record = records[name]
        assert record.status == "failed", (name, record.reason)
        assert not record.loaded and not record.enabled
        for fragment in fragments:
            assert fragment in record.reason, (name, fragment, record.reason)
    assert len(site.own_problems(host.problems)) == len(BROKEN)
    for name in BROKEN:
        [_problem] = [
            p for p in site.own_problems(host.problems) if f"'{name}' (loopai-{name} 1.0.0) is left out: " in p
        ]
    assert host.start() is host  # the host starts without them
    assert _result(host, "good").is_valid
    host.close()


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"strict": True}, id="argument"),
        pytest.param({"env": {"LOOPAI_STRICT_PLUGINS": "1"}}, id="environment"),
        pytest.param({"config": "strict = true\n"}, id="configuration"),
    ],
)
def test_strict_mode_raises_one_startup_error_listing_every_problem(site: Site, how: dict) -> None:
    _broken_site(site)
    site.add("loopai-old", requires=["loopai-core<0.1"], entry_points={"loopai.validators": {"old": ":Good"}})
    options = dict(how)
    config = loopai.load_config(site.config(options.pop("config"))) if "config" in options else None

    with pytest.raises(loopai.StartupError) as raised:
        site.host(config, **options)

    problems = raised.value.problems
    assert len(problems) == len(BROKEN) + 1
    text = str(raised.value)
    for name in [*BROKEN, "old"]:
        assert f"'{name}' (loopai-{name} 1.0.0)" in text
    assert "loopai-old 1.0.0 requires loopai-core<0.1" in text
    assert "LOOPAI_STRICT_PLUGINS=0" in text


def test_strict_mode_off_in_the_environment_overrides_the_configuration(site: Site) -> None:
    _broken_site(site)

    host = site.host(loopai.load_config(site.config("strict = true\n")), env={"LOOPAI_STRICT_PLUGINS": "0"})

    assert len(site.own_problems(host.problems)) == len(BROKEN)


def test_two_distributions_declaring_one_name_are_both_left_out(site: Site) -> None:
    first = site.add(
        "loopai-alpha", "1.0.0", entry_points={"loopai.validators": {"shared": ":Good"}}, code=GOOD_VALIDATOR
    )
    site.add("loopai-beta", "2.0.0", entry_points={"loopai.validators": {"shared": ":Good"}}, code=GOOD_VALIDATOR)
    # The same name for another kind is no conflict.
    site.add("loopai-gamma", entry_points={"loopai.samplers": {"shared": ":plugin"}}, code=EVERY_OTHER)

    host = site.host()

    duplicates = [r for r in site.mine(host.discovered) if r.kind == "validator"]
    assert [(r.distribution, r.status) for r in duplicates] == [
        ("loopai-alpha", "duplicate"),
        ("loopai-beta", "duplicate"),
    ]
    for record in duplicates:
        assert "loopai-alpha 1.0.0" in record.reason and "loopai-beta 2.0.0" in record.reason
        assert "none was loaded" in record.reason
        assert "LOOPAI_DISABLE_PLUGINS=loopai-alpha:shared" in record.reason
    assert not host.registry.contains("validator", "shared")
    assert host.registry.contains("sampler", "shared")
    assert len(site.own_problems(host.problems)) == 2
    assert first.module not in " ".join(site.imported())  # nothing of the duplicates was imported


def test_denying_one_of_two_duplicates_by_distribution_lets_the_other_load(site: Site) -> None:
    site.add("loopai-alpha", entry_points={"loopai.validators": {"shared": ":Good"}}, code=GOOD_VALIDATOR)
    beta = site.add("loopai-beta", entry_points={"loopai.validators": {"shared": ":Good"}}, code=GOOD_VALIDATOR)

    host = site.host(env={"LOOPAI_DISABLE_PLUGINS": "loopai-alpha:shared"})

    records = {r.distribution: r for r in site.mine(host.discovered)}
    assert records["loopai-alpha"].status == "disabled"
    assert records["loopai-beta"].status == "ok" and records["loopai-beta"].loaded
    assert type(host.registry.resolve(ValidatorPlugin, "shared")).__module__ == beta.module
    assert site.own_problems(host.problems) == []


def test_host_from_config_discovers_installed_plugins(site: Site) -> None:
    site.add("loopai-good", entry_points={"loopai.validators": {"good": ":Good"}}, code=GOOD_VALIDATOR)
    path = site.config("[plugins.validators.good]\npriority = 3\n")

    host = loopai.Host.from_config(path, environ=site.environ, paths=site.paths)

    assert host.registry.resolve(ValidatorPlugin, "good").priority == 3
    assert [r.name for r in site.mine(host.discovered)] == ["good"]


# -- edge cases of real-world packaging ------------------------------------------------


def test_an_entry_point_with_extras_and_a_dotted_attribute_loads(site: Site) -> None:
    site.add(
        "loopai-nested",
        entry_points={"loopai.validators": {"nested": ":holder.Good [fancy]"}},
        code=GOOD_VALIDATOR + "\nclass holder:\n    Good = Good\n",
    )

    host = site.host()

    [record] = site.mine(host.discovered)
    assert record.status == "ok", record.reason
    assert host.registry.contains("validator", "nested")


def test_a_plugin_that_exits_at_import_is_left_out_like_any_import_error(site: Site) -> None:
    site.add(
        "loopai-exits",
        entry_points={"loopai.validators": {"exits": ":Good"}},
        code="import sys\nsys.exit('this plugin needs a GPU')\n",
    )
    site.add_good("loopai-good", "good")

    host = site.host()

    records = {r.name: r for r in site.mine(host.discovered)}
    assert records["exits"].status == "failed"
    assert "SystemExit: this plugin needs a GPU" in records["exits"].reason
    assert "reinstall or upgrade loopai-exits" in records["exits"].reason
    assert records["good"].loaded


def test_configured_enabled_and_priority_show_in_the_record_of_a_loaded_plugin(site: Site) -> None:
    site.add(
        "loopai-shy",
        entry_points={"loopai.validators": {"shy": ":Shy", "plain": ":Shy"}},
        code=GOOD_VALIDATOR + "\nclass Shy(Good):\n    enabled = False\n    priority = 3\n",
    )
    path = site.config("[plugins.validators.shy]\nenabled = true\npriority = 30\n")

    host = site.host(loopai.load_config(path))

    records = {r.name: r for r in site.mine(host.discovered)}
    assert (records["shy"].enabled, records["shy"].priority) == (True, 30)
    assert host.registry.resolve(ValidatorPlugin, "shy").enabled
    plain = records["plain"]
    assert (plain.status, plain.loaded, plain.enabled, plain.priority) == ("disabled", True, False, 3)
    assert plain.reason == (
        "off: the plugin turned itself off (enabled is False once constructed); "
        f"to turn it on: enabled = true under [plugins.validators.plain] in {path}"
    )
    assert plain.selected and plain.selected_by == "autoload"
    assert site.own_problems(host.problems) == []  # off is no problem


def test_deny_patterns_match_the_distribution_name_however_it_is_spelled(site: Site) -> None:
    site.add_good("Loopai_Alpha", "alpha")

    records = site.discover(env={"LOOPAI_DISABLE_PLUGINS": "loopai-alpha:*"})

    assert records["alpha"].status == "disabled"
    assert records["alpha"].reason == "denied by LOOPAI_DISABLE_PLUGINS (loopai-alpha:*)"


def test_a_plugin_whose_constructor_exits_is_left_out_and_the_others_load(site: Site) -> None:
    site.add(
        "loopai-quits",
        entry_points={"loopai.samplers": {"quits": ":Quits"}},
        code="""
        import sys

        import loopai

        class Quits(loopai.SamplerPlugin):
            def __init__(self, config=None):
                sys.exit("no licence key found")

            def should_sample(self, execution, context):
                raise AssertionError
        """,
    )
    site.add_good("loopai-good", "good")

    host = site.host()

    records = {r.name: r for r in site.mine(host.discovered)}
    assert records["quits"].status == "failed"
    assert "constructing " in records["quits"].reason
    assert ":Quits failed: SystemExit: no licence key found" in records["quits"].reason
    assert "LOOPAI_DISABLE_PLUGINS=loopai-quits:quits" in records["quits"].reason
    assert records["good"].loaded and host.registry.contains("validator", "good")
    assert len(site.own_problems(host.problems)) == 1


def test_a_keyboard_interrupt_in_a_constructor_still_stops_the_host(site: Site) -> None:
    site.add(
        "loopai-interrupted",
        entry_points={"loopai.validators": {"interrupted": ":Interrupted"}},
        code=GOOD_VALIDATOR + "\nclass Interrupted(Good):\n    def __init__(self, config=None):\n"
        "        raise KeyboardInterrupt\n",
    )

    with pytest.raises(KeyboardInterrupt):
        site.host()


# -- settings that a plugin cannot take ------------------------------------------------


def test_a_handler_that_is_idle_without_settings_is_disabled_and_says_why(site: Site) -> None:
    site.add_poster()

    host = site.host()

    [record] = site.mine(host.discovered)
    assert (record.status, record.loaded, record.enabled, record.priority) == ("disabled", True, False, 20)
    assert record.reason == (
        "idle: validate_configuration() refused its settings: url is not set; "
        "set them under [plugins.webhook_handlers.poster.configuration] in loopai.toml"
    )
    assert record.selected and record.selected_by == "autoload"
    assert site.own_problems(host.problems) == []  # an idle plugin is no problem


def test_a_configured_handler_whose_settings_are_refused_failed_and_one_with_settings_is_on(site: Site) -> None:
    site.add_poster("poster", "other")
    path = site.config(
        """
        [plugins.webhook_handlers.poster.configuration]
        url = ""
        [plugins.webhook_handlers.other.configuration]
        url = "https://example.org/hook"
        """
    )

    host = site.host(loopai.load_config(path))

    records = {r.name: r for r in site.mine(host.discovered)}
    assert records["poster"].status == "failed" and not records["poster"].loaded
    assert records["poster"].reason == (
        f"{path}: webhook_handlers.poster: webhook handler 'poster' refused its settings "
        "(validate_configuration() returned False): url is not set; fix them, or set enabled = false to leave it off"
    )
    assert not host.registry.contains("webhook-handler", "poster")
    [problem] = site.own_problems(host.problems)  # said once: the host does not repeat it
    assert "webhook-handler 'poster' (loopai-poster 1.0.0) is left out: " in problem
    assert (records["other"].status, records["other"].enabled, records["other"].reason) == ("ok", True, None)
    assert host.registry.resolve(WebhookHandlerPlugin, "other").enabled


def test_settings_for_a_module_plugin_are_a_warning_and_in_strict_mode_a_failure(site: Site) -> None:
    from loopai import PluginRegistry
    from loopai.discovery import load_discovered

    site.add(
        "loopai-hooks",
        entry_points={"loopai.webhook_handlers": {"recorder": "{module}.hooks"}},
        files={"{module}/hooks.py": HOOKS},
    )
    path = site.config('[plugins.webhook_handlers.recorder.configuration]\nchannel = "#ops"\n')
    config = loopai.load_config(path)
    expected = (
        f"{path}: webhook_handlers.recorder: settings are ignored: "
        f"{site.module_for('loopai-hooks')}.hooks (loopai-hooks 1.0.0) is a module of @hookimpl functions, "
        "and module plugins take no settings; remove its configuration table, or ask the maintainers of "
        "loopai-hooks for a plugin class with a Config model"
    )

    host = site.host(config)
    strict = site.discover(config)
    load_discovered(list(strict.values()), PluginRegistry(), config, strict=True)

    [record] = site.mine(host.discovered)
    assert (record.status, record.loaded, record.warnings) == ("ok", True, [expected])
    assert host.registry.contains("webhook-handler", "recorder")
    assert (strict["recorder"].status, strict["recorder"].reason) == ("failed", f"{expected} (strict mode)")
