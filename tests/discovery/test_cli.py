"""``loopai plugins list / show / check`` in a fresh process, with good, broken and turned-off plugins installed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Dist, Site

SETTINGS = """
from pydantic import BaseModel, SecretStr

import loopai

class Threshold(loopai.ValidatorPlugin):
    version = "3.2.1"
    author = "Loopai tests"

    class Config(BaseModel):
        threshold: float = 0.5
        api_key: SecretStr

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True)
"""

SAMPLER = """
import loopai

class Always(loopai.SamplerPlugin):
    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=True)
"""

HANDLER = """
import loopai

@loopai.hookimpl
def handle_event(event, context):
    pass
"""

SECRET = "sekrit-value-4711"

GOOD_VALIDATOR = """
import loopai

class Good(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


@pytest.fixture
def installed(site: Site) -> dict[str, Dist]:
    """One plugin of each kind, one that fails to import, one incompatible, one missing a dependency."""
    return {
        "threshold": site.add(
            "loopai-threshold",
            "2.0.0",
            entry_points={"loopai.validators": {"threshold": ":Threshold"}},
            code=SETTINGS,
            summary="Checks a threshold",
            requires=["loopai-core>=0.1", 'somedep>=1; extra == "fancy"'],
        ),
        "always": site.add("loopai-always", entry_points={"loopai.samplers": {"always": ":Always"}}, code=SAMPLER),
        "hooks": site.add(
            "loopai-hooks",
            entry_points={"loopai.webhook_handlers": {"hooks": "{module}.hooks"}},
            files={"{module}/hooks.py": HANDLER},
        ),
        "broken": site.add(
            "loopai-broken",
            "0.2.0",
            entry_points={"loopai.validators": {"broken": ":Broken"}},
            code="import not_installed_module_xyz\n",
        ),
        "old": site.add_good("loopai-old", "old", "0.3.0", requires=["loopai-core<0.1"]),
        "needy": site.add_good("loopai-needy", "needy", requires=["not-installed-dep>=1"]),
    }


@pytest.fixture
def configured(site: Site, installed: dict[str, Dist]) -> dict[str, str]:
    """A loopai.toml in the working directory with a secret from the environment; the environment to run with."""
    site.config(
        """
        [plugins.validators.threshold]
        priority = 25
        configuration = { threshold = 0.7, api_key = "${THRESHOLD_KEY}" }
        """
    )
    return {"THRESHOLD_KEY": SECRET}


# -- list ------------------------------------------------------------------------------


def test_list_json_describes_every_plugin_and_imports_none(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    listed = site.cli_json(env=configured)

    assert set(listed) == {"threshold", "always", "hooks", "broken", "old", "needy"}
    for plugin in listed.values():
        assert {"name", "kind", "distribution", "version", "enabled", "priority", "status", "reason"} <= set(plugin)
    assert listed["threshold"] | {"entry_point": None} == {
        "name": "threshold",
        "kind": "validator",
        "distribution": "loopai-threshold",
        "version": "2.0.0",
        "enabled": True,
        "priority": 25,
        "status": "ok",
        "reason": None,
        "selected_by": "autoload; configured in loopai.toml",
        "entry_point": None,
        "group": "loopai.validators",
        "loaded": False,
        "warnings": [],
        "requires_plugins": [],
        "run_before": [],
        "run_after": [],
        "position": None,
        "placed_by": "",
    }
    assert listed["threshold"]["entry_point"] == f"threshold = {installed['threshold'].module}:Threshold"
    assert {name: p["kind"] for name, p in listed.items()} == {
        "threshold": "validator",
        "always": "sampler",
        "hooks": "webhook-handler",
        "broken": "validator",
        "old": "validator",
        "needy": "validator",
    }
    assert (listed["broken"]["status"], listed["broken"]["reason"]) == ("ok", None)  # not imported: not known
    assert listed["old"]["status"] == "incompatible" and listed["old"]["enabled"] is False
    assert "upgrade it: pip install -U loopai-old" in listed["old"]["reason"]
    assert listed["needy"]["status"] == "missing-dependency"
    assert "pip install 'not-installed-dep>=1'" in listed["needy"]["reason"]
    assert site.imported() == []


def test_list_hides_turned_off_plugins_unless_all_is_given(site: Site, installed: dict[str, Dist]) -> None:
    env = {"LOOPAI_DISABLE_PLUGINS": "always"}

    shown = site.cli_json(env=env)
    everything = site.cli_json("--all", env=env)

    assert "always" not in shown
    assert everything["always"]["status"] == "disabled"
    assert everything["always"]["enabled"] is False
    assert everything["always"]["reason"] == "denied by LOOPAI_DISABLE_PLUGINS (always)"
    assert site.imported() == []


def test_list_kind_shows_one_kind(site: Site, installed: dict[str, Dist]) -> None:
    assert set(site.cli_json("--kind", "webhook-handler")) == {"hooks"}
    assert set(site.cli_json("--kind", "sampler")) == {"always"}


def test_list_load_imports_the_selected_plugins_and_reports_failures(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    listed = site.cli_json("--load", "--all", env={**configured, "LOOPAI_DISABLE_PLUGINS": "always"})

    assert listed["broken"]["status"] == "failed"
    assert "ModuleNotFoundError: No module named 'not_installed_module_xyz'" in listed["broken"]["reason"]
    assert "'not_installed_module_xyz' it imports is not installed: install it" in listed["broken"]["reason"]
    assert listed["threshold"]["loaded"] is True and listed["threshold"]["priority"] == 25
    assert listed["hooks"]["loaded"] is True
    assert listed["always"]["status"] == "disabled"
    imported = site.imported()
    assert sorted(imported) == sorted(
        [
            installed["threshold"].module,
            installed["hooks"].module,
            f"{installed['hooks'].module}.hooks",
            installed["broken"].module,
        ]
    )
    for left_out in ("always", "old", "needy"):
        assert installed[left_out].module not in imported


def test_list_as_a_table_says_why_each_plugin_is_on_or_off(site: Site, installed: dict[str, Dist]) -> None:
    done = site.cli("list", "--all", "--disable-plugins", "always")

    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert lines["NAME"].split() == ["NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS", "PRIORITY", "WHY"]
    assert "loopai-threshold  2.0.0" in lines["threshold"] and lines["threshold"].endswith("autoload")
    assert "disabled" in lines["always"] and lines["always"].endswith("denied by --disable-plugins (always)")
    assert "incompatible" in lines["old"] and "upgrade it: pip install -U loopai-old" in lines["old"]
    assert lines["threshold"].split()[5] == "-"  # not known before loading, and not configured
    assert lines["note:"].startswith("note: nothing was loaded: PRIORITY - is not known unless configured")
    assert "--load tells both" in lines["note:"]
    assert site.imported() == []


def test_list_table_shows_a_configured_priority_and_no_note_with_load(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    listed = site.cli("list", env=configured)
    loaded = site.cli("list", "--load", "--plugins", "threshold,always", env=configured)

    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()}
    assert rows["threshold"][5] == "25" and rows["always"][5] == "-"
    rows = {line.split()[0]: line.split() for line in loaded.stdout.splitlines()}
    assert rows["threshold"][5] == "25" and rows["always"][5] == "0"
    assert "note:" not in rows


def test_list_load_strict_exits_1_listing_every_problem_after_the_listing(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    done = site.cli("list", "--load", "--strict", env=configured)

    assert done.returncode == 1
    assert "threshold" in done.stdout and "broken" in done.stdout
    problems = [line for line in done.stderr.splitlines() if line.startswith("- ")]
    assert len(problems) == 3
    for name, dist in (("broken", "loopai-broken 0.2.0"), ("old", "loopai-old 0.3.0"), ("needy", "loopai-needy 1.0.0")):
        assert any(f"'{name}' ({dist})" in p for p in problems), done.stderr
    assert "Traceback" not in done.stderr


# -- show ------------------------------------------------------------------------------


def test_show_prints_metadata_checks_redacted_settings_and_why_it_is_on(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    done = site.cli("show", "threshold", env=configured)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "threshold  (validator)" in out
    assert "distribution:  loopai-threshold 2.0.0" in out
    assert "summary:       Checks a threshold" in out
    assert f"entry point:   [loopai.validators] threshold = {installed['threshold'].module}:Threshold" in out
    assert f"installed at:  {installed['threshold'].info}" in out
    assert "status:        ok" in out
    assert "selection:     on: autoload; configured in loopai.toml" in out
    assert "[ok] loopai-core>=0.1: 0.1.0 is installed" in out
    assert "somedep" not in out  # only for the "fancy" extra
    assert "priority:      25" in out
    assert "version:       3.2.1  author: Loopai tests" in out
    settings = json.loads(out.split("settings:", 1)[1].strip().splitlines()[0])
    assert settings == {"api_key": "**********", "threshold": 0.7}
    assert SECRET not in out and SECRET not in done.stderr


def test_show_explains_why_a_plugin_is_off_without_importing_it(site: Site, installed: dict[str, Dist]) -> None:
    site.config('deny = ["loopai-old:*"]\n[plugins.validators.old]\nconfiguration = { token = "abc-secret" }\n')

    done = site.cli("show", "old")

    assert done.returncode == 0, done.stderr
    assert "status:        disabled: denied by deny in loopai.toml (loopai-old:*)" in done.stdout
    assert "selection:     off: denied by deny in loopai.toml (loopai-old:*)" in done.stdout
    assert "[FAIL] loopai-old 0.3.0 requires loopai-core<0.1, but 0.1.0 is installed" in done.stdout
    assert '{"token": "**********"} (not loaded: text values hidden)' in done.stdout
    assert "abc-secret" not in done.stdout
    assert installed["old"].module not in site.imported()


def test_show_reports_a_broken_plugin_and_an_unknown_name(site: Site, installed: dict[str, Dist]) -> None:
    broken = site.cli("show", "broken")
    unknown = site.cli("show", "no-such-plugin")

    assert broken.returncode == 0, broken.stderr
    assert "status:        failed: importing" in broken.stdout
    assert "No module named 'not_installed_module_xyz'" in broken.stdout
    assert unknown.returncode == 2
    assert "no installed plugin is named 'no-such-plugin' (see: loopai plugins list --all)" in unknown.stderr


# -- check -----------------------------------------------------------------------------


def test_check_exits_0_when_every_selected_plugin_loads(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    done = site.cli("check", "--disable-plugins", "broken,old,needy", env=configured)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ")
    assert "3 turned off" in done.stdout
    assert installed["old"].module not in site.imported()


@pytest.mark.parametrize("strict", [(), ("--strict",)], ids=["plain", "strict"])
def test_check_exits_1_listing_every_problem(
    site: Site, installed: dict[str, Dist], configured: dict[str, str], strict: tuple[str, ...]
) -> None:
    done = site.cli("check", *strict, env={**configured, "LOOPAI_STRICT_PLUGINS": "1"})

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("- ")]
    assert len(problems) == 3, done.stderr
    assert any(
        "'broken' (loopai-broken 0.2.0) is left out: " in p and "among loopai-broken's dependencies" in p
        for p in problems
    )
    assert any(
        "'old' (loopai-old 0.3.0) is left out: it does not fit the installed loopai-core" in p
        and "pip install -U loopai-old" in p
        for p in problems
    )
    assert any("'needy' (loopai-needy 1.0.0) is left out: a requirement is missing" in p for p in problems)
    assert done.stderr.endswith("\n3 problem(s); 3 plugin(s) loaded, 0 turned off\n")  # the built-ins are hidden
    assert installed["broken"].module in site.imported()


def test_check_names_the_file_plugin_and_field_of_bad_settings(site: Site, installed: dict[str, Dist]) -> None:
    site.config('[plugins.validators.threshold.configuration]\nthreshold = "high"\n')

    done = site.cli("check", "--plugins", "threshold")

    assert done.returncode == 1
    assert "loopai.toml:2: validators.threshold.threshold: input should be a valid number" in done.stderr
    assert "loopai.toml:1: validators.threshold.api_key: is required" in done.stderr


# -- selection from the command line ---------------------------------------------------


def test_command_line_selection_flags(site: Site, installed: dict[str, Dist]) -> None:
    site.config("[plugins.samplers.always]\n")

    no_autoload = site.cli_json("--all", "--no-autoload")
    allowed = site.cli_json("--all", "--plugins", "thresh*,hooks")

    assert {n for n, p in no_autoload.items() if p["status"] != "disabled"} == {"always"}
    assert no_autoload["hooks"]["reason"] == "autoload is off (--no-autoload) and it is not named in loopai.toml"
    assert no_autoload["always"]["selected_by"] == "named in loopai.toml (autoload is off)"
    assert {n for n, p in allowed.items() if p["status"] != "disabled"} == {"threshold", "hooks"}
    assert allowed["threshold"]["selected_by"] == "allowed by --plugins (thresh*)"
    assert allowed["old"]["reason"] == "not in the allow list of --plugins (thresh*,hooks)"
    assert site.imported() == []


# -- what gets imported ----------------------------------------------------------------


def test_only_selected_compatible_plugins_are_ever_imported(site: Site) -> None:
    dists = {
        "chosen": site.add_good("loopai-chosen", "chosen"),
        "incompatible": site.add_good("loopai-incompatible", "incompatible", requires=["loopai-core<0.1"]),
        "missing": site.add_good("loopai-missing", "missing", requires=["not-installed-dep>=1"]),
        "denied": site.add_good("loopai-denied", "denied"),
        "stranger": site.add_good("loopai-stranger", "stranger"),
    }
    site.config("[plugins.validators.chosen]\n[plugins.validators.incompatible]\n[plugins.validators.denied]\n")
    allow = {"LOOPAI_PLUGINS": "chosen,incompatible,missing,denied", "LOOPAI_DISABLE_PLUGINS": "denied"}
    no_autoload = {"LOOPAI_DISABLE_PLUGIN_AUTOLOAD": "1", "LOOPAI_DISABLE_PLUGINS": "denied"}
    runs = [
        (("list",), allow, []),
        (("list", "--json", "--all"), allow, []),
        (("show", "stranger"), allow, []),
        (("show", "incompatible"), allow, []),
        (("list", "--json", "--load"), allow, ["chosen"]),
        (("check",), allow, ["chosen"]),
        (("check",), no_autoload, ["chosen"]),
        (("show", "chosen"), no_autoload, ["chosen"]),
    ]

    for args, env, expected in runs:
        site.marks.unlink(missing_ok=True)
        done = site.cli(*args, env=env)
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (args, done.stderr)
        assert site.imported() == [dists[name].module for name in expected], (args, env)


def test_show_never_prints_a_secret_whatever_its_setting_is_called(site: Site) -> None:
    code = SETTINGS.replace("api_key: SecretStr", "dsn: SecretStr\n        note: str = ''")
    site.add("loopai-db", entry_points={"loopai.validators": {"db": ":Threshold", "db-off": ":Threshold"}}, code=code)
    site.config(
        """
        deny = ["db-off"]
        [plugins.validators.db.configuration]
        dsn = "${DB_URL}"
        note = "plain words"
        [plugins.validators.db-off.configuration]
        dsn = "${DB_URL}"
        """
    )
    env = {"DB_URL": "postgres://admin:hunter2@db"}

    loaded = site.cli("show", "db", env=env)
    off = site.cli("show", "db-off", env=env)

    assert loaded.returncode == off.returncode == 0, loaded.stderr + off.stderr
    assert '"dsn": "**********"' in loaded.stdout and '"note": "plain words"' in loaded.stdout
    assert "status:        disabled" in off.stdout
    for done in (loaded, off):
        assert "hunter2" not in done.stdout + done.stderr


def test_plugins_without_a_command_lists(site: Site) -> None:
    site.add_good("loopai-one", "one")

    done = site.cli()

    assert done.returncode == 0, done.stderr
    assert "one" in done.stdout.split() and "loopai-one" in done.stdout.split()


# -- what the listing says before and after loading ------------------------------------


def test_list_load_and_show_say_why_a_loaded_plugin_is_off(site: Site) -> None:
    site.add_poster()
    why = (
        "idle: validate_configuration() refused its settings: url is not set; "
        "set them under [plugins.webhook_handlers.poster.configuration] in loopai.toml"
    )

    before = site.cli_json()["poster"]
    after = site.cli_json("--load")["poster"]  # off by itself, not by selection: shown without --all
    shown = site.cli("show", "poster")
    checked = site.cli("check")

    assert (before["status"], before["enabled"], before["priority"], before["reason"]) == ("ok", True, None, None)
    assert (after["status"], after["enabled"], after["priority"], after["loaded"]) == ("disabled", False, 20, True)
    assert (after["reason"], after["selected_by"]) == (why, "autoload")
    assert f"status:        disabled: {why}" in shown.stdout
    assert "selection:     on: autoload" in shown.stdout
    assert "priority:      20" in shown.stdout
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [
        "ok: 1 plugin(s) loaded and started, 1 turned off",
        f"  off: webhook-handler 'poster' (loopai-poster): {why}",
    ]


def test_a_plugin_that_exits_in_its_constructor_does_not_end_the_command(site: Site) -> None:
    site.add(
        "loopai-quits",
        entry_points={"loopai.validators": {"quits": ":Quits"}},
        code=GOOD_VALIDATOR
        + "\nclass Quits(Good):\n    def __init__(self, config=None):\n        raise SystemExit(0)\n",
    )
    site.add_good("loopai-fine", "fine")

    listed = site.cli_json("--load")
    checked = site.cli("check")

    assert listed["quits"]["status"] == "failed" and "SystemExit" in listed["quits"]["reason"]
    assert listed["fine"]["loaded"] is True
    assert checked.returncode == 1
    assert "'quits' (loopai-quits 1.0.0) is left out: constructing " in checked.stderr
    assert checked.stderr.endswith("1 problem(s); 1 plugin(s) loaded, 0 turned off\n")


def test_what_plugins_print_while_loading_goes_to_stderr(site: Site) -> None:
    code = 'print("hello from import")\n' + GOOD_VALIDATOR.replace(
        "class Good(loopai.ValidatorPlugin):",
        "class Good(loopai.ValidatorPlugin):\n    def __init__(self, config=None):\n"
        "        super().__init__(config)\n        print('hello from the constructor')\n",
    )
    site.add("loopai-chatty", entry_points={"loopai.validators": {"chatty": ":Good"}}, code=code)

    listed = site.cli("list", "--load", "--json")
    shown = site.cli("show", "chatty")

    assert listed.returncode == 0, listed.stderr
    assert [p["status"] for p in json.loads(listed.stdout) if p["name"] == "chatty"] == ["ok"]
    assert "hello from import" in listed.stderr and "hello from the constructor" in listed.stderr
    assert "hello" not in shown.stdout and "hello from import" in shown.stderr


# -- strict mode -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--strict",), {}), ((), {"LOOPAI_STRICT_PLUGINS": "1"})],
    ids=["flag", "environment"],
)
def test_list_strict_without_load_exits_1_for_problems_known_before_import(
    site: Site, installed: dict[str, Dist], args: tuple[str, ...], env: dict[str, str]
) -> None:
    done = site.cli("list", "--json", *args, env=env)

    assert done.returncode == 1
    listed = {p["name"]: p for p in json.loads(done.stdout)}  # the whole listing first, still JSON
    assert {"threshold", "old", "needy", "broken"} <= set(listed)
    problems = [line for line in done.stderr.splitlines() if line.startswith("- ")]
    assert len(problems) == 2, done.stderr
    assert any("'old' (loopai-old 0.3.0) is left out: it does not fit the installed loopai-core" in p for p in problems)
    assert any("'needy' (loopai-needy 1.0.0) is left out: a requirement is missing" in p for p in problems)
    assert done.stderr.endswith("2 problem(s) in strict mode\n")
    assert site.imported() == []


def test_strict_mode_follows_the_kind_filter(
    site: Site, installed: dict[str, Dist], configured: dict[str, str]
) -> None:
    site.config(
        """
        [plugins.validators.threshold]
        configuration = { threshold = 0.7, api_key = "${THRESHOLD_KEY}" }
        [plugins.validators.ghost]
        """
    )

    samplers = site.cli("list", "--load", "--strict", "--kind", "sampler", env=configured)
    handlers = site.cli("list", "--strict", "--kind", "webhook-handler", env=configured)
    validators = site.cli("list", "--load", "--strict", "--kind", "validator", env=configured)

    assert samplers.returncode == 0, samplers.stderr
    assert handlers.returncode == 0, handlers.stderr
    assert validators.returncode == 1
    problems = [line for line in validators.stderr.splitlines() if line.startswith("- ")]
    assert len(problems) == 4, validators.stderr
    assert any("loopai.toml:4: validators.ghost: no validator named 'ghost'" in p for p in problems)


def test_settings_for_a_module_plugin_are_shown_and_fail_check_only_in_strict_mode(
    site: Site, installed: dict[str, Dist]
) -> None:
    site.config('[plugins.webhook_handlers.hooks.configuration]\nchannel = "#ops"\n')
    only = ("--plugins", "hooks")

    plain = site.cli("check", *only)
    strict = site.cli("check", "--strict", *only)
    shown = site.cli("show", "hooks")

    assert plain.returncode == 0, plain.stderr
    assert "warning: loopai.toml:1: webhook_handlers.hooks: settings are ignored: " in plain.stderr
    assert "module plugins take no settings" in plain.stderr
    assert strict.returncode == 1
    assert "- webhook-handler 'hooks' (loopai-hooks 1.0.0) is left out: loopai.toml:1: webhook_handlers.hooks: " in (
        strict.stderr
    )
    assert "(strict mode)" in strict.stderr
    assert "warning:       loopai.toml:1: webhook_handlers.hooks: settings are ignored" in shown.stdout
    assert "status:        ok" in shown.stdout
