"""Which state store a host uses: one given, else PostgreSQL when a URL is configured, else the in-process store."""

from __future__ import annotations

from collections.abc import Mapping

from loopai._errors import ConfigError
from loopai._redact import redact
from loopai.config import LoopaiConfig
from loopai.database import DatabaseUrl
from loopai.state._memory import MemoryStateStore
from loopai.state._postgres import PostgresStateStore
from loopai.state._store import StateStore

__all__ = ["open_state"]


def open_state(given: StateStore | None, config: LoopaiConfig, environ: Mapping[str, str]) -> tuple[StateStore, bool]:
    """The state store a host uses, and whether the host owns it (and so closes it).

    A store ``given`` is used as it is (not owned). Otherwise ``LOOPAI_STATE_URL``, else
    ``[state] url``, names a PostgreSQL database: a :class:`PostgresStateStore` (not connected
    yet: the host connects it when it starts); with neither, the in-process store. Raises
    :class:`loopai.ConfigError` for a URL that is not a ``postgresql://`` one.
    """
    if given is not None:
        return given, False
    url = config.state.database_url(environ)
    if url is None:
        return MemoryStateStore(), True
    try:
        parsed = DatabaseUrl(url)
    except ValueError as exc:
        where = "LOOPAI_STATE_URL" if environ.get("LOOPAI_STATE_URL") else f"{config.where_prefix()}state.url"
        raise ConfigError([f"{where}: {exc} (got {redact(str(url))!r})"]) from None
    return PostgresStateStore(parsed, unavailable_timeout=config.state.unavailable_timeout), True
