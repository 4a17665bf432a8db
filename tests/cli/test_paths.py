"""Where loopai writes: the outbox next to the results of a try-out, else the user's state folder (the project's own
file there, one per configuration file); the discovery cache in the user's cache folder; each as platformdirs has it
on this system, and each overridable."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest


@pytest.fixture
def bare(project) -> dict[str, str]:
    """The environment without the XDG folders and the cache override: platformdirs decides (under HOME)."""
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "LOOPAI_CACHE_DIR"):
        project.env.pop(name, None)
    return project.env


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_trying_the_example_keeps_the_outbox_next_to_the_results_and_writes_nothing_in_home(
    project, proc, bare
) -> None:
    records = project.records()
    home = Path(bare["HOME"])

    done = proc("run", str(records), "--output", "results.jsonl")

    assert done.code == 0, done.err
    assert (project.root / "results.outbox.sqlite3").is_file()
    assert "events are kept in the outbox results.outbox.sqlite3 (loopai events list --outbox " in done.err
    assert files_under(home) == []
    listed = proc("events", "list", "--outbox", "results.outbox.sqlite3", "--json")
    assert listed.code == 0 and isinstance(listed.json, list)


def test_without_an_output_file_the_outbox_is_in_the_users_state_folder(project, proc, bare, monkeypatch) -> None:
    monkeypatch.setenv("HOME", bare["HOME"])
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    expected = platformdirs.user_state_path("loopai", appauthor=False) / "outboxes" / "default.sqlite3"

    done = proc("run", str(project.records()), env={"LOOPAI_NO_CACHE": "1"})

    assert done.code == 0, done.err
    assert expected.is_file() and str(expected).startswith(bare["HOME"])
    assert f"events are kept in the outbox {expected}" in done.err


def test_a_projects_outbox_is_its_own_in_the_users_state_folder(project, proc, bare, monkeypatch) -> None:
    monkeypatch.setenv("HOME", bare["HOME"])
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    config = project.write("loopai.toml", "autoload = false\n")
    digest = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:12]
    state = platformdirs.user_state_path("loopai", appauthor=False)
    expected = state / "outboxes" / f"project-{digest}.sqlite3"

    done = proc("run", str(project.records()), env={"LOOPAI_NO_CACHE": "1"})
    where = proc("events", "where")

    assert done.code == 0, done.err
    assert expected.is_file() and str(expected).startswith(bare["HOME"])
    assert f"events are kept in the outbox {expected}" in done.err
    assert not (state / "outboxes" / "default.sqlite3").exists()  # the one used without a configuration file
    assert where.code == 0 and where.out == f"{expected}\n"


def test_the_state_and_cache_folders_follow_their_overrides(project, proc, bare, tmp_path: Path) -> None:
    records = str(project.records())

    xdg = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "c")}
    by_xdg = proc("run", records, env=xdg)
    by_loopai = proc(
        "run",
        records,
        env={"LOOPAI_OUTBOX": str(tmp_path / "box.sqlite3"), "LOOPAI_CACHE_DIR": str(tmp_path / "mine")},
    )
    configured = project.write("loopai.toml", '[delivery]\noutbox = "kept/events.sqlite3"\n')
    by_config = proc("run", records, "-o", "results.jsonl", env={"LOOPAI_NO_CACHE": "1"})

    assert by_xdg.code == by_loopai.code == by_config.code == 0
    assert (tmp_path / "state" / "loopai" / "outboxes" / "default.sqlite3").is_file()
    assert [p.name[:10] for p in (tmp_path / "c" / "loopai").iterdir()] == ["discovery-"]
    assert (tmp_path / "box.sqlite3").is_file()
    assert [p.name[:10] for p in (tmp_path / "mine").iterdir()] == ["discovery-"]
    assert (configured.parent / "kept" / "events.sqlite3").is_file()  # configured: not next to the results
    assert not (project.root / "results.outbox.sqlite3").exists()


def test_the_discovery_cache_is_in_the_virtual_environment_by_default(project, proc, bare, tmp_path: Path) -> None:
    """What it caches is the environment's distributions: it goes with the environment."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**bare, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # this environment's loopai
    done = subprocess.run(
        [str(python), "-m", "loopai", "plugins", "list"], cwd=project.root, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert [path.name[:10] for path in (venv / "var" / "cache" / "loopai").iterdir()] == ["discovery-"]
    assert files_under(Path(bare["HOME"])) == []


def test_outside_a_virtual_environment_the_cache_is_in_the_users_cache_folder(bare, monkeypatch) -> None:
    from loopai.discovery._cache import cache_dir

    monkeypatch.setenv("HOME", bare["HOME"])
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)  # the interpreter's own installation
    expected = platformdirs.user_cache_path("loopai", appauthor=False)

    assert cache_dir({"HOME": bare["HOME"]}) == expected
    assert str(expected).startswith(bare["HOME"])
