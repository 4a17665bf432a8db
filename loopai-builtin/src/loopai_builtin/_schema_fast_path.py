"""A fast path for common JSON Schemas: proves an instance valid, or leaves the verdict to jsonschema.

``jsonschema`` stays the judge: it produces every error message and decides every case this
module is not sure about. What this module adds is speed on the common case of a record that
matches its task's schema, where ``jsonschema`` walks the schema keyword by keyword for an
answer that is nearly always "valid". A schema whose keywords all belong to a small,
well-understood subset (types, properties, required, enums, bounds, lengths, patterns,
formats, items, ``allOf``/``anyOf``) is compiled once into plain Python checks that answer:

- ``True``: the instance is valid, exactly as ``jsonschema`` would find it;
- ``False``: invalid, or not sure; the caller then asks ``jsonschema``, which decides.

So a ``True`` must never be wrong, and every check errs on the side of ``False``: numbers
are only ``int``/``float`` (not ``bool``, not ``Decimal``); ``integer`` is an ``int`` (a
float like ``1.0`` defers); enums compare by JSON equality (``true`` is not ``1``), and
any other keyword, ``$ref`` included, sends the whole schema to ``jsonschema``.

The subset is also a promise about the schema itself: every value is checked against what
the draft's meta-schema allows (a count is a non-negative integer, ``required`` lists distinct
names...), so that a schema this module compiles is one ``jsonschema``'s ``check_schema``
accepts. The validator then need not import ``jsonschema`` (slow to import) until an
instance is not proven valid. Anything doubtful, ``$id`` included, is outside the subset.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jsonschema import FormatChecker

__all__ = ["DRAFTS", "Check", "Formats", "compile_check"]

Check = Callable[[Any], bool]
"""``check(instance)``: True when ``instance`` is certainly valid, False when invalid or unsure."""
Formats = Callable[[], "FormatChecker"]
"""Gives the format checker ``jsonschema`` uses; asked only for a schema with a ``format`` keyword."""

DRAFTS: Final = frozenset({"draft4", "draft6", "draft7", "draft2019-09", "draft2020-12"})
"""The dialects the fast path knows (by short name); draft 3 always goes to jsonschema."""
_ANNOTATIONS: Final[dict[str, Callable[[Any], bool]]] = {
    # keyword: what its meta-schema lets it be (``$schema`` only at the root: further in it may
    # switch the dialect; ``$id`` is left out: it changes how a ``$ref`` resolves and has a format).
    "title": lambda v: isinstance(v, str),
    "description": lambda v: isinstance(v, str),
    "$comment": lambda v: isinstance(v, str),
    "default": lambda v: True,
    "examples": lambda v: isinstance(v, list),
    "deprecated": lambda v: type(v) is bool,
    "readOnly": lambda v: type(v) is bool,
    "writeOnly": lambda v: type(v) is bool,
}
"""Keywords that never change a verdict, and the values the meta-schemas allow for them."""
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


def compile_check(schema: Any, draft: str, formats: Formats | None) -> Check | None:
    """The fast check for ``schema``, or None when it uses anything outside the subset.

    ``draft`` is the dialect's short name (``draft2020-12``, ``draft7``...); ``formats`` gives
    the format checker the ``jsonschema`` validator uses (None: formats are annotations). A
    schema that gets a check is one ``jsonschema`` accepts for ``draft``. Never raises.
    """
    return _Compiler(draft, formats).compile(schema)


def keywords_of(schema: Any) -> set[str]:
    """Every keyword used anywhere in ``schema`` (a schema :func:`compile_check` accepted)."""
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        found.update(node)
        for keyword in ("items", "additionalProperties"):
            pending.append(node.get(keyword))
        pending.extend(node.get("properties", {}).values())
        pending.extend(node.get("allOf", ()))
        pending.extend(node.get("anyOf", ()))
    return found


class _Compiler:
    def __init__(self, draft: str, formats: Formats | None) -> None:
        self.draft = draft
        self.formats = formats

    def compile(self, schema: Any) -> Check | None:
        if self.draft not in DRAFTS:
            return None
        if isinstance(schema, dict) and "$schema" in schema:
            if not isinstance(schema["$schema"], str):
                return None
            schema = {keyword: value for keyword, value in schema.items() if keyword != "$schema"}
        try:
            return self.schema(schema)
        except (_Unsupported, RecursionError, re.error):
            return None  # jsonschema says what, if anything, is wrong with it

    def schema(self, schema: Any) -> Check:
        if schema is True and self.draft != "draft4":  # draft 4 has no boolean schemas
            return _always
        if not isinstance(schema, dict):
            raise _Unsupported  # ``false`` (never valid) or malformed: jsonschema says why
        checks: list[Check] = []
        for keyword, value in schema.items():
            allowed = _ANNOTATIONS.get(keyword)
            if allowed is not None:
                if not allowed(value):
                    raise _Unsupported(keyword)
                continue
            bound = _BOUNDS.get(keyword)
            if bound is not None:
                checks.append(self.bound(keyword, bound, value))
                continue
            build = getattr(self, "k_" + keyword.replace("$", "_"), None) if isinstance(keyword, str) else None
            if build is None:
                raise _Unsupported(keyword)
            checks.append(build(value, schema))
        return _all_of(checks)

    def bound(self, keyword: str, bound: _Bound, value: Any) -> Check:
        applies, measure, compare, is_count = bound
        if is_count:
            if type(value) is not int or value < 0:
                raise _Unsupported  # a fractional or negative count: jsonschema explains
        elif type(value) not in (int, float) or (keyword.startswith("exclusive") and self.draft == "draft4"):
            raise _Unsupported  # draft 4's exclusiveMinimum is a boolean
        return lambda x: not applies(x) or compare(measure(x), value)

    # -- any instance ------------------------------------------------------------------

    def k_type(self, value: Any, schema: dict[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names):
            raise _Unsupported
        if any(name not in _IS_TYPE for name in names):
            raise _Unsupported  # "any" (draft 3) or a schema inside "type"
        tests = [_IS_TYPE[name] for name in names]
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(test(x) for test in tests)

    def k_enum(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not value:
            raise _Unsupported
        return _member_of(value)

    def k_const(self, value: Any, schema: dict[str, Any]) -> Check:
        if self.draft == "draft4":
            raise _Unsupported  # not a draft 4 keyword: jsonschema ignores it there
        return _member_of([value])

    def k_format(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, str):
            raise _Unsupported
        if self.formats is None:
            return _always
        conforms = self.formats().conforms
        return lambda x: conforms(x, value)

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
        if len(set(value)) != len(value) or (not value and self.draft == "draft4"):
            raise _Unsupported  # the meta-schemas want distinct names (draft 4: at least one)
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


_Bound = tuple[Callable[[Any], bool], Callable[[Any], Any], Callable[[Any, Any], bool], bool]
_BOUNDS: Final[dict[str, _Bound]] = {
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
    """``enum``/``const``: distinct scalar members compared by key; an array or object member defers."""
    if any(isinstance(value, (list, dict)) for value in values):
        raise _Unsupported
    strings = frozenset(value for value in values if isinstance(value, str))
    keys = frozenset(_key(value) for value in values)
    if len(keys) != len(values):
        raise _Unsupported  # draft 4 wants distinct members; the others allow repeats, rarely meant

    def member(x: Any) -> bool:
        if isinstance(x, str):
            return x in strings
        if x is None or x is True or x is False or _is_number(x):
            return _key(x) in keys
        return False

    return member
