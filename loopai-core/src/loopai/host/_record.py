"""What :meth:`loopai.Host.process` returns: everything one record went through."""

from __future__ import annotations

from dataclasses import dataclass, field

from loopai._report import EmitReport, SamplingReport, ValidationReport
from loopai.host._monitor import Observation

__all__ = ["RecordReport"]


@dataclass
class RecordReport:
    """One record's validation and sampling reports, what it raised, and the emits of those events
    that a handler takes (in the order raised)."""

    validation: ValidationReport
    sampling: SamplingReport
    observation: Observation
    emitted: list[EmitReport] = field(default_factory=list)
