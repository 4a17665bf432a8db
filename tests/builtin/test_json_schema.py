"""json-schema-validator: schemas by path, drafts, formats, expected output, failed runs, bad schemas, cache."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
from pathlib import Path

import jsonschema
import pytest

import loopai
import loopai_builtin._schema_cache as schema_module
from loopai_builtin import JsonSchemaValidator

OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["label", "score"],
    "properties": {
        "label": {"type": "string", "enum": ["spam", "ham"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
INPUT_SCHEMA = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}}


def check(validator, execution, **context):
    return validator.validate(execution, loopai.ValidationContext(**context))


def test_valid_output_and_input_through_a_host(record, make_host):
    validator = JsonSchemaValidator()
    context = loopai.ValidationContext(input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA)
    execution = record(input={"text": "win money"}, output={"label": "spam", "score": 0.93})
    with make_host(validator) as host:
        report = host.validate(execution, context)
        again = asyncio.run(host.avalidate(execution, context))
    assert report.is_valid and again.is_valid and not report.failures
    (result,) = report.results
    assert result.validator_type == "json-schema-validator"
    assert result.errors == {}
    assert result.message.startswith("valid")
    assert result.duration_ms > 0
    assert result.metadata["checks"] == ["status", "input_schema", "output_schema"]
    assert result.metadata["output_schema_draft"] == "https://json-schema.org/draft/2020-12/schema"


def test_output_errors_are_keyed_by_json_path(record):
    execution = record(output={"label": 7, "score": 3, "tags": ["ok", 5]})
    result = check(JsonSchemaValidator(), execution, output_schema=OUTPUT_SCHEMA)
    assert not result.is_valid
    assert set(result.errors) == {"$.output.label", "$.output.score", "$.output.tags[1]"}
    assert any("is not of type 'string'" in m for m in result.errors["$.output.label"])
    assert result.errors["$.output.score"] == ["3 is greater than the maximum of 1"]
    assert "output does not match output_schema" in result.message


def test_a_missing_required_property_is_keyed_by_itself(record):
    result = check(JsonSchemaValidator(), record(output={"label": "spam"}), output_schema=OUTPUT_SCHEMA)
    assert result.errors == {"$.output.score": ["'score' is a required property"]}


def test_input_errors_are_keyed_under_input(record):
    execution = record(input={"text": ""}, output={"label": "ham", "score": 0.1})
    result = check(JsonSchemaValidator(), execution, input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA)
    assert not result.is_valid
    assert list(result.errors) == ["$.input.text"]
    assert len(result.errors["$.input.text"]) == 1  # "should be non-empty" or "is too short", by version
    assert "input does not match input_schema" in result.message


# A draft-07 schema ignores keywords beside "$ref"; draft 2020-12 applies them.
REF_WITH_SIBLING = {"definitions": {"anything": {}}, "$ref": "#/definitions/anything", "maxLength": 3}


@pytest.mark.parametrize(
    ("declared", "valid", "draft"),
    [
        (None, False, "https://json-schema.org/draft/2020-12/schema"),
        ("https://json-schema.org/draft/2020-12/schema", False, "https://json-schema.org/draft/2020-12/schema"),
        ("http://json-schema.org/draft-07/schema#", True, "http://json-schema.org/draft-07/schema#"),
        ("https://json-schema.org/draft-07/schema", True, "http://json-schema.org/draft-07/schema#"),
    ],
)
def test_the_draft_is_picked_by_dollar_schema(record, declared, valid, draft):
    schema = dict(REF_WITH_SIBLING)
    if declared is not None:
        schema["$schema"] = declared
    result = check(JsonSchemaValidator(), record(output="too long"), output_schema=schema)
    assert result.is_valid is valid, result.errors
    assert result.metadata["output_schema_draft"] == draft


def test_an_unknown_dollar_schema_is_validated_as_2020_12_and_noted(record):
    schema = {"$schema": "https://example.com/my-meta", "type": "integer"}
    result = check(JsonSchemaValidator(), record(output="x"), output_schema=schema)
    assert not result.is_valid
    assert "not a draft jsonschema knows" in result.metadata["notes"][0]


@pytest.mark.parametrize(("settings", "valid"), [({}, False), ({"format_checking": False}, True)])
def test_format_checking_is_a_setting(record, settings, valid):
    schema = {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
    result = check(JsonSchemaValidator(settings), record(output={"email": "not an address"}), output_schema=schema)
    assert result.is_valid is valid
    if not valid:
        assert result.errors == {"$.output.email": ["'not an address' is not a 'email'"]}


def test_seed_style_setting_names_are_accepted():
    assert JsonSchemaValidator({"FormatChecking": False}).config.format_checking is False
    with pytest.raises(loopai.PluginSettingsError, match="format_cheking: is not a known setting"):
        JsonSchemaValidator({"format_cheking": False})


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"label": "spam", "score": 1}', {"score": 1.0, "label": "spam"}),  # a JSON string vs the value
        ({"label": "spam"}, '{"label":"spam"}'),
        ('{"a": [1, 2]}', '{ "a" : [1,2] }'),  # not a raw text comparison
        ("plain words", "plain words"),
        ([1, 2.0], [1.0, 2]),
    ],
)
def test_expected_output_is_compared_as_parsed_json(record, output, expected):
    result = check(JsonSchemaValidator(), record(output=output), expected_output=expected)
    assert result.is_valid, result.errors
    assert "expected_output" in result.metadata["checks"]


@pytest.mark.parametrize(
    ("output", "expected", "path"),
    [
        ({"label": "ham"}, {"label": "spam"}, "$.output.label"),
        ({"ok": 1}, {"ok": True}, "$.output.ok"),  # true is not 1 in JSON
        ('{"items": [1, 3]}', {"items": [1, 2]}, "$.output.items[1]"),
        ({"a": 1}, {"a": 1, "b": 2}, "$.output.b"),
        ("yes", "no", "$.output"),
    ],
)
def test_expected_output_differences_name_the_path(record, output, expected, path):
    result = check(JsonSchemaValidator(), record(output=output), expected_output=expected)
    assert not result.is_valid
    assert path in result.errors
    assert "differs from expected_output" in result.message


def test_null_output_of_a_successful_run_is_invalid(record):
    result = check(JsonSchemaValidator(), record(output=None), output_schema=OUTPUT_SCHEMA)
    assert not result.is_valid
    assert result.errors == {"$.output": ["output is null, but the run reported success"]}
    assert "output is null" in result.message


def test_null_output_may_be_allowed_and_is_then_checked_by_the_schema(record):
    validator = JsonSchemaValidator({"allow_null_output": True})
    assert check(validator, record(output=None), output_schema={"type": ["object", "null"]}).is_valid
    assert not check(validator, record(output=None), output_schema={"type": "object"}).is_valid


@pytest.mark.parametrize(
    ("status", "words"), [("error", "the run failed (status error)"), ("timeout", "the run timed out (status timeout)")]
)
def test_a_failed_run_is_invalid_with_its_error_message(record, status, words):
    execution = record(status=status, error_message="ZeroDivisionError: division by zero", output=None)
    result = check(JsonSchemaValidator(), execution, output_schema=OUTPUT_SCHEMA)
    assert not result.is_valid
    assert result.errors["$.status"] == [f"{words}: ZeroDivisionError: division by zero"]
    assert "ZeroDivisionError: division by zero" in result.message


def test_an_invalid_schema_gives_an_invalid_result_naming_the_problem(record, make_host):
    with make_host(JsonSchemaValidator()) as host:
        report = host.validate(
            record(output={"label": "spam"}),
            loopai.ValidationContext(output_schema={"type": "object", "properties": {"label": {"type": "strng"}}}),
        )
    assert not report.failures  # a verdict of the validator, not a crash
    (result,) = report.results
    assert not result.is_valid
    assert "output_schema is not a valid JSON Schema" in result.message
    assert "output_schema.properties.label.type" in result.message
    assert list(result.errors) == ["$.output_schema.properties.label.type"]


def test_a_non_string_dollar_schema_is_a_schema_problem(record):
    result = check(JsonSchemaValidator(), record(output=1), output_schema={"$schema": 7, "type": "integer"})
    assert result.errors == {"$.output_schema.$schema": ["invalid schema: $schema must be a URI string, got int"]}


def test_an_unresolvable_reference_is_named(record):
    result = check(JsonSchemaValidator(), record(output=1), output_schema={"$ref": "#/$defs/missing"})
    assert not result.is_valid
    assert "cannot be resolved" in result.message
    assert "$.output_schema" in result.errors


def test_a_schema_is_compiled_once_for_equal_documents(record, monkeypatch):
    validator = JsonSchemaValidator()
    compiled = []
    original = schema_module.compile_schema
    monkeypatch.setattr(schema_module, "compile_schema", lambda *a: compiled.append(a) or original(*a))
    for index in range(50):
        schema = dict(reversed(OUTPUT_SCHEMA.items())) if index % 2 else dict(OUTPUT_SCHEMA)  # equal, other order
        assert check(validator, record(output={"label": "ham", "score": 0.5}), output_schema=schema).is_valid
    assert len(compiled) == 1
    info = validator.cache_info()
    assert (info.hits, info.misses, info.currsize) == (49, 1, 1)


def test_the_cache_is_bounded_least_recently_used_first(record):
    validator = JsonSchemaValidator({"cache_size": 2})
    schemas = [{"type": "integer", "minimum": n} for n in range(3)]
    for schema in schemas:
        check(validator, record(output=5), output_schema=schema)
    assert validator.cache_info().currsize == 2
    check(validator, record(output=5), output_schema=schemas[2])  # still cached
    check(validator, record(output=5), output_schema=schemas[0])  # evicted: compiled again
    info = validator.cache_info()
    assert (info.hits, info.misses) == (1, 4)


@pytest.mark.parametrize(
    ("fmt", "bad", "good"),
    [
        ("date-time", "not a date", "2024-05-01T12:30:00Z"),
        ("email", "not an address", "ada@example.com"),
        ("uri", "not a uri", "https://example.com/a?b=c"),
        ("ipv4", "300.1.2.3", "10.0.0.1"),
        ("uuid", "not-a-uuid", "6f1c1f9e-3b0a-4c8e-9d8e-2f1a4b5c6d7e"),
    ],
)
def test_formats_are_enforced_with_a_plain_install(record, fmt, bad, good):
    # A plain install brings the format checkers: without them jsonschema skips these formats silently.
    required = {
        requirement.split(">")[0].split(";")[0].strip()
        for requirement in importlib.metadata.requires("loopai-builtin") or []
    }
    assert {"rfc3339-validator", "rfc3986-validator", "fqdn", "idna"} <= required
    schema = {"type": "object", "properties": {"value": {"type": "string", "format": fmt}}}
    validator = JsonSchemaValidator()
    result = check(validator, record(output={"value": bad}), output_schema=schema)
    assert result.errors == {"$.output.value": [f"{bad!r} is not a {fmt!r}"]}
    assert check(validator, record(output={"value": good}), output_schema=schema).is_valid


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        (  # a pattern the draft's meta-schema never sees (under a keyword it does not know), reached by $ref
            {"$ref": "#/x-defs/word", "x-defs": {"word": {"type": "string", "pattern": "\\p{L}+"}}},
            "pattern '\\\\p{L}+' is not a regular expression Python can compile",
        ),
        ({"$ref": "#"}, "recurses deeper than Python's stack allows"),
        (
            {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
            "recurses deeper than Python's stack allows",
        ),
    ],
    ids=["uncompilable-regex", "ref-to-itself", "ref-loop"],
)
def test_a_schema_that_cannot_be_applied_is_an_invalid_result_not_a_crash(record, make_host, schema, words):
    with make_host(JsonSchemaValidator()) as host:
        report = host.validate(record(output="text"), loopai.ValidationContext(output_schema=schema))
    assert not report.failures  # a verdict of the validator, not an exception the host caught
    (result,) = report.results
    assert not result.is_valid
    assert result.message.startswith("invalid: output_schema cannot be applied: ")
    assert words in result.message
    assert list(result.errors) == ["$.output_schema"]


def test_output_nested_200_deep_under_a_recursive_schema_is_a_verdict(record, make_host):
    tree = leaf = {}
    for _ in range(200):
        leaf["child"] = {}
        leaf = leaf["child"]
    schema = {"anyOf": [{"type": "integer"}, {"type": "object", "additionalProperties": {"$ref": "#"}}]}
    with make_host(JsonSchemaValidator()) as host:
        report = host.validate(record(output=tree), loopai.ValidationContext(output_schema=schema))
        shallow = host.validate(record(output={"child": {"child": 1}}), loopai.ValidationContext(output_schema=schema))
    assert not report.failures
    assert not report.is_valid and "recurses deeper" in report.results[0].message
    assert shallow.is_valid  # the same schema still works on ordinary output


@pytest.mark.parametrize("output", [{"label": "spam"}, 7, "text", [1, None]])
def test_boolean_schemas_accept_everything_or_nothing(record, make_host, output):
    validator = JsonSchemaValidator()
    with make_host(validator) as host:
        anything = host.validate(record(input=output, output=output), loopai.ValidationContext(output_schema=True))
        nothing = host.validate(
            record(input=output, output=output), loopai.ValidationContext(input_schema=False, output_schema=False)
        )
        again = host.validate(record(output=output), loopai.ValidationContext(output_schema=False))
    assert anything.is_valid and not anything.failures
    assert not nothing.is_valid and not nothing.failures
    assert nothing.results[0].errors == {
        "$.input": [f"False schema does not allow {output!r}"],
        "$.output": [f"False schema does not allow {output!r}"],
    }
    assert not again.is_valid
    assert validator.cache_info().currsize == 2  # true and false, each compiled once


def test_a_schema_that_is_not_an_object_or_a_boolean_is_refused_by_the_context():
    with pytest.raises(ValueError, match="output_schema"):
        loopai.ValidationContext(output_schema="true")


def test_the_readme_lists_exactly_the_formats_that_are_checked():
    readme = (Path(__file__).parents[2] / "loopai-builtin" / "README.md").read_text()
    listed = re.search(r"for drafts 2019-09 and 2020-12,(.*?); older drafts", readme, re.S)
    assert listed is not None
    names = set(re.findall(r"`([a-z0-9-]+)`", listed.group(1)))
    assert names == set(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
