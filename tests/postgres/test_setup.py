"""Choosing the PostgreSQL store, and what an operator sees when it cannot be used (no server needed)."""

from __future__ import annotations

import importlib.util
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
    ("url", "shown", "password"),
    [
        ("postgresql://app:p%40ss%2Fw@db:5432/x", "postgresql://app:***@db:5432/x", "p@ss/w"),
        (
            "postgresql://app@db/x?password=s3cr3t&sslmode=require",
            "postgresql://app:***@db/x?sslmode=require",
            "s3cr3t",
        ),
        ("postgres://db,db2:5433/x?target_session_attrs=read-write", None, None),
    ],
)
def test_a_url_is_split_so_that_its_password_is_never_in_what_is_shown(url, shown, password):
    parsed = DatabaseUrl(url)

    assert str(parsed) == parsed.shown == (shown or url)
    assert repr(parsed) == f"DatabaseUrl({parsed.shown!r})"
    assert parsed.connect_arguments() == ({"password": password} if password else {})
    if password is not None:
        assert password not in parsed.conninfo and "password" not in parsed.conninfo
        assert parsed.scrub(f"bad token near '{password}'") == "bad token near '***'"
