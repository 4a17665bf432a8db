"""A fast path for common JSON Schemas: proves an instance valid, or leaves the verdict to jsonschema.

``jsonschema`` stays the judge: it checks every schema, produces every error message and
decides every case this module is not sure about. What this module adds is speed on the
common case of a record that matches its task's schema, where ``jsonschema`` walks the
schema keyword by keyword, building a validator object per subschema, for an answer that
is nearly always "valid". A schema whose keywords all belong to a small, well-understood
subset (types, properties, required, enums, bounds, lengths, patterns, formats, items,
``allOf``/``anyOf``) is compiled once into plain Python checks that answer:

- ``True``: the instance is valid, exactly as ``jsonschema`` would find it;
- ``False``: invalid, or not sure; the caller then asks ``jsonschema``, which decides.

So a ``True`` must never be wrong, and every check errs on the side of ``False``: numbers
are only ``int``/``float`` (not ``bool``, not ``Decimal``); ``integer`` is an ``int`` (a
float like ``1.0`` defers); enums compare by JSON equality (``true`` is not ``1``), and
any other keyword, ``$ref`` included, sends the whole schema to ``jsonschema``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, Final

from jsonschema import FormatChecker

__all__ = ["Check", "compile_check"]

Check = Callable[[Any], bool]
"""``check(instance)``: True when ``instance`` is certainly valid, False when invalid or unsure."""

_ANNOTATIONS: Final = frozenset(
    {"$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
"""Keywords that never change a verdict (``$id`` only matters to ``$ref``, which defers). ``$schema``
is one only at the root: further in, it may switch the dialect."""
_DRAFTS: Final = frozenset({"draft4", "draft6", "draft7", "draft2019-09", "draft2020-12"})
_IS_TYPE: Final[dict[str, Check]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "number": lambda x: type(x) is int or type(x) is float,
    "integer": lambda x: type(x) is int,
    "boolean": lambda x: x is True or x is False,
    "null": lambda x: x is None,
}


class _Unsupported(Exception):
    """A keyword or value outside the subset: the whole schema goes to jsonschema."""


def compile_check(schema: Any, draft: str, format_checker: FormatChecker | None) -> Check | None:
    """The fast check for ``schema`` (already accepted by ``jsonschema``'s ``check_schema``),
    or None when it uses anything outside the subset this module handles.

    ``draft`` is the dialect's short name (``draft2020-12``, ``draft7``...); ``format_checker``
    is the one the ``jsonschema`` validator uses (None: formats are annotations).
    """
    if draft not in _DRAFTS:
        return None
    if isinstance(schema, dict) and "$schema" in schema:
        schema = {keyword: value for keyword, value in schema.items() if keyword != "$schema"}
    try:
        return _Compiler(draft, format_checker).schema(schema)
    except _Unsupported:
        return None


class _Compiler:
    def __init__(self, draft: str, format_checker: FormatChecker | None) -> None:
        self.draft = draft
        self.formats = format_checker

    def schema(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if not isinstance(schema, dict):
            raise _Unsupported  # ``false`` (never valid) or malformed: jsonschema says why
        checks: list[Check] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            bound = _BOUNDS.get(keyword)
            if bound is not None:
                checks.append(_bound_check(*bound, value))
                continue
            build = getattr(self, "k_" + keyword.replace("$", "_"), None)
            if build is None:
                raise _Unsupported(keyword)
            checks.append(build(value, schema))
        return _all_of(checks)

    # -- any instance ------------------------------------------------------------------

    def k_type(self, value: Any, schema: dict[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or any(name not in _IS_TYPE for name in names):
            raise _Unsupported  # "any" (draft 3) or a schema inside "type"
        tests = [_IS_TYPE[name] for name in names]
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(test(x) for test in tests)

    def k_enum(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list):
            raise _Unsupported
        return _member_of(value)

    def k_const(self, value: Any, schema: dict[str, Any]) -> Check:
        if self.draft == "draft4":
            raise _Unsupported  # not a draft 4 keyword: jsonschema ignores it there
        return _member_of([value])

    def k_format(self, value: Any, schema: dict[str, Any]) -> Check:
        formats = self.formats
        if formats is None:
            return _always
        if not isinstance(value, str):
            raise _Unsupported
        return lambda x: formats.conforms(x, value)

    def k_allOf(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not value:
            raise _Unsupported
        return _all_of([self.schema(sub) for sub in value])

    def k_anyOf(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not value:
            raise _Unsupported
        subs = [self.schema(sub) for sub in value]
        return lambda x: any(sub(x) for sub in subs)  # none certain: jsonschema decides

    # -- strings -----------------------------------------------------------------------

    def k_pattern(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, str):
            raise _Unsupported
        search = re.compile(value).search  # what jsonschema does: re.search, unanchored
        return lambda x: not isinstance(x, str) or search(x) is not None

    # -- arrays ------------------------------------------------------------------------

    def k_items(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, (dict, bool)) or value is False or "prefixItems" in schema:
            raise _Unsupported  # tuple forms and items: false depend on the draft
        item = self.schema(value)
        return lambda x: not isinstance(x, list) or all(item(each) for each in x)

    # -- objects -----------------------------------------------------------------------

    def k_required(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise _Unsupported  # draft 3's boolean form
        names, names_set = tuple(value), frozenset(value)
        if len(names) == 1:
            (only,) = names
            return lambda x: not isinstance(x, dict) or only in x
        return lambda x: not isinstance(x, dict) or x.keys() >= names_set

    def k_properties(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, dict):
            raise _Unsupported
        subs = tuple((name, self.schema(sub)) for name, sub in value.items())

        def properties(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name, sub in subs:  # noqa: SIM110 -- a plain loop: all() over a generator costs more
                if name in x and not sub(x[name]):
                    return False
            return True

        return properties

    def k_additionalProperties(self, value: Any, schema: dict[str, Any]) -> Check:
        if "patternProperties" in schema:
            raise _Unsupported
        declared = frozenset(schema.get("properties") or ())
        if value is True:
            return _always
        if value is False:
            return lambda x: not isinstance(x, dict) or declared.issuperset(x)
        extra = self.schema(value)
        return lambda x: not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in declared)


def _always(x: Any) -> bool:
    return True


def _is_number(x: Any) -> bool:
    """Numbers the fast path compares itself; anything else (bool, Decimal, NaN) is not one."""
    return (type(x) is int or type(x) is float) and x == x


_BOUNDS: Final[dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any], Callable[[Any, Any], bool], bool]]] = {
    # keyword: (which instances it applies to, what is measured, comparison, bound is a count)
    "minimum": (_is_number, lambda x: x, operator.ge, False),
    "maximum": (_is_number, lambda x: x, operator.le, False),
    "exclusiveMinimum": (_is_number, lambda x: x, operator.gt, False),
    "exclusiveMaximum": (_is_number, lambda x: x, operator.lt, False),
    "minLength": (lambda x: isinstance(x, str), len, operator.ge, True),
    "maxLength": (lambda x: isinstance(x, str), len, operator.le, True),
    "minItems": (lambda x: isinstance(x, list), len, operator.ge, True),
    "maxItems": (lambda x: isinstance(x, list), len, operator.le, True),
    "minProperties": (lambda x: isinstance(x, dict), len, operator.ge, True),
    "maxProperties": (lambda x: isinstance(x, dict), len, operator.le, True),
}
"""Keywords that compare a number, a length or a count with a bound, on the instances they apply to."""


def _bound_check(
    applies: Callable[[Any], bool],
    measure: Callable[[Any], Any],
    compare: Callable[[Any, Any], bool],
    is_count: bool,
    bound: Any,
) -> Check:
    if type(bound) is not int and (is_count or type(bound) is not float):
        raise _Unsupported  # draft 4's boolean exclusiveMinimum, a fractional length, or something odd
    return lambda x: not applies(x) or compare(measure(x), bound)


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    frozen = tuple(checks)

    def every(x: Any) -> bool:
        for check in frozen:  # noqa: SIM110 -- a plain loop: all() over a generator costs more
            if not check(x):
                return False
        return True

    return every


def _key(value: Any) -> tuple[str, Any]:
    """A hashable key under which two scalars are equal exactly when JSON Schema says so:
    ``true`` is not ``1``, ``1`` is ``1.0``."""
    if value is None or value is True or value is False:
        return ("literal", value)
    if isinstance(value, str):
        return ("string", value)
    if type(value) is int or type(value) is float:
        return ("number", value)
    raise _Unsupported


def _member_of(values: list[Any]) -> Check:
    """``enum``/``const``: scalar members compared by key; an array or object member defers."""
    if any(isinstance(value, (list, dict)) for value in values):
        raise _Unsupported
    strings = frozenset(value for value in values if isinstance(value, str))
    keys = frozenset(_key(value) for value in values)

    def member(x: Any) -> bool:
        if isinstance(x, str):
            return x in strings
        if x is None or x is True or x is False or _is_number(x):
            return _key(x) in keys
        return False

    return member
