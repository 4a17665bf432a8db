"""``loopai db status`` and ``upgrade`` for real; schemas refused; secrets never printed."""

from __future__ import annotations

import json

import pytest

from loopai.database import known_version

pytestmark = pytest.mark.postgres
# The other Pythons run without the [postgres] extra: these tests are deselected there, not collected.
psycopg = pytest.importorskip("psycopg")


def test_status_and_upgrade_bring_a_new_database_to_the_known_version(pg, loopai, tmp_path, postgres_server):
    loopai.env["LOOPAI_STATE_URL"] = url = postgres_server.create_database("fresh")
    before = loopai.run("db", "status")
    upgraded = loopai.run("db", "upgrade")
    again = loopai.run("db", "upgrade")
    after = loopai.run("db", "status", "--json")

    assert before.returncode == 1, before.stderr
    assert "(state and outbox)" in before.stdout  # the outbox lives in the state's database by default
    assert "schema version: 0 (this loopai-core knows version 2)" in before.stdout
    assert "pending: 0001 task_state\npending: 0002 outbox" in before.stdout
    assert upgraded.returncode == 0 and "applied 0001 task_state\napplied 0002 outbox" in upgraded.stdout
    assert again.returncode == 0 and "nothing to do" in again.stdout and "applied" not in again.stdout
    status = json.loads(after.stdout)
    assert after.returncode == 0 and status["current"] and status["version"] == known_version() == 2
    assert status["uses"] == ["state", "outbox"] and status["also"] == []
    assert status["outbox"] == {"pending": 0, "dead": 0, "quarantined": 0}
    assert status["database"] == postgres_server.url("fresh", password=False).replace("loopai@", "loopai:***@")
    with psycopg.connect(url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'loopai_%'")}
    assert tables == {
        "loopai_schema_version",
        "loopai_task_statistics",
        "loopai_task_windows",
        "loopai_outbox_events",
        "loopai_outbox_deliveries",
    }
    for done in (before, upgraded, again, after):
        assert postgres_server.password not in done.stdout + done.stderr


def test_url_names_the_database_where_nothing_is_configured(loopai, postgres_server):
    """A deployment's migration step: ``loopai db upgrade --url "$DATABASE_URL"``, no configuration."""
    del loopai.env["LOOPAI_STATE_URL"]
    url = postgres_server.create_database("by_url")

    nothing = loopai.run("db", "status")
    upgraded = loopai.run("db", "upgrade", "--url", url)
    status = loopai.run("db", "status", "--url", url, "--json")
    down = loopai.run("db", "status", "--url", "postgresql://loopai@127.0.0.1:9/none")

    assert nothing.returncode == 2 and "no database configured" in nothing.stderr
    assert upgraded.returncode == 0 and "applied 0001 task_state\napplied 0002 outbox" in upgraded.stdout
    assert status.returncode == 0 and json.loads(status.stdout)["current"] is True
    assert down.returncode == 2 and "(check --url, and that the server is running" in down.stderr
    for done in (upgraded, status):
        assert postgres_server.password not in done.stdout + done.stderr


def test_url_works_where_the_configuration_names_a_variable_this_job_has_not(loopai, postgres_server):
    """The migration job has DATABASE_URL only; the service's loopai.toml beside it names ${DB_PASSWORD}."""
    del loopai.env["LOOPAI_STATE_URL"]
    (loopai.workdir / "loopai.toml").write_text(
        '[state]\nurl = "postgresql://app:${DB_PASSWORD}@db.internal/loopai"\n', encoding="utf-8"
    )
    url = postgres_server.create_database("by_url_beside_config")

    upgraded = loopai.run("db", "upgrade", "--url", url)
    configured = loopai.run("db", "status")

    assert upgraded.returncode == 0, upgraded.stderr
    assert "applied 0001 task_state" in upgraded.stdout
    assert configured.returncode == 2 and "DB_PASSWORD is not set" in configured.stderr  # without --url: as before


def test_status_of_a_database_that_is_down_prints_no_empty_text_and_says_it_in_json(loopai):
    down = "postgresql://loopai@127.0.0.1:9/none"

    text = loopai.run("db", "status", "--url", down)
    as_json = loopai.run("db", "status", "--url", down, "--json")

    assert (text.returncode, text.stdout) == (2, "")
    assert as_json.returncode == 2
    status = json.loads(as_json.stdout)
    assert status["database"] == down and status["uses"] == ["state", "outbox"] and status["also"] == []
    assert "cannot be reached" in status["error"] and status["error"] in as_json.stderr


def test_a_database_never_upgraded_is_refused_with_the_command_to_run(pg, loopai, postgres_server):
    loopai.env["LOOPAI_STATE_URL"] = postgres_server.create_database("not_upgraded")
    (loopai.workdir / "in.jsonl").write_text(pg.lines([pg.record(1)]), encoding="utf-8")

    done = loopai.run("run", "in.jsonl", *pg.RUN)

    assert done.returncode == 2
    assert "schema version 0, but this loopai-core needs version 2: run `loopai db upgrade`" in done.stderr
    assert done.stdout == ""


def test_a_newer_schema_is_refused_naming_both_versions(pg, loopai, postgres_url, postgres_server):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO loopai_schema_version (version, name) VALUES (3, 'from_the_future')")
    (loopai.workdir / "in.jsonl").write_text(pg.lines([pg.record(1)]), encoding="utf-8")

    run = loopai.run("run", "in.jsonl", *pg.RUN)
    upgrade = loopai.run("db", "upgrade")
    status = loopai.run("db", "status")

    for refused in (run, upgrade):
        assert refused.returncode == 2
        assert "schema version 3 is newer than version 2, the newest this loopai-core knows" in refused.stderr
        assert "upgrade loopai-core" in refused.stderr
    assert status.returncode == 1 and "newer than this loopai-core" in status.stdout
    for done in (run, upgrade, status):
        assert postgres_server.password not in done.stdout + done.stderr


def test_a_password_from_a_variable_in_the_configuration_is_never_printed(pg, loopai, postgres_server, postgres_url):
    del loopai.env["LOOPAI_STATE_URL"]
    loopai.env["STATE_DATABASE"] = postgres_url
    config = loopai.workdir / "loopai.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[state]\nurl = "${STATE_DATABASE}"\n', encoding="utf-8")
    (loopai.workdir / "in.jsonl").write_text(pg.lines([pg.record(1), pg.record(2, valid=False)]), encoding="utf-8")

    outputs = [
        loopai.run("run", "in.jsonl", *pg.RUN),
        loopai.run("db", "status"),
        loopai.run("config", "show"),
        loopai.run("config", "check"),
        loopai.run("run", "in.jsonl", "--json", *pg.RUN),
    ]

    assert [done.returncode for done in outputs] == [0, 0, 0, 0, 0], [done.stderr for done in outputs]
    assert "postgresql://loopai:***@127.0.0.1" in outputs[1].stdout
    for done in outputs:
        assert postgres_server.password not in done.stdout + done.stderr


def test_upgrades_started_at_once_apply_each_migration_once(loopai, postgres_server):
    url = loopai.env["LOOPAI_STATE_URL"] = postgres_server.create_database("raced")
    started = [loopai.start("db", "upgrade") for _ in range(3)]
    finished = []
    for process in started:
        out, err = process.communicate(timeout=60)
        finished.append((process.returncode, out, err))

    assert [code for code, _, _ in finished] == [0, 0, 0], [err for _, _, err in finished]
    assert sum(out.count("applied 0001 task_state") for _, out, _ in finished) == 1
    assert sum(out.count("applied 0002 outbox") for _, out, _ in finished) == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM loopai_schema_version ORDER BY 1").fetchall() == [(1,), (2,)]
