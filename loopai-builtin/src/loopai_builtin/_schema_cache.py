"""Compiled schemas for the json-schema-validator: the dialect, the fast check, and ``jsonschema`` when needed.

A schema is compiled once (and cached). When the fast path takes it (see
:mod:`._schema_fast_path`), the schema is known to be valid and ``jsonschema`` is not even
imported until an instance is not proven valid: importing it (with the format checkers of
``jsonschema[format-nongpl]``) costs a run more than its records do. Any other schema is
checked by ``jsonschema`` right away, which also says what is wrong with it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from loopai_builtin._schema_engine import engine_check
from loopai_builtin._schema_fast_path import Check, compile_check

if TYPE_CHECKING:
    from jsonschema import FormatChecker
    from jsonschema.protocols import Validator

    from loopai_builtin._schema_refs import RemoteRefs

__all__ = ["TOO_DEEP", "CacheInfo", "Compiled", "SchemaCache", "compile_schema", "regex_problem"]

Schema = dict[str, Any] | bool
"""A JSON Schema: an object, or ``true``/``false`` (valid since draft 6: anything / nothing)."""

_DIALECTS: Final = (
    # short name, the meta-schema's id (what results report), jsonschema's validator class
    ("draft2020-12", "https://json-schema.org/draft/2020-12/schema", "Draft202012Validator"),
    ("draft2019-09", "https://json-schema.org/draft/2019-09/schema", "Draft201909Validator"),
    ("draft7", "http://json-schema.org/draft-07/schema#", "Draft7Validator"),
    ("draft6", "http://json-schema.org/draft-06/schema#", "Draft6Validator"),
    ("draft4", "http://json-schema.org/draft-04/schema#", "Draft4Validator"),
    ("draft3", "http://json-schema.org/draft-03/schema#", "Draft3Validator"),
)
TOO_DEEP: Final = (
    "it recurses deeper than Python's stack allows: a $ref that leads back to itself without "
    "going into the instance, or an instance nested deeper than the schema can follow"
)


class CacheInfo(NamedTuple):
    """Counts of the compiled-validator cache, like :func:`functools.lru_cache`'s."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class _Dialect(NamedTuple):
    name: str
    meta_id: str
    validator_class: str


def _bare(uri: str) -> str:
    # ``https://json-schema.org/draft-07/schema`` and ``http://...schema#`` name the same draft.
    return uri.strip().rstrip("#").split("://", 1)[-1]


def dialect_of(schema: Schema) -> tuple[_Dialect, str | None]:
    """The draft ``schema`` declares with ``$schema`` (2020-12 when it declares none) and, when
    the declared one is not a known draft, a note saying so. As ``jsonschema.validator_for``."""
    latest = _Dialect(*_DIALECTS[0])
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is None:
        return latest, None
    for dialect in _DIALECTS:
        if _bare(dialect[1]) == _bare(declared):
            return _Dialect(*dialect), None
    return latest, f"$schema {declared!r} is not a draft jsonschema knows; validated as draft 2020-12"


class Compiled:
    """A schema ready to use: its fast check, its ``jsonschema`` validator (made on first need),
    or the problem that makes it unusable, as ``(path in the schema, message)``."""

    __slots__ = ("_lock", "_make", "_validator", "draft", "note", "problem", "quick")

    def __init__(
        self,
        draft: str,
        *,
        problem: tuple[str, str] | None = None,
        note: str | None = None,
        quick: Check | None = None,
        validator: Validator | None = None,
        make: Callable[[], Validator] | None = None,
    ) -> None:
        self.draft = draft
        self.problem = problem
        self.note = note
        self.quick = quick
        """Proves common instances valid without jsonschema (see ``_schema_fast_path``)."""
        self._validator = validator
        self._make = make
        self._lock = threading.Lock()

    def validator(self) -> Validator:
        """The ``jsonschema`` validator, which judges what the fast check does not prove valid."""
        if self._validator is None:
            with self._lock:
                if self._validator is None:
                    assert self._make is not None, "a schema with a problem has no validator"
                    self._validator = self._make()
        return self._validator


def _jsonschema_class(dialect: _Dialect) -> Any:
    import jsonschema.validators  # here, not at the top: see the module's docstring

    return getattr(jsonschema.validators, dialect.validator_class)


def _format_checker(dialect: _Dialect) -> FormatChecker:
    return _jsonschema_class(dialect).FORMAT_CHECKER  # type: ignore[no-any-return]


def compile_schema(schema: Schema, format_checking: bool, remote: RemoteRefs) -> Compiled:
    """``schema`` compiled; never raises: a schema that cannot be used is a :class:`Compiled` with a problem."""
    if not isinstance(schema, (dict, bool)):
        return Compiled("", problem=("", f"a schema is an object or a boolean, got {type(schema).__name__}"))
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is not None and not isinstance(declared, str):
        return Compiled("", problem=(".$schema", f"$schema must be a URI string, got {type(declared).__name__}"))
    dialect, note = dialect_of(schema)

    def make() -> Validator:
        cls = _jsonschema_class(dialect)
        checker = cls.FORMAT_CHECKER if format_checking else None
        return cls(schema, format_checker=checker, registry=remote.registry(dialect.meta_id))  # type: ignore[no-any-return]

    formats = (lambda: _format_checker(dialect)) if format_checking else None
    quick = compile_check(schema, dialect.name, formats)
    if quick is not None:  # a schema the fast path takes is a valid one: jsonschema waits until needed
        quick = engine_check(schema, dialect.name, format_checking) or quick
        return Compiled(dialect.meta_id, note=note, quick=quick, make=make)
    import jsonschema  # anything else is checked now, and jsonschema says what is wrong

    try:
        _jsonschema_class(dialect).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return Compiled(dialect.meta_id, problem=(_schema_location(exc.path), exc.message), note=note)
    except RecursionError:
        problem = f"the schema is nested too deeply to be read ({TOO_DEEP})"
        return Compiled(dialect.meta_id, problem=("", problem), note=note)
    except re.error as exc:
        return Compiled(dialect.meta_id, problem=("", regex_problem(exc)), note=note)
    return Compiled(dialect.meta_id, note=note, validator=make())


def _schema_location(path: Iterable[Any]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def regex_problem(exc: re.error) -> str:
    """What to say about a pattern Python's ``re`` cannot compile."""
    return (
        f"pattern {exc.pattern!r} is not a regular expression Python can compile ({exc.msg}); "
        "write it in the syntax Python's re shares with ECMA 262"
    )


class SchemaCache:
    """Compiled schemas by schema (keyed by a stable JSON dump), least recently used out first.

    A schema is treated as immutable once used: change a task's schema by giving a new dict.
    ``remote`` gives the compiled validators their remote ``$ref`` documents.
    """

    def __init__(self, maxsize: int, remote: RemoteRefs) -> None:
        self.maxsize = maxsize
        self.remote = remote
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, bool], Compiled] = OrderedDict()
        self._by_identity: dict[tuple[int, bool], tuple[Schema, Compiled]] = {}
        self._lock = threading.Lock()

    def get(self, schema: Schema, format_checking: bool) -> Compiled:
        """The compiled ``schema`` (compiled now when it is not in the cache)."""
        # Fast path: the same schema object as last time (a task's schema is one dict reused
        # for every record; ``True`` and ``False`` are one object each). The entry holds the
        # schema, so its id cannot be reused meanwhile.
        same = self._by_identity.get((id(schema), format_checking))
        if same is not None and same[0] is schema:
            self.hits += 1
            return same[1]
        try:
            key = (json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str), format_checking)
        except RecursionError:
            return Compiled("", problem=("", f"the schema is nested too deeply to be read ({TOO_DEEP})"))
        compiled = self._get(key, schema, format_checking)
        with self._lock:
            if len(self._by_identity) >= self.maxsize:
                self._by_identity.clear()
            self._by_identity[(id(schema), format_checking)] = (schema, compiled)
        return compiled

    def _get(self, key: tuple[str, bool], schema: Schema, format_checking: bool) -> Compiled:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        compiled = compile_schema(schema, format_checking, self.remote)
        with self._lock:
            self._entries[key] = compiled
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return compiled

    def info(self) -> CacheInfo:
        """Hits, misses, size limit and current size."""
        with self._lock:
            return CacheInfo(self.hits, self.misses, self.maxsize, len(self._entries))
