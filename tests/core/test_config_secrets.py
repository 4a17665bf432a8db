"""Secrets stay out of settings errors and of what ``redact`` shows, whatever their field is called."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, model_validator

import loopai
from loopai import WebhookHandlerPlugin


class Poster(WebhookHandlerPlugin):
    """Its secret is a ``SecretStr`` under a name that does not look secret."""

    name = "poster"

    class Config(BaseModel):
        url: str = ""
        port: int = 443
        key_material: SecretStr | None = None
        password: SecretStr | None = None

        @model_validator(mode="after")
        def _password_needs_url(self) -> Poster.Config:
            if self.password is not None and not self.url:
                raise ValueError("url is required with a password")
            return self

    def handle_event(self, event, context):
        pass


def host_problems(tmp_path: Path, toml: str, **environ: str) -> list[str]:
    (tmp_path / "loopai.toml").write_text(textwrap.dedent(toml).lstrip(), encoding="utf-8")
    config = loopai.load_config(environ=environ, cwd=tmp_path)
    return loopai.Host(config, plugins=[Poster()]).problems


# -- settings errors -------------------------------------------------------------------


def test_the_value_of_a_secret_str_field_is_never_echoed(tmp_path: Path) -> None:
    problems = host_problems(
        tmp_path, '[plugins.webhook_handlers.poster]\nconfiguration = { url = "u", key_material = 31337 }\n'
    )

    assert problems == ["loopai.toml: webhook_handlers.poster.key_material: input should be a valid string"]


def test_a_model_level_error_shows_its_input_with_secrets_redacted(tmp_path: Path) -> None:
    problems = host_problems(
        tmp_path,
        """
        [plugins.webhook_handlers.poster.configuration]
        password = "hunter2-topsecret"
        key_material = "k3y-m4t3rial"
        """,
    )

    assert problems == [
        "loopai.toml: webhook_handlers.poster: value error, url is required with a password "
        "(got {'password': '**********', 'key_material': '**********'})"
    ]


def test_a_value_from_a_secret_looking_variable_is_never_echoed(tmp_path: Path) -> None:
    problems = host_problems(
        tmp_path,
        '[plugins.webhook_handlers.poster]\nconfiguration = { url = "u", port = "${DB_PASSWORD}" }\n',
        DB_PASSWORD="hunter2-topsecret",
    )

    assert problems == [
        "loopai.toml: webhook_handlers.poster.port: input should be a valid integer, "
        "unable to parse string as an integer (from ${DB_PASSWORD})"
    ]


def test_a_value_from_an_ordinary_variable_is_shown(tmp_path: Path) -> None:
    problems = host_problems(
        tmp_path, '[plugins.webhook_handlers.poster]\nconfiguration = { url = "u", port = "${PORT}" }\n', PORT="https"
    )

    assert problems == [
        "loopai.toml: webhook_handlers.poster.port: input should be a valid integer, "
        "unable to parse string as an integer (got 'https' from ${PORT})"
    ]


def test_a_configuration_error_hides_a_value_from_a_secret_looking_variable() -> None:
    with pytest.raises(loopai.ConfigError) as caught:
        loopai.parse_config(
            {"dispatch": {"max_retries": "${SIGNING_KEY}"}}, label="app.json", environ={"SIGNING_KEY": "s3"}
        )

    assert caught.value.problems == [
        "app.json: dispatch.max_retries: input should be a valid integer (from ${SIGNING_KEY})"
    ]


# -- redact ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@example.com/x", "https://user:***@example.com/x"),
        ("postgresql://app:s3cr3t@db:5432/loopai", "postgresql://app:***@db:5432/loopai"),
        ("https://user@example.com/x", "https://user@example.com/x"),
        (
            "https://example.com/hook?token=abc&page=2&X-Amz-Signature=f00&sig=1&apiKey=k#top",
            "https://example.com/hook?token=***&page=2&X-Amz-Signature=***&sig=***&apiKey=***#top",
        ),
        ("https://example.com/search?q=password", "https://example.com/search?q=password"),
        ("not a url: user:pw@example.com", "not a url: user:pw@example.com"),
        # libpq's secrets in the query (a name read as libpq decodes it); a path is not one.
        (
            "postgresql://app:pw@db/x?sslpassword=SSLPW&ssl%70assword=b&password=c&passfile=/p&sslmode=require",
            "postgresql://app:***@db/x?sslpassword=***&ssl%70assword=***&password=***&passfile=/p&sslmode=require",
        ),
        # libpq reads no fragment: a "#" is part of the value; a "?" or "#" in a password is masked whole.
        ("postgresql://db/x?sslpassword=a#b&port=5", "postgresql://db/x?sslpassword=***&port=5"),
        ("postgresql://app:p?w#d@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app:@db/x", "postgresql://app:***@db/x"),
    ],
)
def test_redact_hides_credentials_in_urls(url: str, shown: str) -> None:
    assert loopai.redact({"endpoint": url}) == {"endpoint": shown}


def test_redact_hides_secret_str_fields_of_a_known_settings_model() -> None:
    raw = {"url": "https://example.com", "key_material": "k3y", "KeyMaterial": "k3y", "password": ""}

    assert loopai.redact(raw, model=Poster.Config) == {
        "url": "https://example.com",
        "key_material": "**********",
        "KeyMaterial": "**********",
        "password": "",
    }
    assert loopai.redact(raw)["key_material"] == "k3y"  # without the model nothing says it is secret


def test_redact_hides_values_of_secret_looking_variables(tmp_path: Path) -> None:
    (tmp_path / "loopai.toml").write_text(
        '[plugins.webhook_handlers.poster]\nconfiguration = { url = "${SLACK_TOKEN}", channel = "${CHANNEL}" }\n',
        encoding="utf-8",
    )
    config = loopai.load_config(environ={"SLACK_TOKEN": "xoxb-1", "CHANNEL": "#alerts"}, cwd=tmp_path)

    shown = loopai.redact(config.model_dump())

    assert "xoxb-1" not in json.dumps(shown)
    assert shown["plugins"]["webhook_handlers"][0]["configuration"] == {"url": "**********", "channel": "#alerts"}
    assert config.plugins.webhook_handlers[0].configuration == {"url": "xoxb-1", "channel": "#alerts"}


class Logging(WebhookHandlerPlugin):
    """Logs the context it is handed, as a handler being debugged does."""

    name = "logging"

    def handle_event(self, event, context):
        logging.getLogger("test.handler").warning("delivering with %s (%r)", context, context)


def test_a_handler_that_logs_its_context_does_not_log_its_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "loopai.toml").write_text(
        textwrap.dedent(
            """
            [plugins.webhook_handlers.logging.configuration]
            secret = "whsec_do-not-log"
            api_token = "tok-do-not-log"
            url = "https://hooks:pw-do-not-log@example.test/in?sig=sig-do-not-log"
            retries = 4
            """
        ).lstrip(),
        encoding="utf-8",
    )
    config = loopai.load_config(environ={}, cwd=tmp_path)
    with loopai.Host(config, plugins=[Logging()], outbox=False, environ={}) as host:
        assert host.emit(loopai.WebhookEvent(event_type=loopai.WebhookEventType.PROGRAM_EXECUTION_COMPLETED)).ok
        context = host.registry.entry(WebhookHandlerPlugin, "logging").plugin.config
    logged = caplog.text
    assert "delivering with" in logged and "retries" in logged and "4" in logged
    assert "do-not-log" not in logged, logged
    assert logged.count("**********") >= 4  # secret and api_token, in str and repr
    assert "https://hooks:***@example.test/in?sig=***" in logged
    assert context["secret"] == "whsec_do-not-log"  # the handler still has its values
