"""How names are written: plugin names in kebab-case, setting keys in snake_case."""

from __future__ import annotations

import re

__all__ = ["kebab", "snake"]


def kebab(name: str) -> str:
    """``BusinessRuleValidator`` becomes ``business-rule-validator``; an acronym is one word:
    ``HTTPWebhookHandler`` becomes ``http-webhook-handler``, ``MyV2Validator`` ``my-v2-validator``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def snake(key: str) -> str:
    """``SamplingRate`` and ``samplingRate`` become ``sampling_rate``; snake stays snake."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).replace("-", "_").lower()
