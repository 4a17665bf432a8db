"""One distribution name installed twice: a warning naming both copies and which is used; strict: an error."""

from __future__ import annotations

import logging

import pytest

import loopai

from .conftest import Site


def test_a_stale_copy_earlier_on_the_path_is_named_with_the_one_it_hides(site: Site, caplog) -> None:
    stale = site.root / "stale"
    site.add(
        "loopai-rules",
        "0.9.0",
        directory=stale,
        entry_points={"loopai.validators": {"rules": ":Good"}},
        code=Site.GOOD_VALIDATOR,
    )
    site.add_good("loopai-rules", "rules", "2.0.0")
    paths = [str(stale), *site.paths]

    with caplog.at_level(logging.WARNING, logger="loopai"):
        host = site.host(paths=paths)

    used = f"{stale}/loopai_rules-0.9.0.dist-info"
    hidden = f"{site.path}/loopai_rules-2.0.0.dist-info"
    message = (
        f"two distributions named loopai-rules are installed: loopai-rules 0.9.0 at {used} is used (it comes first "
        f"on sys.path) and hides loopai-rules 2.0.0 at {hidden}; uninstall one, or take its directory off sys.path "
        "(PYTHONPATH)"
    )
    assert host.problems == [message]
    assert message in caplog.text
    assert [(r.name, r.version) for r in site.mine(host.discovered)] == [("rules", "0.9.0")]


def test_an_empty_loopai_builtin_hiding_the_real_one_is_an_error_in_strict_mode(site: Site) -> None:
    # The fixture's own shadow copy, unallowed: what a stale loopai-builtin on PYTHONPATH does.
    env = {"LOOPAI_ALLOW_SHADOWED": ""}

    with pytest.raises(loopai.StartupError) as raised:
        site.host(env=env, strict=True)

    [problem] = raised.value.problems
    assert problem.startswith(
        f"two distributions named loopai-builtin are installed: loopai-builtin 0.0.0 at {site.shadow}"
    )
    assert "and hides loopai-builtin " in problem


def test_the_command_line_warns_and_strict_mode_fails(site: Site) -> None:
    listed = site.cli("list", env={"LOOPAI_ALLOW_SHADOWED": ""})
    checked = site.cli("check", "--strict", env={"LOOPAI_ALLOW_SHADOWED": ""})

    plain = site.cli("check", env={"LOOPAI_ALLOW_SHADOWED": ""})

    assert listed.returncode == 0 and plain.returncode == 0
    assert "warning: two distributions named loopai-builtin are installed" in listed.stderr
    assert "warning: two distributions named loopai-builtin are installed" in plain.stderr
    assert checked.returncode == 1
    assert "- two distributions named loopai-builtin are installed" in checked.stderr


def test_a_directory_on_the_path_twice_is_not_two_installs(site: Site) -> None:
    site.add_good("loopai-once", "once")

    host = site.host(paths=[str(site.path), *site.paths], strict=True)

    assert [r.name for r in site.mine(host.discovered)] == ["once"]
