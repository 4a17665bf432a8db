"""What the server refuses for a reason an operator fixes: one line naming the database, what was
refused and the GRANT to run (or what else to do), exit 2; never "a bug in loopai", never a traceback.
Also: every URL form libpq reads (a Unix socket, the user and password in the query) works."""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = pytest.mark.postgres
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def role(postgres_server):
    """A login role of its own (roles are the server's, not one database's): its name and password."""
    name, password = f"odd_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    return name, password


def _as(url, name, password):
    """``url`` (the superuser's) with another role and password."""
    host_and_database = url.split("@", 1)[1]
    return f"postgresql://{name}:{password}@{host_and_database}"


def _one_line_of_advice(done, secret):
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "bug in loopai" not in done.stderr and "unexpected" not in done.stderr
    assert secret not in done.stdout + done.stderr
    return lines[0]


def test_a_role_without_privileges_on_the_tables_is_told_the_grant_to_run(pg, loopai, postgres_url, role):
    name, password = role
    loopai.env["LOOPAI_STATE_URL"] = _as(postgres_url, name, password)
    (loopai.workdir / "in.jsonl").write_text(pg.lines([pg.record(1)]), encoding="utf-8")

    run = loopai.run("run", "in.jsonl", *pg.RUN)
    status = loopai.run("db", "status")
    listing = loopai.run("events", "list")

    for done in (run, status, listing):
        line = _one_line_of_advice(done, password)
        assert f"postgresql://{name}:***@127.0.0.1" in line
        assert "refused reading the schema version: permission denied for table loopai_schema_version" in line
        assert "run loopai as the role that ran loopai db upgrade" in line
        assert (
            "GRANT SELECT, INSERT, UPDATE, DELETE ON loopai_schema_version, loopai_task_statistics, "
            f"loopai_task_windows, loopai_outbox_events, loopai_outbox_deliveries TO {name}"
        ) in line
    assert run.stdout == ""


def test_the_grant_it_names_is_the_one_the_processes_need(pg, loopai, postgres_url, role):
    name, password = role
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON loopai_schema_version, loopai_task_statistics, "
            f"loopai_task_windows, loopai_outbox_events, loopai_outbox_deliveries TO {name}"
        )
    loopai.env["LOOPAI_STATE_URL"] = _as(postgres_url, name, password)
    (loopai.workdir / "in.jsonl").write_text(pg.lines([pg.record(1)]), encoding="utf-8")

    done = loopai.run("run", "in.jsonl", *pg.RUN)

    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_an_upgrade_without_create_on_the_schema_names_the_grant(loopai, postgres_server, role):
    """PostgreSQL 15 gives CREATE on schema public to its owner only."""
    name, password = role
    url = postgres_server.create_database(f"nocreate_{uuid.uuid4().hex[:8]}")
    loopai.env["LOOPAI_STATE_URL"] = _as(url, name, password)

    refused = loopai.run("db", "upgrade")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {name}")
    upgraded = loopai.run("db", "upgrade")

    line = _one_line_of_advice(refused, password)
    assert line.startswith(f"loopai db upgrade: state database postgresql://{name}:***@127.0.0.1")
    assert "refused the upgrade (creating loopai_schema_version): permission denied for schema public" in line
    assert f"GRANT USAGE, CREATE ON SCHEMA public TO {name}" in line
    assert upgraded.returncode == 0, upgraded.stderr
    assert "applied 0001 task_state" in upgraded.stdout


def test_a_table_of_another_application_is_named_with_the_way_out(loopai, postgres_server):
    url = postgres_server.create_database(f"taken_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE loopai_task_statistics (their_column text)")
    loopai.env["LOOPAI_STATE_URL"] = url

    refused = loopai.run("db", "upgrade")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA loopai")  # the way out the message gives
    loopai.env["LOOPAI_STATE_URL"] = f"{url}?options=-csearch_path%3Dloopai"
    upgraded = loopai.run("db", "upgrade")

    line = _one_line_of_advice(refused, postgres_server.password)
    assert "refused the upgrade (migration 0001 task_state)" in line
    assert 'relation "loopai_task_statistics" already exists' in line
    assert "it belongs to another application" in line
    assert "point [state] url or LOOPAI_STATE_URL at another database, or at a schema of loopai's own" in line
    assert "options=-csearch_path%3Dloopai" in line
    assert upgraded.returncode == 0, upgraded.stderr
    with psycopg.connect(url) as conn:
        theirs = conn.execute("SELECT count(*) FROM public.loopai_task_statistics").fetchone()
        ours = conn.execute("SELECT max(version) FROM loopai.loopai_schema_version").fetchone()
    assert theirs == (0,) and ours == (2,)  # theirs untouched, ours beside it


def test_a_search_path_that_names_no_schema_says_to_create_it(loopai, postgres_url, postgres_server):
    loopai.env["LOOPAI_STATE_URL"] = f"{postgres_url}?options=-csearch_path%3Dnowhere"

    refused = loopai.run("db", "upgrade")

    line = _one_line_of_advice(refused, postgres_server.password)
    assert "no schema has been selected to create in" in line
    assert "CREATE SCHEMA name AUTHORIZATION loopai" in line


def test_a_unix_socket_url_with_an_empty_host_works(loopai, postgres_url, postgres_server):
    database = postgres_url.rsplit("/", 1)[1]
    url = f"postgresql:///{database}?host={postgres_server.root}&port={postgres_server.port}&user=loopai"
    loopai.env["LOOPAI_STATE_URL"] = url

    done = loopai.run("db", "status", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["database"] == url


def test_user_and_password_in_the_query_work_and_the_password_stays_hidden(loopai, postgres_url, postgres_server):
    host, database = postgres_url.split("@", 1)[1].rsplit("/", 1)
    password = postgres_server.password
    loopai.env["LOOPAI_STATE_URL"] = f"postgresql://{host}/{database}?user=loopai&password={password}"

    done = loopai.run("db", "status", "--json")
    shown = loopai.run("config", "show")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["database"] == f"postgresql://{host}/{database}?user=loopai&password=***"
    assert json.loads(shown.stdout)["state"]["url"] == f"postgresql://{host}/{database}?user=loopai&password=***"
    for output in (done, shown):
        assert password not in output.stdout + output.stderr
