"""A validator that checks business rules on an execution's output."""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable
from typing import Any, Literal

import loopai
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

__version__ = "0.1.0"

MISSING: Any = object()
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


class Range(BaseModel):
    """Bounds of a numeric field; either may be left out."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class Comparison(BaseModel):
    """A cross-field rule: ``field`` ``op`` ``other``, e.g. ``discount <= subtotal``."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, description="Path of the left-hand field.")
    op: Literal["<", "<=", "==", "!=", ">=", ">"]
    other: str = Field(min_length=1, description="Path of the right-hand field.")
    message: str = Field(
        default="", description="Said when the rule is broken (default: the rule)."
    )


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``customer.id``, ``items.0.price``), or ``MISSING``."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class BusinessRulesValidator(loopai.ValidatorPlugin):
    """Checks business rules on an execution's output.

    Rules, all from the settings (``Config``), each on a dotted field path of the output
    object:

    - ``required``: the field is present and not null;
    - ``ranges``: a present field is a number within ``min``/``max`` (inclusive);
    - ``allowed``: a present field has one of the listed values;
    - ``compare``: two present fields compare as stated (``discount <= subtotal``); numbers
      compare with numbers, text with text.

    Every broken rule is reported under its field's path in ``errors``. A run that did not
    succeed is invalid unless ``allow_failed``. It never raises: odd outputs (not an
    object, wrong types) are reported as broken rules.
    """

    name = "business-rules"
    description = (
        "Checks business rules: required fields, ranges, allowed values, cross-field rules."
    )
    version = __version__
    author = "Loopai"
    # After the json-schema-validator (100): with stop_on_failure, schema errors come first.
    priority = 50

    class Config(BaseModel):
        """Settings: ``[plugins.validators.business-rules.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        required: list[str] = Field(default_factory=list, description="Fields that must be set.")
        ranges: dict[str, Range] = Field(
            default_factory=dict, description="Numeric bounds by field."
        )
        allowed: dict[str, list[JsonValue]] = Field(
            default_factory=dict, description="Allowed values by field."
        )
        compare: list[Comparison] = Field(default_factory=list, description="Cross-field rules.")
        allow_failed: bool = Field(default=False, description="Judge failed executions too.")

        @property
        def rule_count(self) -> int:
            return len(self.required) + len(self.ranges) + len(self.allowed) + len(self.compare)

    config: Config

    def validate(
        self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext
    ) -> loopai.ValidationResult:
        started = time.perf_counter()
        errors: dict[str, list[str]] = {}
        if execution.status is not loopai.ExecutionStatus.SUCCESS and not self.config.allow_failed:
            errors["status"] = [f"execution ended with status {execution.status}"]
        elif self.config.rule_count:
            output = execution.output
            if isinstance(output, dict):
                self.check(output, errors)
            else:
                errors["output"] = [f"must be an object, not {type(output).__name__}"]
        return loopai.ValidationResult(
            is_valid=not errors,
            validator_type=self.name,
            message="ok" if not errors else f"{sum(map(len, errors.values()))} rule(s) broken",
            errors=errors,
            confidence_score=1.0,
            duration_ms=(time.perf_counter() - started) * 1000,
            metadata={"rules": self.config.rule_count},
        )

    def check(self, output: dict[str, Any], errors: dict[str, list[str]]) -> None:
        """Apply every rule to ``output``, adding what is broken to ``errors`` by field path."""
        config = self.config

        def broken(path: str, problem: str) -> None:
            errors.setdefault(path, []).append(problem)

        for path in config.required:
            if lookup(output, path) in (MISSING, None):
                broken(path, "is required")
        for path, bounds in config.ranges.items():
            value = lookup(output, path)
            if value in (MISSING, None):
                continue
            if not _is_number(value):
                broken(path, f"must be a number, got {type(value).__name__}")
            elif bounds.min is not None and value < bounds.min:
                broken(path, f"must be at least {bounds.min:g}, got {value:g}")
            elif bounds.max is not None and value > bounds.max:
                broken(path, f"must be at most {bounds.max:g}, got {value:g}")
        for path, values in config.allowed.items():
            value = lookup(output, path)
            if value is not MISSING and value not in values:
                broken(path, f"must be one of {values!r}, got {value!r}")
        for rule in config.compare:
            left, right = lookup(output, rule.field), lookup(output, rule.other)
            if left in (MISSING, None) or right in (MISSING, None):
                continue  # presence is what ``required`` is for
            comparable = (_is_number(left) and _is_number(right)) or (
                isinstance(left, str) and isinstance(right, str)
            )
            if not comparable:
                broken(rule.field, f"cannot be compared with {rule.other} ({left!r} vs {right!r})")
            elif not _COMPARE[rule.op](left, right):
                shown = f"must be {rule.op} {rule.other} ({left!r} vs {right!r})"
                broken(rule.field, rule.message or shown)
