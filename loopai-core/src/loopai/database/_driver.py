"""psycopg 3 and psycopg_pool, the optional extra: imported when a database is opened, never before."""

from __future__ import annotations

from types import ModuleType
from typing import Final

from loopai.database._errors import DriverMissing

__all__ = ["INSTALL", "driver"]

INSTALL: Final = "pip install 'loopai-core[postgres]'"


def driver(shown_url: str) -> tuple[ModuleType, ModuleType]:
    """The ``psycopg`` and ``psycopg_pool`` modules; :class:`DriverMissing` saying how to install them."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        missing = exc.name or "psycopg"
        raise DriverMissing(
            f"database {shown_url}: PostgreSQL needs psycopg 3 and psycopg_pool, and {missing} is not "
            f"installed in this environment: {INSTALL}"
        ) from None
    return psycopg, psycopg_pool
