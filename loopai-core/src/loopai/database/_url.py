"""A PostgreSQL URL as loopai uses it: the password kept apart from what is printed or logged."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["DatabaseUrl"]

_SCHEMES = ("postgresql", "postgres")


class DatabaseUrl:
    """``postgresql://user:password@host:port/database?options``, split for safe use.

    ``conninfo`` is the URL without its password (a ``password`` query parameter included),
    handed to libpq with the password as a separate argument, so that no driver message or
    log line can echo it; ``shown`` is the same for people (``user:***@host`` when a password
    was given). A password may also come from ``PGPASSWORD`` or ``~/.pgpass``, as libpq reads
    them: it is then never in loopai's hands.
    """

    __slots__ = ("_password", "conninfo", "shown")

    def __init__(self, url: str) -> None:
        parts = urlsplit(str(url))
        if parts.scheme not in _SCHEMES:
            raise ValueError("must be a postgresql://user@host:5432/database URL")
        userinfo, at, hosts = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        query = parse_qsl(parts.query, keep_blank_values=True)
        from_query = [value for key, value in query if key == "password"]
        self._password = unquote(password) if colon else (from_query[-1] if from_query else None)
        kept = urlencode([(key, value) for key, value in query if key != "password"], quote_via=quote)
        netloc = f"{user}@{hosts}" if at else hosts
        self.conninfo = urlunsplit((parts.scheme, netloc, parts.path, kept, ""))
        masked = f"{user}:***@{hosts}" if self._password is not None else netloc
        self.shown = urlunsplit((parts.scheme, masked, parts.path, kept, ""))

    def connect_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` beside :attr:`conninfo`: the password, when the URL had one."""
        return {} if self._password is None else {"password": self._password}

    def scrub(self, text: str) -> str:
        """``text`` (a driver's message) with the password, should it appear, replaced by ``***``."""
        if self._password:
            for form in {self._password, quote(self._password, safe="")}:
                text = text.replace(form, "***")
        return text

    def same_database(self, other: DatabaseUrl) -> bool:
        """Whether ``other`` names the same database the same way (the password aside): then one
        transaction may write what both are used for."""
        return self.conninfo == other.conninfo

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.shown!r})"
