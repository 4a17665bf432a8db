"""A PostgreSQL URL as loopai uses it: the passwords kept apart from what is printed or logged."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import quote, unquote

from loopai._redact import MASK, mask_url

__all__ = ["DatabaseUrl"]

_URL: Final = re.compile(
    r"(?P<scheme>postgres(?:ql)?)://(?P<authority>[^/?]*)(?P<path>[^?]*)(?:\?(?P<query>.*))?", re.S
)
"""libpq's URI: ``postgresql://[userinfo@][hosts][/dbname][?key=value&...]``; every part may be empty."""
_SECRETS: Final = ("password", "sslpassword")
"""libpq's parameters that hold a secret (``sslpassword``: the passphrase of the client's key),
kept out of :attr:`DatabaseUrl.conninfo` and passed to the driver apart."""


class DatabaseUrl:
    """``postgresql://user:password@host:port/database?options``, split for safe use.

    Every form libpq accepts is kept as libpq reads it: an empty host (``postgresql:///db?host=/run/sock``,
    a Unix socket; ``postgresql://`` alone: every default), several hosts, and ``user`` or ``password``
    in the query. The query is passed on as written (libpq decodes only ``%XX``: a ``+`` stays a ``+``).

    ``conninfo`` is the URL without its passwords (the userinfo's, and the ``password`` and
    ``sslpassword`` query parameters), handed to libpq with them as separate arguments, so that no
    driver message or log line can echo them; ``shown`` is the URL for people, as
    :func:`loopai._redact.mask_url` shows every URL: the userinfo's password and the values of
    secret-looking query parameters masked where they were written (``user:***@host``,
    ``?password=***``, ``?sslpassword=***``). A password may also come from ``PGPASSWORD`` or
    ``~/.pgpass``, as libpq reads them: it is then never in loopai's hands.
    """

    __slots__ = ("_secrets", "conninfo", "shown")

    def __init__(self, url: str) -> None:
        match = _URL.fullmatch(str(url))
        if match is None:
            raise ValueError("must be a postgresql://user@host:5432/database URL")
        scheme, path, query = match["scheme"], match["path"], match["query"]
        userinfo, _, hosts = match["authority"].rpartition("@")
        user, colon, password = userinfo.partition(":")
        self._secrets: dict[str, str] = {"password": unquote(password)} if colon else {}
        kept: list[str] = []
        for parameter in query.split("&") if query else ():
            key, _, value = parameter.partition("=")
            if unquote(key) in _SECRETS:
                self._secrets[unquote(key)] = unquote(value)  # as libpq: the query's comes after, and wins
            else:
                kept.append(parameter)
        self.conninfo = f"{scheme}://{f'{user}@' if user else ''}{hosts}{path}{_query(kept)}"
        self.shown = mask_url(str(url))

    def connect_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` beside :attr:`conninfo`: the password and the
        ``sslpassword``, those the URL had."""
        return dict(self._secrets)

    def scrub(self, text: str) -> str:
        """``text`` (a driver's message) with the passwords, should they appear, replaced by ``***``."""
        for secret in self._secrets.values():
            if secret:
                for form in {secret, quote(secret, safe="")}:
                    text = text.replace(form, MASK)
        return text

    def same_database(self, other: DatabaseUrl) -> bool:
        """Whether ``other`` names the same database the same way (the password aside): then one
        transaction may write what both are used for."""
        return self.conninfo == other.conninfo

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.shown!r})"


def _query(parameters: list[str]) -> str:
    return f"?{'&'.join(parameters)}" if parameters else ""
