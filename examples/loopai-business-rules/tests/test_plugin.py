"""Tests of BusinessRulesValidator: contract, behaviour, settings, packaging.

``loopai_host`` is a fixture of loopai's pytest plugin (installed with loopai-core).
"""

from __future__ import annotations

import importlib.metadata
import re

import loopai
import pytest
from loopai.testing import HostFactory, check_plugin, make_execution

from loopai_business_rules import BusinessRulesValidator
from loopai_business_rules.plugin import MISSING, lookup

LOOPAI_TOML = """
[plugins.validators.business-rules.configuration]
required = ["invoice_id", "total", "currency", "customer.id"]
allowed = { currency = ["EUR", "USD", "SEK"] }

[plugins.validators.business-rules.configuration.ranges]
total = { min = 0 }
discount = { min = 0, max = 0.5 }
"items.0.quantity" = { min = 1 }

[[plugins.validators.business-rules.configuration.compare]]
field = "subtotal"
op = "<="
other = "total"
message = "the subtotal cannot exceed the total"

[[plugins.validators.business-rules.configuration.compare]]
field = "due_date"
op = ">="
other = "issue_date"
"""

GOOD_INVOICE = {
    "invoice_id": "INV-1",
    "customer": {"id": "C-9"},
    "currency": "EUR",
    "subtotal": 100.0,
    "total": 121.0,
    "discount": 0.1,
    "issue_date": "2025-03-01",
    "due_date": "2025-03-31",
    "items": [{"sku": "A", "quantity": 2}],
}

SETTINGS = {
    "required": ["total"],
    "ranges": {"total": {"min": 0, "max": 1e6}},
    "allowed": {"currency": ["EUR"]},
    "compare": [{"field": "subtotal", "op": "<=", "other": "total"}],
}


def test_keeps_the_plugin_contract() -> None:
    check_plugin(BusinessRulesValidator)
    check_plugin(BusinessRulesValidator, settings=SETTINGS)


def test_accepts_an_output_that_keeps_every_rule(loopai_host: HostFactory) -> None:
    host = loopai_host(BusinessRulesValidator(), config=LOOPAI_TOML)
    report = host.validate(make_execution(output=GOOD_INVOICE))
    assert report.is_valid, report.to_dict()
    assert report.results[0].metadata == {"rules": 10}


def test_reports_every_broken_rule_by_field(loopai_host: HostFactory) -> None:
    host = loopai_host(BusinessRulesValidator(), config=LOOPAI_TOML)
    invoice = {
        **GOOD_INVOICE,
        "customer": {},
        "currency": "GBP",
        "total": 90.0,
        "discount": 0.75,
        "due_date": "2025-02-01",
        "items": [{"sku": "A", "quantity": 0}],
    }
    del invoice["invoice_id"]
    result = host.validate(make_execution(output=invoice)).results[0]
    assert not result.is_valid
    assert result.errors == {
        "invoice_id": ["is required"],
        "customer.id": ["is required"],
        "discount": ["must be at most 0.5, got 0.75"],
        "items.0.quantity": ["must be at least 1, got 0"],
        "currency": ["must be one of ['EUR', 'USD', 'SEK'], got 'GBP'"],
        "subtotal": ["the subtotal cannot exceed the total"],
        "due_date": ["must be >= issue_date ('2025-02-01' vs '2025-03-01')"],
    }
    assert result.message == "7 rule(s) broken"


def test_wrong_types_are_broken_rules_not_crashes() -> None:
    validator = BusinessRulesValidator(SETTINGS)
    context = loopai.ValidationContext()
    odd = {"total": "a lot", "currency": ["EUR"], "subtotal": [12]}
    result = validator.validate(make_execution(output=odd), context)
    assert result.errors == {
        "total": ["must be a number, got str"],
        "currency": ["must be one of ['EUR'], got ['EUR']"],
        "subtotal": ["cannot be compared with total ([12] vs 'a lot')"],
    }
    not_an_object = validator.validate(make_execution(output=[1, 2]), context)
    assert not_an_object.errors == {"output": ["must be an object, not list"]}


def test_a_failed_execution_is_invalid_unless_allowed() -> None:
    failed = make_execution(output=None, status="error")
    context = loopai.ValidationContext()
    assert "status" in BusinessRulesValidator().validate(failed, context).errors
    lenient = BusinessRulesValidator({"allow_failed": True})
    assert lenient.validate(failed, context).is_valid  # no rules: nothing to break


def test_stops_early_behind_a_failing_validator(loopai_host: HostFactory) -> None:
    class AlwaysInvalid(loopai.ValidatorPlugin):
        priority = 100

        def validate(self, execution, context):
            return loopai.ValidationResult(is_valid=False, validator_type=self.name)

    host = loopai_host(AlwaysInvalid(), BusinessRulesValidator(), stop_on_failure=True)
    report = host.validate(make_execution())
    assert report.stopped_early and [r.validator_type for r in report.results] == ["always-invalid"]


def test_lookup_follows_dotted_paths() -> None:
    document = {"a": {"b": [{"c": 1}]}}
    assert lookup(document, "a.b.0.c") == 1
    for path in ("a.x", "a.b.1.c", "a.b.c", "a.b.0.c.d"):
        assert lookup(document, path) is MISSING


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"required_fields": ["x"]}, "required_fields"),
        ({"ranges": {"total": {"min": 10, "max": 1}}}, "min (10) is above max (1)"),
        ({"compare": [{"field": "a", "op": "=<", "other": "b"}]}, "op"),
        ({"ranges": {"total": {"minimum": 0}}}, "minimum"),
    ],
)
def test_settings_are_checked(settings: dict[str, object], field: str) -> None:
    with pytest.raises(loopai.PluginSettingsError, match=re.escape(field)):
        BusinessRulesValidator(settings)


def test_is_installed_as_an_entry_point() -> None:
    group, name = "loopai.validators", "business-rules"
    found = importlib.metadata.entry_points(group=group, name=name)
    assert [entry_point.load() for entry_point in found] == [BusinessRulesValidator]
