"""Choosing the PostgreSQL store, and what an operator sees when it cannot be used (no server needed)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys

import pytest

import loopai
from loopai.config import parse_config
from loopai.database import DatabaseUrl
from loopai.state import MemoryStateStore, PostgresStateStore

SECRET = "hunter2-s3cret"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_url_in_the_configuration_or_the_environment_puts_state_in_postgresql():
    config = parse_config({"state": {"url": f"postgresql://app:{SECRET}@db.internal/loopai", "unavailable_timeout": 5}})
    overridden = f"postgresql://other:{SECRET}@db2.internal:6543/loopai"

    configured = loopai.Host(config, environ={})
    from_environment = loopai.Host(config, environ={"LOOPAI_STATE_URL": overridden})
    embedded = loopai.Host(environ={})

    assert isinstance(configured.state, PostgresStateStore)
    assert configured.state.database.unavailable_timeout == 5
    assert repr(configured.state) == "PostgresStateStore('postgresql://app:***@db.internal/loopai')"
    assert repr(from_environment.state) == "PostgresStateStore('postgresql://other:***@db2.internal:6543/loopai')"
    assert isinstance(embedded.state, MemoryStateStore)
    for host in (configured, from_environment, embedded):
        host.close()  # never started: nothing connects


def test_a_url_that_is_not_postgresql_is_named_without_its_password():
    with pytest.raises(loopai.ConfigError) as raised:
        parse_config({"state": {"url": f"mysql://app:{SECRET}@db/loopai"}}, label="loopai.toml")

    assert "loopai.toml: state.url:" in str(raised.value)
    assert "postgresql://user@host:5432/database" in str(raised.value)
    assert SECRET not in str(raised.value)


def _env(pg, tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(LOOPAI_CACHE_DIR=str(tmp_path / "cache"), XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    (tmp_path / "in.jsonl").write_text(pg.lines([pg.record(1)]), encoding="utf-8")
    (tmp_path / "tasks.json").write_text("{}", encoding="utf-8")
    return env


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is None, reason="needs the [postgres] extra (psycopg)")
def test_a_database_down_at_start_is_exit_2_naming_it_without_its_password(pg, tmp_path):
    url = f"postgresql://app:{SECRET}@127.0.0.1:{_closed_port()}/loopai"
    env = _env(pg, tmp_path, LOOPAI_STATE_URL=url)

    done = subprocess.run(
        [sys.executable, "-m", "loopai", "run", "in.jsonl", *pg.RUN], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert url.replace(SECRET, "***") in done.stderr and "cannot be reached" in done.stderr
    assert done.stdout == ""
    assert SECRET not in done.stderr


_WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # as if loopai-core[postgres] were not installed
sys.modules["psycopg_pool"] = None
from loopai.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["run", "in.jsonl", "--tasks", "tasks.json"], ["db", "status"]])
def test_without_the_extra_a_url_says_how_to_install_it(pg, tmp_path, command):
    env = _env(pg, tmp_path, LOOPAI_STATE_URL=f"postgresql://app:{SECRET}@127.0.0.1:5432/loopai")

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PSYCOPG, *command], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert "pip install 'loopai-core[postgres]'" in done.stderr
    assert "postgresql://app:***@127.0.0.1:5432/loopai" in done.stderr
    assert SECRET not in done.stderr


@pytest.mark.parametrize(
    ("url", "shown", "password", "conninfo"),
    [
        (
            "postgresql://app:p%40ss%2Fw@db:5432/x",
            "postgresql://app:***@db:5432/x",
            "p@ss/w",
            "postgresql://app@db:5432/x",
        ),
        (
            "postgresql://app@db/x?password=s3cr3t&sslmode=require",
            "postgresql://app@db/x?password=***&sslmode=require",  # masked where it was written
            "s3cr3t",
            "postgresql://app@db/x?sslmode=require",
        ),
        ("postgres://db,db2:5433/x?target_session_attrs=read-write", None, None, None),
        # An empty host (a Unix socket named in the query), and a bare URL: libpq's defaults.
        ("postgresql:///lp1?host=/tmp/sock&port=55432&user=loopai", None, None, None),
        ("postgresql://", None, None, None),
        ("postgresql://u@/db", None, None, None),
        # The user and the password in the query: no user invented; libpq reads a "+" as a "+".
        (
            "postgresql://127.0.0.1:5432/lp1?user=loopai&password=a+b%2Fc",
            "postgresql://127.0.0.1:5432/lp1?user=loopai&password=***",
            "a+b/c",
            "postgresql://127.0.0.1:5432/lp1?user=loopai",
        ),
        # Both: the query's wins, as in libpq.
        (
            "postgresql://app:1st@db/x?password=2nd",
            "postgresql://app:***@db/x?password=***",
            "2nd",
            "postgresql://app@db/x",
        ),
        ("postgresql://:s3cr3t@db/x", "postgresql://:***@db/x", "s3cr3t", "postgresql://db/x"),
        # The passphrase of the client's key is a password too; paths and other options are shown.
        (
            "postgresql://app@db/x?sslmode=verify-full&sslpassword=k3y-pass&passfile=/etc/pgpass",
            "postgresql://app@db/x?sslmode=verify-full&sslpassword=***&passfile=/etc/pgpass",
            None,
            "postgresql://app@db/x?sslmode=verify-full&passfile=/etc/pgpass",
        ),
    ],
)
def test_a_url_is_split_so_that_its_password_is_never_in_what_is_shown(url, shown, password, conninfo):
    parsed = DatabaseUrl(url)

    assert str(parsed) == parsed.shown == (shown or url) == loopai.redact(url)  # one way to show a URL
    assert repr(parsed) == f"DatabaseUrl({parsed.shown!r})"
    assert parsed.connect_arguments().get("password") == password
    if password is not None:
        assert password not in parsed.conninfo and "password" not in parsed.conninfo
        assert parsed.scrub(f"bad token near '{password}'") == "bad token near '***'"
    assert parsed.conninfo == (conninfo or url)


def test_the_ssl_key_passphrase_is_kept_apart_like_the_password_and_scrubbed():
    parsed = DatabaseUrl("postgresql://app:pw@db/x?ssl%70assword=k3y%2Fpass&sslmode=require")

    assert parsed.shown == "postgresql://app:***@db/x?ssl%70assword=***&sslmode=require"  # named as libpq reads it
    assert parsed.conninfo == "postgresql://app@db/x?sslmode=require"
    assert parsed.connect_arguments() == {"password": "pw", "sslpassword": "k3y/pass"}
    assert parsed.scrub("could not load key: k3y/pass, k3y%2Fpass") == "could not load key: ***, ***"


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is None, reason="needs the [postgres] extra (psycopg)")
@pytest.mark.parametrize(
    "command",
    [
        ["events", "list"],
        ["events", "list", "--outbox", "{url}"],
        ["events", "deliver"],
        ["db", "status"],
        ["run", "-v", "in.jsonl", "--plugins", "json-schema-validator,time-based-sampler", "--tasks", "tasks.json"],
    ],
)
def test_an_unreachable_database_is_named_without_its_password_or_ssl_passphrase(pg, tmp_path, command):
    url = f"postgresql://app:{SECRET}@127.0.0.1:{_closed_port()}/loopai?sslpassword=SSLPW-444&connect_timeout=5"
    env = _env(pg, tmp_path, LOOPAI_STATE_URL=url)

    done = subprocess.run(
        [sys.executable, "-m", "loopai", *(part.format(url=url) for part in command)], capture_output=True,
        text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    shown = url.replace(SECRET, "***").replace("SSLPW-444", "***")
    assert shown in done.stderr and "cannot be reached" in done.stderr
    assert "SSLPW-444" not in done.stdout + done.stderr and SECRET not in done.stdout + done.stderr


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is None, reason="needs the [postgres] extra (psycopg)")
def test_every_url_libpq_reads_reaches_libpq_as_it_was_written():
    from psycopg.conninfo import conninfo_to_dict

    for url in (
        "postgresql:///lp1?host=/tmp/sock&port=55432&user=loopai&password=pw",
        "postgresql://",
        "postgresql://app:p%40ss@db1:5432,db2/x?sslmode=require&options=-csearch_path%3Dloopai",
        "postgresql://app@db/x?sslpassword=k3y%26pass&sslmode=require",
    ):
        parsed = DatabaseUrl(url)
        assert {**conninfo_to_dict(parsed.conninfo), **parsed.connect_arguments()} == conninfo_to_dict(url)


def test_config_show_shows_the_state_url_in_effect(tmp_path):
    """``LOOPAI_STATE_URL`` replaces ``[state] url``, as every command reads them; shown without its password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPAI_")}
    env.update(LOOPAI_CACHE_DIR=str(tmp_path / "cache"), XDG_STATE_HOME=str(tmp_path / "state"))
    (tmp_path / "with").mkdir()
    (tmp_path / "with" / "loopai.toml").write_text(
        f'[state]\nurl = "postgresql://app:{SECRET}@db/lp1"\n', encoding="utf-8"
    )
    (tmp_path / "without").mkdir()
    overridden = f"postgresql://other:{SECRET}@db/lp9"

    def shown(folder, **extra):
        done = subprocess.run(
            [sys.executable, "-m", "loopai", "config", "show"], capture_output=True, text=True,
            env={**env, **extra}, cwd=tmp_path / folder, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
        return json.loads(done.stdout)["state"]["url"]

    assert shown("with") == "postgresql://app:***@db/lp1"
    assert shown("with", LOOPAI_STATE_URL=overridden) == "postgresql://other:***@db/lp9"
    assert shown("without", LOOPAI_STATE_URL=overridden) == "postgresql://other:***@db/lp9"
    assert shown("without") is None


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is None, reason="needs the [postgres] extra (psycopg)")
def test_an_outbox_in_the_state_database_names_where_that_is_configured(pg, tmp_path):
    env = _env(pg, tmp_path, LOOPAI_STATE_URL=f"postgresql://app:{SECRET}@127.0.0.1:{_closed_port()}/loopai")

    done = subprocess.run(
        [sys.executable, "-m", "loopai", "events", "list"], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert "outbox database postgresql://app:***@127.0.0.1" in done.stderr
    assert "(check LOOPAI_STATE_URL (by default the outbox is in the state's database)" in done.stderr
    assert "[delivery] outbox" not in done.stderr
    assert SECRET not in done.stderr


_NEVER_CLOSED = """
import loopai
from loopai.delivery import SqliteOutbox

class Failing(SqliteOutbox):
    def open_counts(self):
        raise RuntimeError("the outbox broke")

host = loopai.Host(outbox=Failing(":memory:"), environ={}, discover=False)  # closed by its finalizer, at exit
"""


def test_a_host_closed_at_exit_never_prints_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _NEVER_CLOSED], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )

    assert done.returncode == 0
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 1, done.stderr
