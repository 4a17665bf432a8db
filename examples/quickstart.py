"""Quickstart: a host built from configuration and installed plugins, validating and sampling records."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, Field

import loopai


class NonEmptyOutput(loopai.ValidatorPlugin):
    """A successful run must produce some output."""

    priority = 50

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        empty = execution.output in (None, "", [], {})
        return loopai.ValidationResult(is_valid=not empty, validator_type=self.name, message="empty" if empty else "ok")


class SlowRunSampler(loopai.SamplerPlugin):
    """Sample every run slower than a threshold (a typed setting)."""

    class Config(BaseModel):
        threshold_ms: float = Field(40.0, gt=0)

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        latency = execution.latency_ms or 0.0
        slow = latency > self.config.threshold_ms
        return loopai.SamplingDecision(should_sample=slow, reason=f"latency {latency:.0f} ms")


def records(count: int, seed: int = 7) -> list[loopai.ExecutionRecord]:
    """A few plausible runs of one program: some slow, one empty, one failed."""
    rng = random.Random(seed)
    task, program = uuid.UUID(int=1), uuid.UUID(int=2)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    out = []
    for i in range(count):
        status = loopai.ExecutionStatus.ERROR if i == 5 else loopai.ExecutionStatus.SUCCESS
        output = None if status is loopai.ExecutionStatus.ERROR else ("" if i == 3 else {"label": rng.choice("ab")})
        out.append(
            loopai.ExecutionRecord(
                task_id=task,
                program_id=program,
                input={"text": f"item {i}"},
                output=output,
                status=status,
                latency_ms=rng.uniform(5, 80),
                executed_at=start + timedelta(seconds=30 * i),
            )
        )
    return out


def main() -> None:
    """Build the host from ./loopai.toml (or defaults) plus two inline plugins, and run eight records."""
    host = loopai.Host(loopai.load_config(), discover=True, plugins=[NonEmptyOutput(), SlowRunSampler()])
    with host:
        names = [p.name for kind in (loopai.ValidatorPlugin, loopai.SamplerPlugin) for p in host.registry.list(kind)]
        print(f"plugins: {', '.join(names)}")
        for problem in host.problems:
            print(f"problem: {problem}")
        print(f"{'#':>2}  {'status':<8} {'latency':>8}  {'valid':<6} {'sampled':<8} why")
        for i, execution in enumerate(records(8)):
            report = host.validate(execution)
            sample = host.should_sample(execution)
            why = "; ".join(r.message for r in report.results if not r.is_valid) or sample.reason
            print(
                f"{i:>2}  {execution.status.value:<8} {execution.latency_ms or 0:>6.0f}ms  "
                f"{report.is_valid!s:<6} {sample.should_sample!s:<8} {why}"
            )
        stats = host.statistics(uuid.UUID(int=1))
        print(f"task statistics: {stats.total_executions} runs, {stats.sampled_executions} sampled")


if __name__ == "__main__":
    main()
