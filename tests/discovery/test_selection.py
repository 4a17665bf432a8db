"""Selection rules from the environment, the command line and the configuration, applied before import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import loopai
from loopai.discovery import Selection

if TYPE_CHECKING:
    from conftest import Dist, Site


@pytest.fixture
def three(site: Site) -> dict[str, Dist]:
    """Three installed validators: json-schema, json-lines (one distribution) and slack."""
    return {
        "json": site.add(
            "loopai-json",
            entry_points={"loopai.validators": {"json-schema": ":Good", "json-lines": ":Good"}},
            code=site.GOOD_VALIDATOR,
        ),
        "slack": site.add_good("loopai-slack", "slack"),
    }


def _state(records: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (r.status, r.selected_by) for name, r in records.items()}


def _config(site: Site, toml: str) -> loopai.LoopaiConfig:
    return loopai.load_config(site.config(toml))


def test_everything_installed_loads_by_default_and_says_so(site: Site, three: dict[str, Dist]) -> None:
    records = site.discover()

    assert _state(records) == {
        "json-lines": ("ok", "autoload"),
        "json-schema": ("ok", "autoload"),
        "slack": ("ok", "autoload"),
    }
    assert all(r.reason is None and r.enabled for r in records.values())


# -- autoload off ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "rule"),
    [
        pytest.param({"env": {"LOOPAI_DISABLE_PLUGIN_AUTOLOAD": "1"}}, "LOOPAI_DISABLE_PLUGIN_AUTOLOAD", id="env"),
        pytest.param({"toml": "autoload = false\n"}, "autoload = false in {path}", id="config"),
        pytest.param({"autoload": False}, "--no-autoload", id="command-line"),
    ],
)
def test_with_autoload_off_only_configured_plugins_load(
    site: Site, three: dict[str, Dist], how: dict[str, Any], rule: str
) -> None:
    path = site.config(how.get("toml", "") + "[plugins.validators.slack]\npriority = 5\n")
    config = loopai.load_config(path)
    rule = rule.format(path=path)
    selection = {"autoload": how["autoload"]} if "autoload" in how else {}

    records = site.discover(config, env=how.get("env"), **selection)

    assert _state(records) == {
        "json-lines": ("disabled", f"autoload is off ({rule}) and it is not named in {path}"),
        "json-schema": ("disabled", f"autoload is off ({rule}) and it is not named in {path}"),
        "slack": ("ok", f"named in {path} (autoload is off)"),
    }
    assert records["json-schema"].reason == records["json-schema"].selected_by
    assert not records["json-schema"].enabled


def test_autoload_off_imports_nothing_that_is_not_configured(site: Site, three: dict[str, Dist]) -> None:
    config = _config(site, "autoload = false\n[plugins.validators.slack]\n")

    host = site.host(config)

    assert site.imported() == [three["slack"].module]
    assert host.registry.contains("validator", "slack")
    assert not host.registry.contains("validator", "json-schema")
    assert site.own_problems(host.problems) == []


def test_autoload_on_in_the_environment_overrides_the_configuration(site: Site, three: dict[str, Dist]) -> None:
    config = _config(site, "autoload = false\n")

    records = site.discover(config, env={"LOOPAI_DISABLE_PLUGIN_AUTOLOAD": "0"})

    assert {r.status for r in records.values()} == {"ok"}


# -- allow lists -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "source"),
    [
        pytest.param({"env": {"LOOPAI_PLUGINS": "slack, json-s*"}}, "LOOPAI_PLUGINS", id="env"),
        pytest.param({"allow": ["slack", "json-s*"]}, "--plugins", id="command-line"),
        pytest.param({"toml": 'allow = ["slack", "json-s*"]\n'}, "allow in {path}", id="config"),
    ],
)
def test_an_allow_list_with_globs_decides_what_loads(
    site: Site, three: dict[str, Dist], how: dict[str, Any], source: str
) -> None:
    path = site.config(how.get("toml", ""))
    source = source.format(path=path)
    selection = {"allow": how["allow"]} if "allow" in how else {}

    records = site.discover(loopai.load_config(path), env=how.get("env"), **selection)

    assert _state(records) == {
        "json-lines": ("disabled", f"not in the allow list of {source} (slack,json-s*)"),
        "json-schema": ("ok", f"allowed by {source} (json-s*)"),
        "slack": ("ok", f"allowed by {source} (slack)"),
    }


def test_an_allow_list_matches_distribution_qualified_names(site: Site, three: dict[str, Dist]) -> None:
    records = site.discover(env={"LOOPAI_PLUGINS": "loopai-json:*"})

    assert {n: r.status for n, r in records.items()} == {"json-lines": "ok", "json-schema": "ok", "slack": "disabled"}


def test_the_command_line_allow_list_replaces_the_environment_one(site: Site, three: dict[str, Dist]) -> None:
    config = _config(site, 'allow = ["json-lines"]\n')

    records = site.discover(config, env={"LOOPAI_PLUGINS": "json-schema"}, allow=["slack"])

    assert {n for n, r in records.items() if r.status == "ok"} == {"slack"}


def test_plugins_outside_the_allow_list_are_not_imported(site: Site, three: dict[str, Dist]) -> None:
    host = site.host(env={"LOOPAI_PLUGINS": "slack"})

    assert site.imported() == [three["slack"].module]
    assert [r.name for r in site.mine(host.discovered) if r.loaded] == ["slack"]


# -- deny lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "source"),
    [
        pytest.param({"env": {"LOOPAI_DISABLE_PLUGINS": "json-*"}}, "LOOPAI_DISABLE_PLUGINS", id="env"),
        pytest.param({"deny": ["json-*"]}, "--disable-plugins", id="command-line"),
        pytest.param({"toml": 'deny = ["json-*"]\n'}, "deny in {path}", id="config"),
    ],
)
def test_a_deny_list_turns_plugins_off_and_wins_over_the_allow_list(
    site: Site, three: dict[str, Dist], how: dict[str, Any], source: str
) -> None:
    path = site.config(how.get("toml", ""))
    source = source.format(path=path)
    selection = {"deny": how["deny"]} if "deny" in how else {}
    env = {"LOOPAI_PLUGINS": "*", **how.get("env", {})}

    records = site.discover(loopai.load_config(path), env=env, **selection)

    assert _state(records) == {
        "json-lines": ("disabled", f"denied by {source} (json-*)"),
        "json-schema": ("disabled", f"denied by {source} (json-*)"),
        "slack": ("ok", "allowed by LOOPAI_PLUGINS (*)"),
    }


def test_deny_lists_from_every_source_add_up(site: Site, three: dict[str, Dist]) -> None:
    path = site.config('deny = ["slack"]\n')

    records = site.discover(
        loopai.load_config(path), env={"LOOPAI_DISABLE_PLUGINS": "json-lines"}, deny=["json-schema"]
    )

    assert _state(records) == {
        "json-lines": ("disabled", "denied by LOOPAI_DISABLE_PLUGINS (json-lines)"),
        "json-schema": ("disabled", "denied by --disable-plugins (json-schema)"),
        "slack": ("disabled", f"denied by deny in {path} (slack)"),
    }


def test_enabled_false_in_the_configuration_turns_one_plugin_off(site: Site, three: dict[str, Dist]) -> None:
    path = site.config("[plugins.validators.slack]\nenabled = false\n")

    host = site.host(loopai.load_config(path))

    records = {r.name: r for r in site.mine(host.discovered)}
    assert (records["slack"].status, records["slack"].reason) == ("disabled", f"enabled = false in {path}")
    assert records["json-schema"].selected_by == "autoload"
    assert three["slack"].module not in site.imported()
    assert site.own_problems(host.problems) == []  # turning a plugin off is not a problem


def test_a_configured_plugin_is_still_autoloaded_and_says_it_is_configured(site: Site, three: dict[str, Dist]) -> None:
    path = site.config("[plugins.validators.slack]\npriority = 9\n")

    records = site.discover(loopai.load_config(path))

    assert records["slack"].selected_by == f"autoload; configured in {path}"
    assert records["slack"].priority == 9


def test_denied_plugins_are_not_imported_and_are_no_problem_even_in_strict_mode(
    site: Site, three: dict[str, Dist]
) -> None:
    broken = site.add(
        "loopai-broken", entry_points={"loopai.validators": {"broken": ":X"}}, code="raise RuntimeError('boom')\n"
    )

    host = site.host(env={"LOOPAI_DISABLE_PLUGINS": "loopai-broken:*", "LOOPAI_STRICT_PLUGINS": "1"})

    assert site.own_problems(host.problems) == []
    assert broken.module not in site.imported()
    assert sorted(site.imported()) == sorted({three["json"].module, three["slack"].module})


# -- how distributions are named in patterns -------------------------------------------


@pytest.mark.parametrize(
    "pattern", ["loopai_json:*", "Loopai-JSON:*", "loopai.json:json-*", "loopai-json", "LOOPAI_JSON"]
)
def test_a_distribution_in_a_pattern_matches_however_either_is_spelled(
    site: Site, three: dict[str, Dist], pattern: str
) -> None:
    records = site.discover(env={"LOOPAI_DISABLE_PLUGINS": pattern})

    assert _state(records) == {
        "json-lines": ("disabled", f"denied by LOOPAI_DISABLE_PLUGINS ({pattern})"),
        "json-schema": ("disabled", f"denied by LOOPAI_DISABLE_PLUGINS ({pattern})"),
        "slack": ("ok", "autoload"),
    }


def test_a_bare_distribution_name_allows_all_its_plugins_but_a_bare_glob_matches_plugin_names_only(
    site: Site, three: dict[str, Dist]
) -> None:
    allowed = site.discover(env={"LOOPAI_PLUGINS": "loopai_json"})
    globbed = site.discover(env={"LOOPAI_DISABLE_PLUGINS": "loopai-*"})

    assert {n: r.status for n, r in allowed.items()} == {"json-lines": "ok", "json-schema": "ok", "slack": "disabled"}
    assert allowed["json-lines"].selected_by == "allowed by LOOPAI_PLUGINS (loopai_json)"
    assert {r.status for r in globbed.values()} == {"ok"}  # no plugin is named loopai-...


# -- patterns that match nothing -------------------------------------------------------


def test_an_allow_or_deny_pattern_that_matches_nothing_is_a_warning_with_the_closest_name(
    site: Site, three: dict[str, Dist]
) -> None:
    # A misspelt allow list turns every plugin off, a misspelt deny list leaves one on: said, not silent.
    path = site.config('deny = ["slak"]\n\n[plugins.validators.my-rules]\nfactory = "x:Y"\nenabled = false\n')
    env = {"LOOPAI_PLUGINS": "json-schema,jsn-lines,my-rules,loopai-slack:*"}

    host = site.host(loopai.load_config(path), env=env, selection=Selection.resolve(
        loopai.load_config(path), {**site.environ, **env}, deny=["loopai-jsno:*"]
    ))  # fmt: skip

    said = [p for p in host.problems if "matches no installed or configured plugin" in p]
    assert said == [
        "LOOPAI_PLUGINS: 'jsn-lines' matches no installed or configured plugin; did you mean 'json-lines'?",
        "--disable-plugins: 'loopai-jsno:*' matches no installed or configured plugin; did you mean 'loopai-json' "
        "or 'loopai-slack'?",
        f"deny in {path}: 'slak' matches no installed or configured plugin; did you mean 'slack'?",
    ]
    assert {e.name for e in host.registry.entries("validator")} == {"json-schema", "slack"}
    assert not any("my-rules" in problem for problem in host.problems)  # turned off: x:Y is never imported
