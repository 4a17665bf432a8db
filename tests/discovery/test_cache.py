"""The discovery cache: served when nothing changed, invalidated by installs and removals, optional."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loopai.discovery import read_inventory

if TYPE_CHECKING:
    from conftest import Site


def _age(directory: Path) -> None:
    """Date the directory an hour back, as if its last install was long ago.

    Installing then makes its mtime change even where the clock ticks coarsely.
    """
    past = time.time_ns() - 3600 * 10**9
    os.utime(directory, ns=(past, past))


def _names(site: Site, **environ: str) -> tuple[set[str], bool]:
    inventory = read_inventory(site.paths, environ={**site.environ, **environ})
    return {d.name for d in inventory.plugins if d.name in site.added}, inventory.from_cache


def test_a_second_scan_is_served_from_the_cache(site: Site) -> None:
    site.add_good("loopai-one", "one", requires=["loopai-core>=0.1"], summary="One plugin")
    _age(site.path)

    first = read_inventory(site.paths, environ=site.environ)
    second = read_inventory(site.paths, environ=site.environ)

    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.plugins == first.plugins
    assert second.versions == first.versions
    [one] = [d for d in second.plugins if d.name == "loopai-one"]
    assert (one.version, one.summary, one.requires) == ("1.0.0", "One plugin", ["loopai-core>=0.1"])
    assert [(ep.group, ep.name) for ep in one.entry_points] == [("loopai.validators", "one")]
    assert list(site.cache.glob("discovery-*.json"))


def test_installing_or_removing_a_distribution_invalidates_the_cache(site: Site) -> None:
    site.add_good("loopai-one", "one")
    _age(site.path)
    assert _names(site) == ({"loopai-one"}, False)
    assert _names(site) == ({"loopai-one"}, True)

    two = site.add_good("loopai-two", "two")
    assert _names(site) == ({"loopai-one", "loopai-two"}, False)
    _age(site.path)
    assert _names(site) == ({"loopai-one", "loopai-two"}, True)  # a new mtime, the same distributions

    site.remove(two)
    assert _names(site) == ({"loopai-one"}, False)


def test_files_written_in_a_path_directory_keep_the_cache(site: Site) -> None:
    """The working directory is first on the path of ``python -m loopai`` and of scripts, and
    results are written there: its mtime changes on every run, its distributions do not."""
    site.add_good("loopai-one", "one")
    _age(site.path)
    assert _names(site) == ({"loopai-one"}, False)

    (site.path / "results.jsonl").write_text("{}\n", encoding="utf-8")
    (site.path / "outbox.sqlite3-journal").write_text("", encoding="utf-8")

    assert _names(site) == ({"loopai-one"}, True)


def test_a_distribution_reinstalled_under_the_same_name_is_read_again(site: Site) -> None:
    """``pip install --force-reinstall`` or an editable install of an unchanged version: the same
    dist-info name, a new directory, and what it declares may have changed."""
    one = site.add_good("loopai-one", "one")
    _age(one.info)
    _age(site.path)
    assert _declared(site) == ({"one"}, False)

    site.remove(one)
    again = site.add_good("loopai-one", "uno")
    assert again.info.name == one.info.name

    assert _declared(site) == ({"uno"}, False)
    assert _declared(site) == ({"uno"}, True)


def test_installing_a_dependency_invalidates_the_cache(site: Site) -> None:
    site.add_good("loopai-picky", "picky", requires=["somedep>=1"])
    _age(site.path)
    assert site.discover()["picky"].status == "missing-dependency"

    site.add("somedep", "1.2.0")

    assert site.discover()["picky"].status == "ok"


def test_the_cache_folder_keeps_only_the_files_used_last(site: Site, tmp_path: Path) -> None:
    """Each search path has its own file (``python -m loopai`` in each folder adds one): the
    folder keeps the files written or read last instead of growing forever."""
    from loopai.discovery._cache import KEEP, _cache_file

    site.add_good("loopai-one", "one")
    _age(site.path)

    def paths(n: int) -> list[str]:
        return [*site.paths, str(tmp_path / f"folder-{n}")]

    ten_days_ago = time.time() - 10 * 86_400
    for n in range(KEEP + 10):  # written ten days ago, one a second
        assert not read_inventory(paths(n), environ=site.environ).from_cache
        os.utime(_cache_file(site.cache, paths(n)), (ten_days_ago + n, ten_days_ago + n))
    assert len(list(site.cache.glob("discovery-*.json"))) == KEEP
    assert not _cache_file(site.cache, paths(9)).exists()  # the ten oldest went

    assert read_inventory(paths(10), environ=site.environ).from_cache  # the oldest left, used today
    read_inventory(paths(1000), environ=site.environ)  # a new file: one more goes

    assert len(list(site.cache.glob("discovery-*.json"))) == KEEP
    assert _cache_file(site.cache, paths(10)).exists()
    assert not _cache_file(site.cache, paths(11)).exists()


def test_no_cache_is_read_or_written_with_loopai_no_cache(site: Site) -> None:
    site.add_good("loopai-one", "one")

    results = [_names(site, LOOPAI_NO_CACHE="1") for _ in range(2)]

    assert results == [({"loopai-one"}, False)] * 2
    assert not site.cache.exists()


def test_an_unwritable_cache_location_only_costs_a_rescan(site: Site) -> None:
    blocked = site.root / "not-a-directory"
    blocked.write_text("a regular file where the cache directory should be\n", encoding="utf-8")
    site.add_good("loopai-one", "one")

    results = [_names(site, LOOPAI_CACHE_DIR=str(blocked)) for _ in range(2)]

    assert results == [({"loopai-one"}, False)] * 2
    assert blocked.read_text(encoding="utf-8").startswith("a regular file")


def test_a_corrupt_cache_file_is_rescanned_and_replaced(site: Site) -> None:
    site.add_good("loopai-one", "one")
    _age(site.path)
    read_inventory(site.paths, environ=site.environ)
    [file] = site.cache.glob("discovery-*.json")

    file.write_text("{not json", encoding="utf-8")

    assert _names(site) == ({"loopai-one"}, False)
    assert _names(site) == ({"loopai-one"}, True)


# -- metadata rewritten in place ------------------------------------------------------


def _declared(site: Site) -> tuple[set[str], bool]:
    """Names of this test's declared plugins (read from metadata), and whether the cache served them."""
    inventory = read_inventory(site.paths, environ=site.environ)
    names = {ep.name for d in inventory.plugins if d.name in site.added for ep in d.entry_points}
    return names, inventory.from_cache


def _rewrite(file: Path, text: str) -> None:
    """Write ``file`` in place, as ``setup.py egg_info`` does: same inode, the directories' mtimes unchanged."""
    with open(file, "r+", encoding="utf-8") as handle:
        handle.truncate(0)
        handle.write(text)


def test_an_egg_info_rewritten_in_place_is_read_again(site: Site) -> None:
    info = site.path / "loopai_dev.egg-info"  # a develop install's: the version is inside
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: loopai-dev\nVersion: 0.1\n\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[console_scripts]\ndev = loopai_dev:main\n", encoding="utf-8")
    site.added.add("loopai-dev")
    _age(site.path)
    _age(info)
    assert _declared(site) == (set(), False)
    assert _declared(site) == (set(), True)
    stamp = (site.path.stat().st_mtime_ns, info.stat().st_mtime_ns)

    _rewrite(info / "entry_points.txt", "[loopai.validators]\nfirst = loopai_dev:First\n")
    assert _declared(site) == ({"first"}, False)
    assert _declared(site) == ({"first"}, True)
    _rewrite(info / "entry_points.txt", "[loopai.validators]\nfirst = loopai_dev:First\nsecond = loopai_dev:Second\n")
    assert _declared(site) == ({"first", "second"}, False)
    _rewrite(info / "PKG-INFO", "Metadata-Version: 1.1\nName: loopai-dev\nVersion: 0.2.0\n\n")
    assert site.discover()["first"].version == "0.2.0"
    assert (site.path.stat().st_mtime_ns, info.stat().st_mtime_ns) == stamp  # only the files changed

    (info / "requires.txt").write_text("loopai-core<0.1\n", encoding="utf-8")
    assert site.discover()["first"].status == "incompatible"


def test_a_dist_info_edited_in_place_by_hand_is_read_again_without_the_cache(site: Site) -> None:
    # Dist-infos are replaced whole when they change (installers, and the tools that unpack wheels
    # without one): an edit in place is not watched, whoever wrote the dist-info, and
    # LOOPAI_NO_CACHE=1 reads it again.
    dist = site.add_good("loopai-handmade", "first")
    (dist.info / "INSTALLER").unlink()
    _age(site.path)
    assert _declared(site) == ({"first"}, False)
    entry_points = (dist.info / "entry_points.txt").read_text(encoding="utf-8")

    _rewrite(dist.info / "entry_points.txt", entry_points + f"second = {dist.module}:Good\n")

    assert _declared(site) == ({"first"}, True)
    fresh = read_inventory(site.paths, environ={**site.environ, "LOOPAI_NO_CACHE": "1"})
    assert {ep.name for d in fresh.plugins if d.name in site.added for ep in d.entry_points} == {"first", "second"}
    assert not fresh.from_cache


def test_installed_plugins_cost_a_warm_discovery_no_file_checks(site: Site, monkeypatch) -> None:
    dists = [site.add_good(f"loopai-p{index}", f"p{index}") for index in range(3)]
    (dists[2].info / "INSTALLER").unlink()  # unpacked by a tool that is no installer
    _age(site.path)
    read_inventory(site.paths, environ=site.environ)
    stat = os.stat
    asked: list[str] = []
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: asked.append(str(path)) or stat(path, *a, **k))

    assert read_inventory(site.paths, environ=site.environ).from_cache

    assert not [path for path in asked if ".dist-info" in path]  # replaced whole when they change


# -- in fresh processes ----------------------------------------------------------------


def _fresh_process_scan(site: Site) -> bool:
    """``read_inventory(...).from_cache`` in a new interpreter, for the same paths as in this one."""
    code = "import sys; from loopai.discovery import read_inventory; print(read_inventory(sys.argv[1:]).from_cache)"
    env = {**os.environ, **site.environ}
    done = subprocess.run([sys.executable, "-c", code, *site.paths], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return {"True": True, "False": False}[done.stdout.strip()]


def test_a_scan_in_a_fresh_process_is_served_from_the_cache(site: Site) -> None:
    site.add_good("loopai-one", "one")
    _age(site.path)

    assert read_inventory(site.paths, environ=site.environ).from_cache is False
    assert _fresh_process_scan(site) is True

    site.add_good("loopai-two", "two")
    assert _fresh_process_scan(site) is False
    assert _names(site) == ({"loopai-one", "loopai-two"}, True)


def test_a_second_listing_in_a_fresh_process_reuses_the_cache_until_something_is_installed(site: Site) -> None:
    site.add_good("loopai-one", "one")
    _age(site.path)
    assert set(site.cli_json()) == {"one"}
    [file] = site.cache.glob("discovery-*.json")
    written = file.stat()

    assert set(site.cli_json()) == {"one"}
    again = file.stat()
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # read, not rewritten

    two = site.add_good("loopai-two", "two")
    assert set(site.cli_json()) == {"one", "two"}
    site.remove(two)
    assert set(site.cli_json()) == {"one"}


def test_the_command_line_works_when_the_cache_cannot_be_written(site: Site) -> None:
    blocked = site.root / "not-a-directory"
    blocked.write_text("", encoding="utf-8")
    site.add_good("loopai-one", "one")

    done = site.cli("list", "--json", env={"LOOPAI_CACHE_DIR": str(blocked)})

    assert done.returncode == 0, done.stderr
    assert [p["name"] for p in json.loads(done.stdout) if p["distribution"] == "loopai-one"] == ["one"]
    assert done.stderr == ""
