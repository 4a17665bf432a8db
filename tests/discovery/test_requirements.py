"""Requirement checks, read from metadata before any plugin code is imported."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

import loopai

if TYPE_CHECKING:
    from conftest import Site


def test_a_plugin_for_an_older_core_is_incompatible_and_says_to_upgrade_it(site: Site) -> None:
    old = site.add_good("loopai-x", "plug", "0.3.0", requires=["loopai-core<0.1"])
    site.add_good("loopai-fine", "fine", requires=["loopai-core>=0.1,<1"])

    host = site.host()

    records = {r.name: r for r in site.mine(host.discovered)}
    assert records["plug"].status == "incompatible"
    assert records["plug"].reason == (
        f"loopai-x 0.3.0 requires loopai-core<0.1, but {loopai.__version__} is installed; "
        "upgrade it: pip install -U loopai-x"
    )
    assert records["fine"].status == "ok" and records["fine"].loaded
    assert site.own_problems(host.problems) == [
        "validator 'plug' (loopai-x 0.3.0) is left out: it does not fit the installed loopai-core: "
        f"{records['plug'].reason}"
    ]
    assert old.module not in site.imported()


def test_a_plugin_for_a_newer_core_says_to_upgrade_loopai_core(site: Site) -> None:
    new = site.add_good("loopai-future", "future", "2.0.0", requires=["loopai-core>=99"])

    record = site.discover()["future"]

    assert record.status == "incompatible"
    assert record.reason == (
        f"loopai-future 2.0.0 requires loopai-core>=99, but {loopai.__version__} is installed; "
        "upgrade loopai-core: pip install -U 'loopai-core>=99'"
    )
    assert [(c.requirement, c.ok, c.installed) for c in record.checks] == [
        ("loopai-core>=99", False, loopai.__version__)
    ]
    site.host()
    assert new.module not in site.imported()


def test_the_core_requirement_matches_whatever_the_spelling_of_its_name(site: Site) -> None:
    site.add_good("loopai-spelled", "spelled", requires=["Loopai_Core<0.1"])

    record = site.discover()["spelled"]

    assert record.status == "incompatible"
    assert "requires Loopai_Core<0.1, but" in record.reason


@pytest.mark.parametrize(
    ("requirement", "status"),
    [
        ("loopai-core>=0.9", "ok"),  # a pre-release of 1.0 is above 0.9
        ("loopai-core<1.0", "incompatible"),  # ...but not below 1.0 (PEP 440)
        ("loopai-core>=1.0", "incompatible"),
        ("loopai-core>=1.0.0rc1", "ok"),
        ("loopai-core~=1.0rc1", "ok"),
    ],
)
def test_a_pre_release_core_is_compared_as_pep_440_says(site: Site, requirement: str, status: str) -> None:
    core = site.root / "core"  # found first on the path: the installed core reads as 1.0.0rc1
    site.add("loopai-core", "1.0.0rc1", directory=core)
    site.add_good("loopai-pre", "pre", requires=[requirement])

    record = site.discover(paths=[str(core), *site.paths])["pre"]

    assert record.status == status, record.reason
    if status == "incompatible":
        assert f"loopai-pre 1.0.0 requires {requirement}, but 1.0.0rc1 is installed" in record.reason
    if requirement == "loopai-core>=1.0":
        assert "upgrade loopai-core: pip install -U 'loopai-core>=1.0'" in record.reason


def test_requirements_whose_markers_do_not_apply_are_ignored(site: Site) -> None:
    site.add_good(
        "loopai-marked",
        "marked",
        requires=[
            'somedep>=1; python_version < "3"',
            'somedep>=1; extra == "fancy"',
            'otherdep; sys_platform == "no-such-platform"',
            f'loopai-core>=0.1; python_version >= "{sys.version_info.major}"',
        ],
    )

    record = site.discover()["marked"]

    assert record.status == "ok", record.reason
    assert [c.requirement for c in record.checks] == ["loopai-core>=0.1"]
    assert len(record.requires) == 4


def test_a_requirement_that_is_not_installed_is_a_missing_dependency(site: Site) -> None:
    dist = site.add_good("loopai-needy", "needy", requires=["not-installed-dep>=1", "loopai-core>=0.1"])
    site.add_good("loopai-fine", "fine")

    host = site.host()

    records = {r.name: r for r in site.mine(host.discovered)}
    assert records["needy"].status == "missing-dependency"
    assert records["needy"].reason == (
        "loopai-needy 1.0.0 requires not-installed-dep>=1, which is not installed; "
        "install it: pip install 'not-installed-dep>=1'"
    )
    assert [c.ok for c in records["needy"].checks] == [False, True]
    assert records["fine"].loaded
    assert (
        len(site.own_problems(host.problems)) == 1
        and "'needy' (loopai-needy 1.0.0) is left out: a requirement is missing" in site.own_problems(host.problems)[0]
    )
    assert dist.module not in site.imported()


def test_an_installed_dependency_at_the_wrong_version_is_a_missing_dependency(site: Site) -> None:
    site.add("somedep", "0.5.0")
    site.add_good("loopai-picky", "picky", requires=["somedep[fast]>=1", "SomeDep!=0.4"])

    record = site.discover()["picky"]

    assert record.status == "missing-dependency"
    assert record.reason == (
        "loopai-picky 1.0.0 requires somedep[fast]>=1, but 0.5.0 is installed; fix it: pip install 'somedep[fast]>=1'"
    )
    assert [(c.requirement, c.ok, c.installed) for c in record.checks] == [
        ("somedep[fast]>=1", False, "0.5.0"),
        ("SomeDep!=0.4", True, "0.5.0"),
    ]


def test_an_earlier_path_entry_shadows_a_later_installation(site: Site) -> None:
    first = site.root / "first"
    site.add("somedep", "2.0.0", directory=first)
    site.add("somedep", "0.5.0")
    site.add_good("loopai-picky", "picky", requires=["somedep>=1"])

    assert site.discover(paths=[str(first), *site.paths])["picky"].status == "ok"
    assert site.discover()["picky"].status == "missing-dependency"


def test_an_incompatible_plugin_is_reported_before_its_missing_dependencies(site: Site) -> None:
    site.add_good("loopai-both", "both", requires=["loopai-core<0.1", "not-installed-dep"])

    record = site.discover()["both"]

    assert record.status == "incompatible"
    assert "loopai-core<0.1" in record.reason and "not-installed-dep" in record.reason


def test_an_invalid_requirement_line_is_reported_not_raised(site: Site) -> None:
    site.add_good("loopai-sloppy", "sloppy", requires=["this is not a requirement!!"])

    record = site.discover()["sloppy"]

    assert record.status == "missing-dependency"
    assert "loopai-sloppy 1.0.0 declares an invalid requirement 'this is not a requirement!!'" in record.reason


def test_unreadable_metadata_of_another_distribution_does_not_stop_discovery(site: Site) -> None:
    site.add_good("loopai-fine", "fine")
    odd = site.add("latin1-project", "1.0")
    (odd.info / "entry_points.txt").write_bytes(b"[console_scripts]\n# caf\xe9\nodd = odd:main\n")
    garbled = site.add_good("loopai-garbled", "garbled", summary="ok")
    (garbled.info / "METADATA").write_bytes(b"Name: loopai-garbled\nVersion: 1.0.0\nSummary: caf\xe9\n\n")

    records = site.discover()

    assert records["fine"].status == "ok"
    assert records["garbled"].status == "ok"
    assert records["garbled"].summary == "caf\ufffd"


@pytest.mark.parametrize("dirname", ["loopai_legacy-0.5-py3.11.egg-info", "loopai_legacy.egg-info"])
def test_a_legacy_egg_info_plugin_is_checked_from_pkg_info_and_requires_txt(site: Site, dirname: str) -> None:
    info = site.path / dirname
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: loopai-legacy\nVersion: 0.5\n\n", encoding="utf-8")
    (info / "requires.txt").write_text("loopai-core<0.1\n\n[fancy]\nnot-installed-dep\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[loopai.samplers]\nlegacy = loopai_legacy:Sampler\n", encoding="utf-8")
    site.added.add("loopai-legacy")

    record = site.discover()["legacy"]

    assert (record.distribution, record.version, record.kind) == ("loopai-legacy", "0.5", "sampler")
    assert record.status == "incompatible"
    assert record.reason.startswith("loopai-legacy 0.5 requires loopai-core<0.1, but ")
    assert "not-installed-dep" not in record.reason  # only for the "fancy" extra


def test_legacy_requires_txt_marker_sections_are_checked_where_they_apply(site: Site) -> None:
    info = site.path / "loopai_legacy-0.5.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: loopai-legacy\nVersion: 0.5\n\n", encoding="utf-8")
    (info / "requires.txt").write_text(
        "loopai-core>=0.1\n\n"
        '[:python_version >= "3"]\nnot-installed-dep>=1\n\n'
        '[:python_version < "3"]\nancient-dep\n\n'
        '[fancy:python_version >= "3"]\nfancy-dep\n',
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text("[loopai.samplers]\nlegacy = loopai_legacy:Sampler\n", encoding="utf-8")
    site.added.add("loopai-legacy")

    record = site.discover()["legacy"]

    assert record.requires == [
        "loopai-core>=0.1",
        'not-installed-dep>=1; python_version >= "3"',
        'ancient-dep; python_version < "3"',
        'fancy-dep; extra == "fancy" and (python_version >= "3")',
    ]
    assert record.status == "missing-dependency"
    assert record.reason == (
        "loopai-legacy 0.5 requires not-installed-dep>=1, which is not installed; "
        "install it: pip install 'not-installed-dep>=1'"
    )


def test_a_plugin_wanting_an_older_version_of_what_loopai_core_needs_is_told_to_upgrade_itself(site: Site) -> None:
    import importlib.metadata

    site.add("somedep", "2.0.0")
    site.add_good("loopai-dated", "dated", "0.2.0", requires=["pluggy<1.0", "pydantic-core<0.1", "somedep<1"])
    pluggy, core = importlib.metadata.version("pluggy"), importlib.metadata.version("pydantic-core")

    record = site.discover()["dated"]

    assert record.status == "missing-dependency"
    messages = [c.message for c in record.checks]
    assert messages[0] == (
        f"loopai-dated 0.2.0 requires pluggy<1.0, but {pluggy} is installed, and loopai-core needs pluggy>=1.5: "
        "do not downgrade pluggy; upgrade the plugin instead: pip install -U loopai-dated"
    )
    assert messages[1].startswith(
        f"loopai-dated 0.2.0 requires pydantic-core<0.1, but {core} is installed, and loopai-core needs pydantic-core"
    )
    assert "(for pydantic): do not downgrade pydantic-core; upgrade the plugin instead" in messages[1]
    # Not one of loopai-core's: installing the version asked for is the fix.
    assert (
        messages[2] == "loopai-dated 0.2.0 requires somedep<1, but 2.0.0 is installed; fix it: pip install 'somedep<1'"
    )
