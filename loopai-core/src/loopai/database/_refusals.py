"""What to do when the server refuses loopai's SQL for a reason an operator fixes, said in one line.

A role without a privilege loopai needs (SQLSTATE ``42501``: on loopai's tables, on the schema
that holds them, or not their owner), a table or index of the same name that belongs to another
application (``42P07``, ``42710``), a ``search_path`` that names no schema (``3F000``), a standby
that only reads (``25006``). :class:`loopai.database.Database` is the one place that
uses this, when it turns a driver's error into a :class:`DatabaseError`: every command and every
part that keeps data in the database gets the same advice.
"""

from __future__ import annotations

import re
from typing import Final

from loopai.database._migrations import tables

__all__ = ["advice"]

INSUFFICIENT_PRIVILEGE: Final = "42501"
DUPLICATE_TABLE: Final = "42P07"
DUPLICATE_OBJECT: Final = "42710"
INVALID_SCHEMA_NAME: Final = "3F000"
READ_ONLY_TRANSACTION: Final = "25006"

_DENIED: Final = re.compile(r"permission denied for (?P<kind>\w+) (?P<name>\S+)")
_PLAIN: Final = re.compile(r"[a-z_][a-z0-9_$]*")
_OWN_SCHEMA: Final = "CREATE SCHEMA loopai, then add options=-csearch_path%3Dloopai to the URL's query"


def advice(sqlstate: str | None, message: str, role: str | None, setting: str) -> str | None:
    """What the operator can do about a refusal (``message``: the server's primary message), or None
    when loopai has nothing to add to the server's words.

    ``role`` is the role loopai connected as (None when unknown), ``setting`` where the database
    is configured (``[state] url or LOOPAI_STATE_URL``).
    """
    if sqlstate == INSUFFICIENT_PRIVILEGE:
        return _privilege(message, _identifier(role) if role else "ROLE")
    if sqlstate in (DUPLICATE_TABLE, DUPLICATE_OBJECT):
        return (
            "no migration recorded in loopai_schema_version made it: it belongs to another application; "
            f"point {setting} at another database, or at a schema of loopai's own ({_OWN_SCHEMA})"
        )
    if sqlstate == INVALID_SCHEMA_NAME:
        return (
            "the search_path names no schema that exists to hold loopai's tables: create the one it names "
            f"(CREATE SCHEMA name AUTHORIZATION {_identifier(role) if role else 'ROLE'}), or correct "
            f"options=-csearch_path in {setting}"
        )
    if sqlstate == READ_ONLY_TRANSACTION:
        return (
            f"this server only reads (a standby): point {setting} at the primary, or add "
            "target_session_attrs=read-write to the URL's query when it names several hosts"
        )
    return None


def _privilege(message: str, role: str) -> str:
    denied = _DENIED.search(message)
    kind, name = (denied["kind"], denied["name"]) if denied is not None else ("", "")
    if kind == "schema":
        return (
            f"the role {role} may not use schema {name}: ask the database owner to run GRANT USAGE, CREATE "
            f"ON SCHEMA {name} TO {role} (CREATE is needed by loopai db upgrade only), or run loopai as a "
            "role that has them"
        )
    if kind in ("table", "relation", "sequence", "view"):
        return (
            f"the role {role} may not use loopai's tables: run loopai as the role that ran loopai db upgrade, "
            f"or have that role run GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(tables())} TO {role}"
        )
    if message.startswith("must be owner of"):
        return (
            "only the owner of loopai's tables may change them: run loopai db upgrade as that role "
            "(the one that ran it first)"
        )
    return f"the role {role} lacks a privilege loopai needs: ask the database owner to grant it"


def _identifier(name: str) -> str:
    """``name`` as SQL writes a role: bare when it can be, else double-quoted."""
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'
