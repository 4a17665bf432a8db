"""The default outbox is each project's own: two projects that name no outbox never deliver each other's events.

Pending deliveries are matched to handlers by name, so with one outbox for every project on the machine,
project B's host delivered project A's pending events with B's handler of the same name (to B's webhook).
Each configuration file now gets ``<state>/loopai/outboxes/<folder>-<digest>.sqlite3``; without one the
default is ``<state>/loopai/outboxes/default.sqlite3``, so that ``<state>/loopai/outbox.sqlite3`` is only ever
the file earlier versions shared. Real processes, real files, a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import uuid
from pathlib import Path

import platformdirs
import pytest

import loopai
from loopai.delivery import SqliteOutbox, default_outbox_path, default_outboxes
from loopai.testing import make_event


@pytest.fixture(autouse=True)
def _no_outbox_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No outbox named anywhere (the conftest names one): the default decides. The state folder is
    ``tmp_path/state`` (``XDG_STATE_HOME``, from the conftest); no user configuration is found."""
    for name in list(os.environ):
        if name.startswith("LOOPAI_") and name != "LOOPAI_CACHE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def project(root: Path, url: str, secret: str, *, workers: bool = True) -> Path:
    """A project folder (a repository root: the configuration search stops there) whose loopai.toml
    names the http handler posting to ``url``, and no outbox."""
    (root / ".git").mkdir(parents=True)
    (root / "loopai.toml").write_text(
        "autoload = false\n\n"
        "[dispatch]\nmax_retries = 2\nretry_backoff = 0.01\n\n"
        "[plugins.webhook_handlers.http-webhook-handler.configuration]\n"
        f'url = "{url}"\nsecret = "{secret}"\ntimeout = 5\n\n'
        f"[delivery]\nworkers = {'true' if workers else 'false'}\n",
        encoding="utf-8",
    )
    return root


def records(folder: Path, count: int = 3) -> Path:
    """``count`` execution records of one task (each raises one event)."""
    task = str(uuid.uuid4())
    path = folder / "in.jsonl"
    lines = [
        json.dumps({"id": str(uuid.uuid4()), "program_id": str(uuid.uuid4()), "task_id": task, "status": "success"})
        for _ in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kept_in(stderr: str) -> Path:
    """The outbox a run's summary says its events are kept in."""
    found = re.search(r"events are kept in the outbox (\S+) \(", stderr)
    assert found, stderr
    return Path(found.group(1))


def listed(run_cli, folder: Path) -> list[dict]:
    done = run_cli("events", "list", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def where(run_cli, folder: Path, *args: str) -> str:
    done = run_cli("events", "where", *args, cwd=folder)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_projects_never_deliver_each_others_pending_events(tmp_path, receiver, run_cli, whsec):
    base = f"http://127.0.0.1:{receiver.port}"
    a = project(tmp_path / "a", f"{base}/a", whsec, workers=False)  # only records: its deliveries wait, due
    b = project(tmp_path / "b", f"{base}/b", whsec)

    ran_a = run_cli("run", str(records(a)), cwd=a)  # to standard output: no results file to keep it next to
    ran_b = run_cli("run", str(records(b)), cwd=b)  # B's workers deliver what B's outbox holds as due

    assert ran_a.returncode == 0 and ran_b.returncode == 0, ran_a.stderr + ran_b.stderr
    assert [r.path for r in receiver.requests] == ["/b"] * 3  # none of A's went to B's webhook
    outbox_a, outbox_b = kept_in(ran_a.stderr), kept_in(ran_b.stderr)
    assert outbox_a != outbox_b
    assert outbox_a.parent == outbox_b.parent == tmp_path / "state" / "loopai" / "outboxes"
    events_a, events_b = listed(run_cli, a), listed(run_cli, b)
    ids_a, ids_b = {row["event_id"] for row in events_a}, {row["event_id"] for row in events_b}
    assert len(ids_a) == len(ids_b) == 3 and not ids_a & ids_b  # each lists only its own
    assert {row["status"] for row in events_a} == {"pending"}
    assert {row["status"] for row in events_b} == {"delivered"}
    assert set(receiver.event_ids()) == ids_b

    delivered = run_cli("events", "deliver", cwd=a)  # A's own command finds A's outbox

    assert delivered.returncode == 0, delivered.stderr
    assert delivered.stdout == "http-webhook-handler: 3 delivered, 0 retried, 0 dead, 0 pending\n"
    assert {r.event_id for r in receiver.requests if r.path == "/a"} == ids_a
    assert len(receiver.requests) == 6


def test_a_project_finds_the_same_outbox_from_any_of_its_folders(tmp_path, receiver, run_cli, whsec):
    root = project(tmp_path / "shop", receiver.url, whsec)
    nested = root / "jobs" / "nightly"
    nested.mkdir(parents=True)
    expected = default_outbox_path({"XDG_STATE_HOME": str(tmp_path / "state")}, root / "loopai.toml")

    first = run_cli("run", str(records(root)), cwd=root)
    again = run_cli("run", str(records(nested)), cwd=nested)  # the configuration is found by the upward search

    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert kept_in(first.stderr) == kept_in(again.stderr) == expected
    assert expected.is_file() and expected.parent.name == "outboxes"
    assert re.fullmatch(r"shop-[0-9a-f]{12}\.sqlite3", expected.name)
    assert where(run_cli, nested) == f"{expected}\n"
    assert len(listed(run_cli, nested)) == 6  # both runs' events, from the subfolder
    assert not (tmp_path / "state" / "loopai" / "outbox.sqlite3").exists()  # the shared one is not touched
    assert not (expected.parent / "default.sqlite3").exists()  # nor the one without a configuration file


def test_without_a_configuration_file_the_default_is_its_own_file_too(tmp_path, receiver, run_cli, whsec):
    bare = tmp_path / "bare"
    (bare / ".git").mkdir(parents=True)
    default = tmp_path / "state" / "loopai" / "outboxes" / "default.sqlite3"
    assert where(run_cli, bare) == f"{default}\n"  # said before it exists, too

    ran = run_cli("run", str(records(bare)), cwd=bare)

    assert ran.returncode == 0, ran.stderr
    assert kept_in(ran.stderr) == default and default.is_file()
    assert not (tmp_path / "state" / "loopai" / "outbox.sqlite3").exists()  # only ever earlier versions' file
    one = project(tmp_path / "one", receiver.url, whsec)
    assert run_cli("run", str(records(one)), cwd=one).returncode == 0
    own = default_outbox_path({"XDG_STATE_HOME": str(tmp_path / "state")}, one / "loopai.toml")
    assert where(run_cli, bare, "--all") == f"{default}\n{own}\n"  # from anywhere: every default outbox


def test_deliveries_left_pending_without_a_configuration_file_are_not_taken_for_earlier_versions(
    tmp_path, receiver, run_cli, whsec
):
    # A no-configuration run whose deliveries wait (nothing delivers them: no handler of its own)...
    bare_default = default_outbox_path({"XDG_STATE_HOME": str(tmp_path / "state")})
    left = SqliteOutbox(bare_default)
    left.record(make_event(), ["http-webhook-handler"])
    left.close()
    root = project(tmp_path / "shop", receiver.url, whsec)

    ran = run_cli("run", str(records(root)), cwd=root)  # ...is no shared file of before to a project

    assert ran.returncode == 0, ran.stderr
    assert "still there" not in ran.stderr, ran.stderr
    with contextlib.closing(SqliteOutbox(bare_default)) as kept:
        assert len(kept.deliveries()) == 1  # still there, for `events deliver` without a config


def test_where_all_lists_the_file_of_earlier_versions_first_and_says_what_it_is(tmp_path, run_cli):
    state = tmp_path / "state" / "loopai"
    old = SqliteOutbox(state / "outbox.sqlite3")
    old.close()
    default = SqliteOutbox(default_outbox_path({"XDG_STATE_HOME": str(tmp_path / "state")}))
    default.close()

    done = run_cli("events", "where", "--all", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{state / 'outbox.sqlite3'}\n{state / 'outboxes' / 'default.sqlite3'}\n"
    assert done.stderr == f"{state / 'outbox.sqlite3'}: the default outbox of earlier versions, every project's\n"


def test_where_hides_a_database_password_and_connects_to_nothing(tmp_path, run_cli):
    done = run_cli(
        "events", "where", env={"LOOPAI_STATE_URL": "postgresql://loopai:s3cret@127.0.0.1:9/loopai"}, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "postgresql://loopai:***@127.0.0.1:9/loopai\n"


def test_a_library_host_uses_the_outbox_the_commands_find(tmp_path, receiver, run_cli, whsec, monkeypatch):
    root = project(tmp_path / "svc", receiver.url, whsec)
    monkeypatch.chdir(root)
    with loopai.Host.from_config() as host:  # found in the working folder, as loopai serve finds it
        assert host.outbox is not None
        used = host.outbox.path
    assert used == where(run_cli, root).strip()
    assert Path(used).parent == tmp_path / "state" / "loopai" / "outboxes"
    with loopai.Host(outbox=True, environ={"XDG_STATE_HOME": str(tmp_path / "state")}) as bare:
        assert bare.outbox is not None  # no configuration file: the default of its own
        assert bare.outbox.path == str(tmp_path / "state" / "loopai" / "outboxes" / "default.sqlite3")


def test_the_default_path_names_the_project_and_follows_the_state_folder(tmp_path, monkeypatch):
    folder = tmp_path / "my project (v2)"
    folder.mkdir()
    config = folder / "loopai.toml"
    config.write_text("", encoding="utf-8")
    digest = hashlib.sha256(os.fsencode(os.path.normcase(str(config.resolve())))).hexdigest()[:12]
    xdg = {"XDG_STATE_HOME": str(tmp_path / "state")}

    assert default_outbox_path(xdg, config) == tmp_path / "state/loopai/outboxes" / f"my_project__v2_-{digest}.sqlite3"
    monkeypatch.chdir(folder)
    assert default_outbox_path(xdg, "loopai.toml") == default_outbox_path(xdg, config)  # the resolved path counts
    (tmp_path / "link").symlink_to(folder)
    assert default_outbox_path(xdg, tmp_path / "link" / "loopai.toml") == default_outbox_path(xdg, config)
    other = tmp_path / "elsewhere" / "my project (v2)"
    other.mkdir(parents=True)
    assert default_outbox_path(xdg, other / "loopai.toml") != default_outbox_path(xdg, config)  # same name, apart
    assert default_outbox_path(xdg) == tmp_path / "state" / "loopai" / "outboxes" / "default.sqlite3"
    home = platformdirs.user_state_path("loopai", appauthor=False)
    assert default_outbox_path({}, config) == home / "outboxes" / f"my_project__v2_-{digest}.sqlite3"
    assert default_outbox_path({}) == home / "outboxes" / "default.sqlite3"
    assert default_outboxes(xdg) == []  # nothing emitted yet


def test_deliveries_left_pending_in_the_shared_outbox_of_before_are_said(tmp_path, receiver, run_cli, whsec):
    # Before each project had its own, every project's events went to the shared file: what is
    # pending there is delivered by no host now, so each run says so (with a configuration file or
    # without), with the commands that help.
    shared = tmp_path / "state" / "loopai" / "outbox.sqlite3"
    shared.parent.mkdir(parents=True)
    old = SqliteOutbox(shared)
    old.record(make_event(), ["http-webhook-handler"])
    old.record(make_event(), ["http-webhook-handler"])
    gone = make_event()
    old.record(gone, ["http-webhook-handler"])
    old.dead(str(gone.event_id), "http-webhook-handler", 4, "answered 400")
    old.close()
    root = project(tmp_path / "shop", receiver.url, whsec)

    ran = run_cli("run", str(records(root)), cwd=root)

    assert ran.returncode == 0, ran.stderr
    said = [line for line in ran.stderr.splitlines() if str(shared) in line and "still there" in line]
    assert len(said) == 1, ran.stderr
    assert "2 pending and 1 dead deliveries are still there" in said[0]
    assert "cannot tell which project emitted them" in said[0]
    assert f"loopai events list --outbox {shared}" in said[0]
    assert f"loopai events replay --all-dead --outbox {shared} --config FILE" in said[0]
    listed = run_cli("events", "list", cwd=root)  # the events commands on the default outbox say it too
    assert listed.returncode == 0 and "2 pending and 1 dead deliveries are still there" in listed.stderr
    everywhere = run_cli("events", "where", "--all", cwd=root)
    assert everywhere.returncode == 0 and "2 pending and 1 dead deliveries are still there" in everywhere.stderr
    named = run_cli("events", "list", "--outbox", str(shared), cwd=root)  # looking at it: nothing to warn of
    assert named.returncode == 0 and "still there" not in named.stderr, named.stderr
    assert str(kept_in(ran.stderr)) in said[0]  # this project's own is named
    assert len(receiver.requests) == 3  # this project's events only: the old ones stay where they are
    with contextlib.closing(SqliteOutbox(shared)) as kept:
        assert len(kept.deliveries()) == 3
    bare = tmp_path / "bare"
    (bare / ".git").mkdir(parents=True)
    without = run_cli("run", str(records(bare)), cwd=bare)
    assert without.returncode == 0, without.stderr
    assert "2 pending and 1 dead deliveries are still there" in without.stderr  # no default is the old file now
    assert f"the default outbox here is now {default_outbox_path({'XDG_STATE_HOME': str(tmp_path / 'state')})}" in (
        without.stderr
    )

    delivered = run_cli("events", "deliver", "--outbox", str(shared), cwd=root)  # as the warning says
    replayed = run_cli("events", "replay", "--all-dead", "--outbox", str(shared), cwd=root)

    assert delivered.returncode == 0, delivered.stderr
    assert replayed.returncode == 0, replayed.stderr
    again = run_cli("run", str(records(root)), cwd=root)
    assert again.returncode == 0 and "still there" not in again.stderr, again.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_the_default_outbox_and_the_folders_made_for_it_are_this_users_only(tmp_path):
    state = tmp_path / "state"
    previous = os.umask(0o022)  # the usual one: files 0644, folders 0755
    try:
        with loopai.Host(outbox=True, environ={"XDG_STATE_HOME": str(state)}) as host:
            host.emit(make_event())
            seen = {str(p.relative_to(state)): stat.S_IMODE(p.stat().st_mode) for p in sorted(state.rglob("*"))}
    finally:
        os.umask(previous)

    assert stat.S_IMODE(state.stat().st_mode) == 0o700  # missing: made as the XDG specification asks
    assert seen == {
        "loopai": 0o700,
        "loopai/outboxes": 0o700,
        "loopai/outboxes/default.sqlite3": 0o600,
        "loopai/outboxes/default.sqlite3-shm": 0o600,
        "loopai/outboxes/default.sqlite3-wal": 0o600,
    }


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_projects_default_outbox_made_by_a_run_is_this_users_only(tmp_path, receiver, run_cli, whsec):
    root = project(tmp_path / "shop", receiver.url, whsec)
    (tmp_path / "state").mkdir(mode=0o755)  # the state folder exists: it keeps its mode
    previous = os.umask(0o022)  # inherited by the run
    try:
        ran = run_cli("run", str(records(root)), cwd=root)
    finally:
        os.umask(previous)

    assert ran.returncode == 0, ran.stderr
    own = kept_in(ran.stderr)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o755
    assert [stat.S_IMODE(p.stat().st_mode) for p in (own.parent.parent, own.parent, own)] == [0o700, 0o700, 0o600]
