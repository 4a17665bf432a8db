"""The ``json-schema-validator``: run status, input and output schemas, and the expected output."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, NamedTuple

import jsonschema
import referencing.exceptions
from jsonschema.protocols import Validator
from jsonschema.validators import (
    Draft3Validator,
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    validator_for,
)
from pydantic import BaseModel, Field, field_validator

import loopai
from loopai_builtin._json_compare import differences, parsed
from loopai_builtin._schema_fast_path import Check, compile_check
from loopai_builtin._schema_refs import RemoteRefError, RemoteRefs, normalised_prefix
from loopai_builtin._version import __version__

__all__ = ["CacheInfo", "JsonSchemaValidator"]

_DRAFTS: dict[type[Validator], str] = {
    Draft202012Validator: "draft2020-12",
    Draft201909Validator: "draft2019-09",
    Draft7Validator: "draft7",
    Draft6Validator: "draft6",
    Draft4Validator: "draft4",
    Draft3Validator: "draft3",
}
_MAX_DIFFERENCES = 20
Schema = dict[str, Any] | bool
"""A JSON Schema: an object, or ``true``/``false`` (valid since draft 6: anything / nothing)."""
_TOO_DEEP = (
    "it recurses deeper than Python's stack allows: a $ref that leads back to itself without "
    "going into the instance, or an instance nested deeper than the schema can follow"
)


class CacheInfo(NamedTuple):
    """Counts of the compiled-validator cache, like :func:`functools.lru_cache`'s."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class _Compiled(NamedTuple):
    """A schema ready to use: its validator, or why it cannot be used."""

    validator: Validator | None
    draft: str
    problem: tuple[str, str] | None = None  # (path in the schema, message)
    note: str | None = None
    quick: Check | None = None
    """Proves common instances valid without jsonschema's walk (see ``_schema_fast_path``)."""


def _meta_id(draft: type[Validator]) -> str:
    meta = draft.META_SCHEMA
    return str(meta.get("$id") or meta.get("id") or "")


def _bare(uri: str) -> str:
    # ``https://json-schema.org/draft-07/schema`` and ``http://...schema#`` name the same draft.
    return uri.strip().rstrip("#").split("://", 1)[-1]


def _draft(schema: Schema) -> tuple[type[Validator], str | None]:
    """The validator class for ``schema`` and, when ``$schema`` is not a known draft, a note."""
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    chosen = validator_for(schema, default=Draft202012Validator)
    if declared is None or _bare(_meta_id(chosen)) == _bare(declared):
        return chosen, None
    for draft in _DRAFTS:  # a spelling validator_for does not know (https, no trailing #)
        if _bare(_meta_id(draft)) == _bare(declared):
            return draft, None
    return Draft202012Validator, f"$schema {declared!r} is not a draft jsonschema knows; validated as draft 2020-12"


def _schema_location(path: Iterable[Any]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


class _SchemaCache:
    """Compiled validators by schema (keyed by a stable JSON dump), least recently used out first.

    A schema is treated as immutable once used: change a task's schema by giving a new dict.
    ``remote`` gives the compiled validators their remote ``$ref`` documents.
    """

    def __init__(self, maxsize: int, remote: RemoteRefs) -> None:
        self.maxsize = maxsize
        self.remote = remote
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, bool], _Compiled] = OrderedDict()
        self._by_identity: dict[tuple[int, bool], tuple[Schema, _Compiled]] = {}
        self._lock = threading.Lock()

    def get(self, schema: Schema, format_checking: bool) -> _Compiled:
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
            return _Compiled(None, "", ("", f"the schema is nested too deeply to be read ({_TOO_DEEP})"))
        compiled = self._get(key, schema, format_checking)
        with self._lock:
            if len(self._by_identity) >= self.maxsize:
                self._by_identity.clear()
            self._by_identity[(id(schema), format_checking)] = (schema, compiled)
        return compiled

    def _get(self, key: tuple[str, bool], schema: Schema, format_checking: bool) -> _Compiled:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        compiled = _compile(schema, format_checking, self.remote)
        with self._lock:
            self._entries[key] = compiled
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return compiled

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self.hits, self.misses, self.maxsize, len(self._entries))


def _compile(schema: Schema, format_checking: bool, remote: RemoteRefs) -> _Compiled:
    if not isinstance(schema, (dict, bool)):
        return _Compiled(None, "", ("", f"a schema is an object or a boolean, got {type(schema).__name__}"))
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is not None and not isinstance(declared, str):
        return _Compiled(None, "", (".$schema", f"$schema must be a URI string, got {type(declared).__name__}"))
    draft, note = _draft(schema)
    name = _meta_id(draft)
    try:
        draft.check_schema(schema)  # type: ignore[arg-type]  # the stubs say dict; true and false are schemas too
        checker = draft.FORMAT_CHECKER if format_checking else None
        quick = compile_check(schema, _DRAFTS.get(draft, ""), checker)
    except jsonschema.SchemaError as exc:
        return _Compiled(None, name, (_schema_location(exc.path), exc.message), note)
    except RecursionError:
        return _Compiled(None, name, ("", f"the schema is nested too deeply to be read ({_TOO_DEEP})"), note)
    except re.error as exc:
        return _Compiled(None, name, ("", _regex_problem(exc)), note)
    validator = draft(schema, format_checker=checker, registry=remote.registry(name))
    return _Compiled(validator, name, None, note, quick)


def _regex_problem(exc: re.error) -> str:
    return (
        f"pattern {exc.pattern!r} is not a regular expression Python can compile ({exc.msg}); "
        "write it in the syntax Python's re shares with ECMA 262"
    )


class JsonSchemaValidator(loopai.ValidatorPlugin):
    """Judges a run by its status, its input and output against the task's JSON Schemas, and
    its output against the expected output (compared as parsed JSON).

    The draft is picked by each schema's ``$schema`` (2020-12 when absent). Errors are keyed
    by JSON path: ``$.output.label``, ``$.input.text``, ``$.status``. A schema may be an
    object or ``true``/``false``. A schema that is itself invalid, or cannot be applied (a
    pattern Python cannot compile, a ``$ref`` loop, a remote ``$ref`` not allowed or not
    fetched), makes the result invalid with a message naming the problem: ``validate`` never
    raises for a schema.

    A remote ``$ref`` is fetched only under a ``remote_refs`` prefix, once per document,
    within ``remote_ref_timeout`` seconds.

    Each schema is compiled once (cached). A schema made of common keywords also gets a
    fast path that proves a matching instance valid in a few plain Python checks;
    ``jsonschema`` judges every other instance and writes every error message.
    """

    name = "json-schema-validator"
    version = __version__
    author = "Loopai"
    description = "Validates input and output against the task's JSON Schemas and compares the expected output."
    priority = 100

    class Config(BaseModel):
        """Settings of the ``json-schema-validator``."""

        format_checking: bool = True
        """Check ``format`` keywords (``email``, ``date``, ``ipv4``...); off: formats are annotations."""
        allow_null_output: bool = False
        """Accept a null output on a successful run (it is then checked against the output schema)."""
        cache_size: Annotated[int, Field(ge=1)] = 128
        """How many compiled schemas to keep."""
        remote_refs: list[str] = Field(default_factory=list)
        """URL prefixes a remote ``$ref`` may be fetched from (``https://schemas.example.com/``);
        empty, the default: no ``$ref`` is ever fetched."""
        remote_ref_timeout: Annotated[float, Field(gt=0)] = 5.0
        """Seconds one remote document may take to fetch, in all."""

        @field_validator("remote_refs")
        @classmethod
        def _prefixes(cls, value: list[str]) -> list[str]:
            return [normalised_prefix(prefix) for prefix in value]

    config: Config

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._cache = self._new_cache()

    def configure(self, config: BaseModel | Mapping[str, Any] | None, *, where: str | None = None) -> None:
        """Apply new settings; compiled schemas and fetched documents are dropped (settings may have changed)."""
        super().configure(config, where=where)
        self._cache = self._new_cache()

    def _new_cache(self) -> _SchemaCache:
        remote = RemoteRefs(self.config.remote_refs, self.config.remote_ref_timeout)
        return _SchemaCache(self.config.cache_size, remote)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, size limit and current size of the compiled-schema cache."""
        return self._cache.info()

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        """See :meth:`loopai.HookSpecs.validate`."""
        started = time.perf_counter()
        errors: dict[str, list[str]] = {}
        metadata: dict[str, Any] = {"checks": []}
        message = self._check(execution, context, errors, metadata)
        return loopai.ValidationResult(
            is_valid=not errors,
            validator_type=self.name,
            message=message,
            errors=errors,
            confidence_score=1.0,
            duration_ms=(time.perf_counter() - started) * 1000,
            metadata=metadata,
        )

    def _check(
        self,
        execution: loopai.ExecutionRecord,
        context: loopai.ValidationContext,
        errors: dict[str, list[str]],
        metadata: dict[str, Any],
    ) -> str:
        """Fill ``errors`` and ``metadata``; return the result's one-line message."""
        metadata["checks"].append("status")
        status = execution.status
        if status is not loopai.ExecutionStatus.SUCCESS:
            what = "timed out" if status is loopai.ExecutionStatus.TIMEOUT else "failed"
            detail = execution.error_message or "no error message"
            errors["$.status"] = [f"the run {what} (status {status.value}): {detail}"]
            return f"invalid: the run {what}: {detail}"
        if execution.output is None and not self.config.allow_null_output:
            errors["$.output"] = ["output is null, but the run reported success"]
            return "invalid: output is null, but the run reported success"

        problems: list[str] = []
        schemas: tuple[tuple[str, Schema | None], ...] = (
            ("input", context.input_schema),
            ("output", context.output_schema),
        )
        for part, schema in schemas:
            if schema is None:
                continue
            metadata["checks"].append(f"{part}_schema")
            found = self._schema_errors(part, schema, getattr(execution, part), errors, metadata)
            if found:
                problems.append(found)
        if context.expected_output is not None:
            metadata["checks"].append("expected_output")
            expected, actual = parsed(context.expected_output), parsed(execution.output)
            count = 0
            for path, text in differences(expected, actual, "$.output"):
                count += 1
                if count <= _MAX_DIFFERENCES:
                    errors.setdefault(path, []).append(text)
            if count:
                problems.append(f"output differs from expected_output in {count} place(s)")
        if not problems:
            checked = ", ".join(metadata["checks"])
            return f"valid ({checked})"
        return "invalid: " + "; ".join(problems)

    def _schema_errors(
        self,
        part: str,
        schema: Schema,
        instance: Any,
        errors: dict[str, list[str]],
        metadata: dict[str, Any],
    ) -> str | None:
        """Validate ``instance`` (the run's ``part``); record errors; return a summary or None.

        Never raises for a schema: what ``jsonschema`` raises applying it is recorded as a
        problem of the schema, under ``$.{part}_schema``.
        """
        compiled = self._cache.get(schema, self.config.format_checking)
        metadata[f"{part}_schema_draft"] = compiled.draft
        if compiled.note:
            metadata.setdefault("notes", []).append(f"{part}_schema: {compiled.note}")
        if compiled.problem is not None:
            where, text = compiled.problem
            errors.setdefault(f"$.{part}_schema{where}", []).append(f"invalid schema: {text}")
            return f"{part}_schema is not a valid JSON Schema ({text} at {part}_schema{where or ' root'})"
        try:
            if compiled.quick is not None and compiled.quick(instance):
                return None  # certainly valid: jsonschema is asked only when errors are possible
            assert compiled.validator is not None
            found = [
                (_error_path(part, error), error.message)
                for error in sorted(compiled.validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
            ]
        except referencing.exceptions.Unresolvable as exc:
            problem = f"a $ref cannot be resolved: {_unresolvable(exc)}"
        except RecursionError:
            problem = _TOO_DEEP
        except re.error as exc:
            problem = _regex_problem(exc)
        except Exception as exc:  # noqa: BLE001 -- a schema is the task's data: what it makes jsonschema raise is a verdict
            problem = f"{type(exc).__name__}: {exc}"
        else:
            for path, text in found:
                errors.setdefault(path, []).append(text)
            return f"{part} does not match {part}_schema ({len(found)} error(s))" if found else None
        errors.setdefault(f"$.{part}_schema", []).append(f"invalid schema: {problem}")
        return f"{part}_schema cannot be applied: {problem}"


def _unresolvable(exc: BaseException) -> str:
    """Why a reference could not be resolved: what remote-ref handling said, else the exception."""
    seen: BaseException | None = exc
    for _ in range(8):  # jsonschema wraps referencing's error, which wraps the retrieve hook's
        if seen is None:
            break
        if isinstance(seen, RemoteRefError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "_wrapped", None)
    return str(exc) or type(exc).__name__


def _error_path(part: str, error: jsonschema.ValidationError) -> str:
    """``$.output.label`` for an error at ``label``; a missing required property is keyed by itself."""
    path = f"$.{part}{error.json_path[1:]}"
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        for name in required:
            if name not in error.instance and error.message.startswith(repr(name)):
                return f"{path}.{name}"
    return path
