"""The ``json-schema-validator``: run status, input and output schemas, and the expected output."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any, Final, NamedTuple

from pydantic import BaseModel, Field, field_validator

import loopai
from loopai_builtin._json_compare import differences, parsed
from loopai_builtin._schema_cache import TOO_DEEP, CacheInfo, Schema, SchemaCache, regex_problem
from loopai_builtin._schema_refs import RemoteRefError, RemoteRefs, normalised_prefix, unfetched_refs
from loopai_builtin._version import __version__

__all__ = ["CacheInfo", "JsonSchemaValidator"]

_MAX_DIFFERENCES = 20

log = logging.getLogger("loopai.builtin")


class _Part(NamedTuple):
    """One side of a run checked against a schema of the context, and its names in results."""

    name: str  # the run's field: "input"
    schema: str  # the context's field and the check's name: "input_schema"
    draft_key: str  # where the result's metadata names the schema's draft
    error_key: str  # where a problem of the schema itself is reported


_PARTS: Final = tuple(
    _Part(part, f"{part}_schema", f"{part}_schema_draft", f"$.{part}_schema") for part in ("input", "output")
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
    within ``remote_ref_timeout`` seconds; a fetch that fails is not retried for a minute:
    every record needing that document meanwhile gets the same message.

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

    def _new_cache(self) -> SchemaCache:
        remote = RemoteRefs(self.config.remote_refs, self.config.remote_ref_timeout)
        return SchemaCache(self.config.cache_size, remote)

    def startup(self, host: Any) -> None:
        """Compile the schemas of the host's tasks table now (the first records do not wait for it)
        and warn about each one that is not a valid JSON Schema: every record of its task would be
        judged invalid until it is fixed."""
        tasks = getattr(getattr(host, "tasks", None), "settings", None) or {}
        for task_id, task in tasks.items():
            for part in _PARTS:
                schema = getattr(task, part.schema, None)
                if schema is None:
                    continue
                problem = self._cache.get(schema, self.config.format_checking).problem
                said = [_not_a_schema(part, problem)] if problem is not None else []
                said += [
                    f"{part.schema} cannot be applied: {why}" for why in unfetched_refs(schema, self._cache.remote)
                ]
                named = f"{task.name!r} ({task_id})" if task.name else str(task_id)
                for why in said:
                    log.warning(
                        "%s: task %s: %s: every record of the task is judged invalid until it is fixed",
                        self.name,
                        named,
                        why,
                    )

    def cache_info(self) -> CacheInfo:
        """Hits, misses, size limit and current size of the compiled-schema cache."""
        return self._cache.info()

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        """See :meth:`loopai.HookSpecs.validate`."""
        started = time.perf_counter()
        errors: dict[str, list[str]] = {}
        checks = ["status"]
        metadata: dict[str, Any] = {"checks": checks}
        message = self._check(execution, context, errors, checks, metadata)
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
        checks: list[str],
        metadata: dict[str, Any],
    ) -> str:
        """Fill ``errors``, ``checks`` (what was checked) and ``metadata``; return the result's one-line message."""
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
        for part in _PARTS:
            schema = getattr(context, part.schema)
            if schema is not None:
                checks.append(part.schema)
                found = self._schema_errors(part, schema, getattr(execution, part.name), errors, metadata)
                if found:
                    problems.append(found)
        if context.expected_output is not None:
            checks.append("expected_output")
            expected, actual = parsed(context.expected_output), parsed(execution.output)
            count = 0
            for path, text in differences(expected, actual, "$.output"):
                count += 1
                if count <= _MAX_DIFFERENCES:
                    errors.setdefault(path, []).append(text)
            if count:
                problems.append(f"output differs from expected_output in {count} place(s)")
        if not problems:
            return f"valid ({', '.join(checks)})"
        return "invalid: " + "; ".join(problems)

    def _schema_errors(
        self,
        part: _Part,
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
        metadata[part.draft_key] = compiled.draft
        if compiled.note:
            metadata.setdefault("notes", []).append(f"{part.schema}: {compiled.note}")
        if compiled.problem is not None:
            where, text = compiled.problem
            errors.setdefault(f"{part.error_key}{where}", []).append(f"invalid schema: {text}")
            return _not_a_schema(part, compiled.problem)
        quick = compiled.quick
        if quick is not None and quick(instance):
            return None  # certainly valid: jsonschema is asked only when errors are possible
        return _jsonschema_errors(part, compiled.validator, instance, errors)


def _not_a_schema(part: _Part, problem: tuple[str, str]) -> str:
    """``output_schema is not a valid JSON Schema (<why> at output_schema.<where>)``."""
    where, text = problem
    return f"{part.schema} is not a valid JSON Schema ({text} at {part.schema}{where or ' root'})"


def _jsonschema_errors(part: _Part, validator: Any, instance: Any, errors: dict[str, list[str]]) -> str | None:
    """What ``jsonschema``'s ``validator`` finds wrong with ``instance``, recorded in ``errors``;
    a summary, or None when it finds nothing. Never raises for a schema (see ``_schema_errors``)."""
    import re

    import referencing.exceptions  # with jsonschema: imported once an instance needs it

    try:
        found = [
            (_error_path(part.name, error), error.message)
            for error in sorted(validator().iter_errors(instance), key=lambda e: list(map(str, e.path)))
        ]
    except referencing.exceptions.Unresolvable as exc:
        problem = f"a $ref cannot be resolved: {_unresolvable(exc)}"
    except RecursionError:
        problem = TOO_DEEP
    except re.error as exc:
        problem = regex_problem(exc)
    except Exception as exc:  # noqa: BLE001 -- a schema is the task's data: what it makes jsonschema raise is a verdict
        problem = f"{type(exc).__name__}: {exc}"
    else:
        for path, text in found:
            errors.setdefault(path, []).append(text)
        return f"{part.name} does not match {part.schema} ({len(found)} error(s))" if found else None
    errors.setdefault(part.error_key, []).append(f"invalid schema: {problem}")
    return f"{part.schema} cannot be applied: {problem}"


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


def _error_path(part: str, error: Any) -> str:
    """``$.output.label`` for an error at ``label``; a missing required property is keyed by itself."""
    path = f"$.{part}{error.json_path[1:]}"
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        for name in required:
            if name not in error.instance and error.message.startswith(repr(name)):
                return f"{path}.{name}"
    return path
