"""A PostgreSQL URL as loopai uses it: the password kept apart from what is printed or logged."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import quote, unquote

__all__ = ["DatabaseUrl"]

_URL: Final = re.compile(
    r"(?P<scheme>postgres(?:ql)?)://(?P<authority>[^/?]*)(?P<path>[^?]*)(?:\?(?P<query>.*))?", re.S
)
"""libpq's URI: ``postgresql://[userinfo@][hosts][/dbname][?key=value&...]``; every part may be empty."""
_MASK: Final = "***"


class DatabaseUrl:
    """``postgresql://user:password@host:port/database?options``, split for safe use.

    Every form libpq accepts is kept as libpq reads it: an empty host (``postgresql:///db?host=/run/sock``,
    a Unix socket; ``postgresql://`` alone: every default), several hosts, and ``user`` or ``password``
    in the query. The query is passed on as written (libpq decodes only ``%XX``: a ``+`` stays a ``+``).

    ``conninfo`` is the URL without its password (a ``password`` query parameter included),
    handed to libpq with the password as a separate argument, so that no driver message or
    log line can echo it; ``shown`` is the URL for people, the password masked where it was
    written (``user:***@host``, ``?password=***``). A password may also come from ``PGPASSWORD``
    or ``~/.pgpass``, as libpq reads them: it is then never in loopai's hands.
    """

    __slots__ = ("_password", "conninfo", "shown")

    def __init__(self, url: str) -> None:
        match = _URL.fullmatch(str(url))
        if match is None:
            raise ValueError("must be a postgresql://user@host:5432/database URL")
        scheme, path, query = match["scheme"], match["path"], match["query"]
        userinfo, at, hosts = match["authority"].rpartition("@")
        user, colon, password = userinfo.partition(":")
        self._password = unquote(password) if colon else None
        kept: list[str] = []
        masked: list[str] = []
        for parameter in query.split("&") if query else ():
            key, _, value = parameter.partition("=")
            if unquote(key) == "password":
                self._password = unquote(value)  # as libpq: the query's comes after, and wins
                masked.append(f"{key}={_MASK}")
            else:
                kept.append(parameter)
                masked.append(parameter)
        self.conninfo = f"{scheme}://{f'{user}@' if user else ''}{hosts}{path}{_query(kept)}"
        userinfo = f"{user}:{_MASK}" if colon else user
        self.shown = f"{scheme}://{f'{userinfo}@' if at and userinfo else ''}{hosts}{path}{_query(masked)}"

    def connect_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` beside :attr:`conninfo`: the password, when the URL had one."""
        return {} if self._password is None else {"password": self._password}

    def scrub(self, text: str) -> str:
        """``text`` (a driver's message) with the password, should it appear, replaced by ``***``."""
        if self._password:
            for form in {self._password, quote(self._password, safe="")}:
                text = text.replace(form, _MASK)
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
