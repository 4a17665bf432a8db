"""Checks business rules on an execution's output (a loopai validator plugin)."""

from loopai_business_rules.plugin import BusinessRulesValidator, __version__

__all__ = ["BusinessRulesValidator", "__version__"]
