"""Commands that only check plugins or the configuration never connect to the state database (docs/REPLICAS.md),
and ``loopai db`` reads only the ``[state]`` and ``[delivery]`` tables, as the ``loopai events`` commands do: a
``${VAR}`` elsewhere (a handler's secret) need not be set where the databases are managed."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> str:
    """``LOOPAI_STATE_URL`` set to a database where nothing listens (a port that was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://loopai:pw-not-shown@127.0.0.1:{port}/loopai"
    monkeypatch.setenv("LOOPAI_STATE_URL", url)
    return url


SECRET_UNSET = """
[plugins.webhook_handlers.http-webhook-handler.configuration]
url = "https://hooks.example.invalid/loopai"
secret = "${LOOPAI_WEBHOOK_SECRET}"
"""


@pytest.mark.parametrize("start", [[], ["--no-start"]])
def test_plugins_check_does_not_connect_to_the_state_database(project, cli, unreachable, start) -> None:
    checked = cli("plugins", "check", *start)

    assert checked.code == 0, checked.err
    assert checked.out.startswith("ok: ")
    assert "cannot be reached" not in checked.out + checked.err


def test_plugins_check_still_finds_a_plugin_that_cannot_start(project, cli, unreachable) -> None:
    project.write(
        "loopai.toml",
        """
        [plugins.validators.raises]
        factory = "loopai_cli_plugins:Raises"
        """,
    )

    checked = cli("plugins", "check")

    assert checked.code == 1
    assert "this validator cannot be built" in checked.err
    assert "cannot be reached" not in checked.err


def test_config_check_and_show_do_not_connect_and_check_is_one_error_for_a_state_url_of_another_kind(
    project, cli, unreachable, monkeypatch
) -> None:
    reachable_or_not = cli("config", "check")
    monkeypatch.setenv("LOOPAI_STATE_URL", "mysql://loopai@127.0.0.1/loopai")
    wrong = cli("config", "check")
    shown = cli("config", "show")

    assert reachable_or_not.code == 0, reachable_or_not.err
    assert wrong.code == 1
    assert wrong.err.splitlines() == [
        "LOOPAI_STATE_URL: must be a postgresql://user@host:5432/database URL (got 'mysql://loopai@127.0.0.1/loopai')",
        "1 error(s)",
    ]
    assert shown.code == 0, shown.err


def test_db_status_reads_only_the_state_and_delivery_tables(project, cli) -> None:
    project.write("loopai.toml", SECRET_UNSET)

    status = cli("db", "status")
    upgrade = cli("db", "upgrade")

    for done in (status, upgrade):
        assert (done.code, done.out) == (2, "")
        assert done.err.splitlines() == [
            "loopai db: no database configured: set [state] url in the configuration, or LOOPAI_STATE_URL "
            "(postgresql://user@host:5432/database); [delivery] outbox may name one too"
        ]


def test_db_status_names_an_unset_variable_of_the_state_table_and_reaches_for_a_configured_database(
    project, cli, monkeypatch
) -> None:
    pytest.importorskip("psycopg", reason="reaching for the database needs the [postgres] extra")
    project.write("loopai.toml", SECRET_UNSET + '\n[state]\nurl = "${LOOPAI_DB_URL}"\n')

    unset = cli("db", "status")
    monkeypatch.setenv("LOOPAI_DB_URL", "postgresql://loopai:pw-not-shown@127.0.0.1:1/loopai")
    away = cli("db", "status")

    assert unset.code == 2
    assert "LOOPAI_DB_URL is not set" in unset.err and "LOOPAI_WEBHOOK_SECRET" not in unset.err
    assert away.code == 2
    assert "loopai db status: state database postgresql://loopai:***@127.0.0.1:1/loopai cannot be reached" in away.err
    assert "pw-not-shown" not in away.err
