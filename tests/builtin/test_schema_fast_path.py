"""The json-schema-validator's fast path never calls an invalid instance or schema valid, and takes the common cases.

Both fast engines are held to jsonschema's verdict: the plain Python checks, and jsonschema-rs
where it is used (``loopai-builtin[fast]``).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import loopai
from loopai_builtin import JsonSchemaValidator
from loopai_builtin._schema_engine import engine_check
from loopai_builtin._schema_fast_path import compile_check

DRAFTS = {
    "draft2020-12": jsonschema.Draft202012Validator,
    "draft2019-09": jsonschema.Draft201909Validator,
    "draft7": jsonschema.Draft7Validator,
    "draft6": jsonschema.Draft6Validator,
    "draft4": jsonschema.Draft4Validator,
}
KEYS = ["a", "b", "c"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 2, 0.0, 1.0, 1.5, -0.5, 10**20, 2**64 + 1, -(2**70), 1e300, float("inf")]),
    st.integers(-5, 5),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from(["", "a", "ab", "abc", "1", "x@y", "127.0.0.1", "2024-02-30", "2024-01-31", "é", "😀", "\ud800"]),
)
instances = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=8,
)
type_names = st.sampled_from(["object", "array", "string", "number", "integer", "boolean", "null"])
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -1.5, 2**64, True, "1"]))
sizes = st.one_of(st.integers(0, 3), st.sampled_from([-1, 1.0, 1.5, True]))  # and values no meta-schema allows


def keywords(sub: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """One keyword of the subset (and, now and then, one outside it)."""
    return st.one_of(
        st.builds(lambda t: {"type": t}, st.one_of(type_names, st.lists(type_names, min_size=1, max_size=3))),
        st.builds(lambda v: {"enum": v}, st.lists(scalars, max_size=4)),
        st.builds(lambda v: {"const": v}, scalars),
        st.builds(
            lambda k, v: {k: v},
            st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]),
            numbers,
        ),
        st.builds(
            lambda k, v: {k: v},
            st.sampled_from(["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"]),
            sizes,
        ),
        st.builds(lambda p: {"pattern": p}, st.sampled_from(["^a", "b$", "[0-9]", "^$", "é"])),
        st.builds(lambda f: {"format": f}, st.sampled_from(["email", "ipv4", "date", "unknown-format"])),
        st.builds(lambda r: {"required": r}, st.lists(st.sampled_from(KEYS), max_size=3)),
        st.builds(lambda p: {"properties": p}, st.dictionaries(st.sampled_from(KEYS), sub, max_size=3)),
        st.builds(lambda a: {"additionalProperties": a}, st.one_of(st.booleans(), sub)),
        st.builds(lambda i: {"items": i}, st.one_of(st.just(True), sub)),
        st.builds(lambda s: {"allOf": s}, st.lists(sub, min_size=1, max_size=3)),
        st.builds(lambda s: {"anyOf": s}, st.lists(sub, min_size=1, max_size=3)),
        st.builds(lambda s: {"title": s}, st.one_of(st.text(max_size=3), st.integers())),
        st.builds(lambda k, v: {k: v}, st.sampled_from(["examples", "readOnly", "deprecated", "$comment"]), scalars),
        st.sampled_from([{"multipleOf": 2}, {"not": {}}, {"$ref": "#"}, {"uniqueItems": True}, {"$id": "x y"}]),
    )


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for part in parts:
        schema.update(part)
    return schema


schemas = st.recursive(
    st.builds(merged, st.lists(keywords(st.just({})), max_size=3)),
    lambda sub: st.builds(merged, st.lists(keywords(sub), max_size=4)),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=schemas, draft=st.sampled_from(sorted(DRAFTS)), formats=st.booleans(), data=st.data())
def test_the_fast_path_never_calls_an_invalid_instance_or_schema_valid(schema, draft, formats, data):
    cls = DRAFTS[draft]
    checker = cls.FORMAT_CHECKER if formats else None
    check = compile_check(schema, draft, (lambda: checker) if formats else None)
    assume(check is not None)
    cls.check_schema(schema)  # a schema the fast path takes is one jsonschema accepts
    engine = engine_check(schema, draft, formats)
    validator = cls(schema, format_checker=checker)
    for instance in data.draw(st.lists(instances, min_size=1, max_size=8)):
        if check(instance):
            assert validator.is_valid(instance), (schema, instance)
        if engine is not None and engine(instance):
            assert validator.is_valid(instance), ("jsonschema-rs", schema, instance)


def test_the_compiled_engine_takes_schemas_that_mean_the_same_to_both():
    pytest.importorskip("jsonschema_rs")
    assert engine_check({"type": "object", "required": ["a"]}, "draft2020-12", True) is not None
    assert engine_check({"properties": {"a": {"pattern": "^a"}}}, "draft2020-12", True) is None  # ECMA 262 regex
    assert engine_check({"format": "email"}, "draft7", True) is None  # formats of its own
    assert engine_check({"format": "email"}, "draft7", False) is not None  # an annotation to both
    assert engine_check({"type": "integer"}, "draft4", True) is None  # 1.0 is no draft 4 integer to jsonschema
    assert engine_check({"type": "string"}, "draft6", True)("\ud800") is False  # unreadable: jsonschema decides
    # It would read inf and nan as null: pydantic takes NaN and 1e999 from JSON, TOML has inf.
    assert engine_check({"properties": {"c": {"maximum": 0}}}, "draft7", True)({"c": float("inf")}) is False
    assert engine_check({"enum": [float("inf")]}, "draft7", True) is None
    assert engine_check({"const": datetime.date(1979, 5, 27)}, "draft7", True) is None  # TOML has dates


def test_the_compiled_engine_takes_the_read_only_schemas_a_context_holds():
    """The tasks table's schemas reach the validator read-only (its lists are not plain lists):
    the engine, which reads plain ones only, gets a copy, and still answers."""
    pytest.importorskip("jsonschema_rs")
    schema = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["yes", "no"]}}}
    context = loopai.ValidationContext(output_schema=schema)
    assert type(context.output_schema["required"]) is not list  # read-only, as the host hands it over
    check = engine_check(context.output_schema, "draft2020-12", True)
    assert check is not None
    assert (check({"label": "yes"}), check({"label": "maybe"})) == (True, False)


def test_keywords_outside_the_subset_send_the_whole_schema_to_jsonschema():
    for schema in (
        {"properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {}}},
        {"type": "object", "patternProperties": {"^x": {}}, "additionalProperties": False},
        {"items": [{"type": "string"}]},
        {"type": "number", "multipleOf": 0.1},
        {"oneOf": [{"type": "string"}, {"type": "null"}]},
        {"properties": {"a": {"$schema": "http://json-schema.org/draft-04/schema#"}}},
        False,
    ):
        assert compile_check(schema, "draft2020-12", None) is None, schema
    assert compile_check({"type": "string"}, "draft3", None) is None


@pytest.mark.parametrize(
    ("schema", "valid", "unsure"),
    [
        ({"type": "integer"}, 3, 3.0),  # 3.0 is an integer to draft 6+: jsonschema decides
        ({"type": "number", "minimum": 0}, 0.5, True),  # a boolean is not a number
        ({"enum": [1, "x"]}, 1.0, True),  # 1.0 equals 1; true does not
        ({"const": False}, False, 0),
        ({"type": "string", "format": "ipv4"}, "10.0.0.1", "10.0.0.300"),
        (
            {"required": ["a", "b"], "additionalProperties": False, "properties": {"a": {}, "b": {}}},
            {"a": 1, "b": 2},
            {"a": 1},
        ),
    ],
)
def test_common_instances_take_the_fast_path_and_doubtful_ones_do_not(schema, valid, unsure):
    check = compile_check(schema, "draft2020-12", lambda: jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert check is not None
    assert check(valid) is True
    assert check(unsure) is False


def test_the_validator_reports_the_same_errors_with_and_without_the_fast_path():
    schema = {
        "type": "object",
        "required": ["label", "confidence"],
        "additionalProperties": False,
        "properties": {"label": {"enum": ["positive", "negative"]}, "confidence": {"type": "number", "maximum": 1}},
    }
    context = loopai.ValidationContext(output_schema=schema)
    plugin = JsonSchemaValidator()
    ids = {"program_id": uuid.uuid4(), "task_id": uuid.uuid4(), "input": {}}
    good = loopai.ExecutionRecord(**ids, output={"label": "positive", "confidence": 0.5})
    bad = loopai.ExecutionRecord(**ids, output={"label": "positve", "confidence": 1.5, "extra": True})
    assert plugin.validate(good, context).is_valid
    result = plugin.validate(bad, context)
    assert not result.is_valid
    assert sorted(result.errors) == ["$.output", "$.output.confidence", "$.output.label"]
    assert "'positve' is not one of ['positive', 'negative']" in result.errors["$.output.label"]
