"""{{ cookiecutter.description }}"""

from __future__ import annotations
{% if cookiecutter.kind == 'validator' %}
import time

import loopai
from pydantic import BaseModel, ConfigDict, Field

__version__ = "{{ cookiecutter.version }}"


class {{ cookiecutter.__class_name }}(loopai.ValidatorPlugin):
    """{{ cookiecutter.description }}

    Judges an execution valid when it succeeded and its output is a JSON object
    holding every key in ``required_keys``. Replace the rules in :meth:`validate`
    with your own and keep the contract: return a ``loopai.ValidationResult`` for
    any input, never raise.
    """

    name = "{{ cookiecutter.plugin_slug }}"
    description = "{{ cookiecutter.description }}"
    version = __version__
    author = "{{ cookiecutter.author }}"

    class Config(BaseModel):
        """Settings: ``[plugins.validators.{{ cookiecutter.plugin_slug }}.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        required_keys: list[str] = Field(
            default_factory=list, description="Keys the output object must have."
        )
        allow_failed: bool = Field(
            default=False, description="Judge executions that ended in error too."
        )

    config: Config

    def validate(
        self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext
    ) -> loopai.ValidationResult:
        started = time.perf_counter()
        errors: dict[str, list[str]] = {}
        failed = execution.status is not loopai.ExecutionStatus.SUCCESS
        if failed and not self.config.allow_failed:
            errors["status"] = [f"execution ended with status {execution.status}"]
        output = execution.output
        if self.config.required_keys:
            if not isinstance(output, dict):
                errors["output"] = [f"must be an object, not {type(output).__name__}"]
            else:
                for key in self.config.required_keys:
                    if key not in output:
                        errors[key] = ["is required"]
        return loopai.ValidationResult(
            is_valid=not errors,
            validator_type=self.name,
            message="ok" if not errors else f"{len(errors)} rule(s) broken",
            errors=errors,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
{% elif cookiecutter.kind == 'sampler' %}
import loopai
from pydantic import BaseModel, ConfigDict, Field

__version__ = "{{ cookiecutter.version }}"

_BUCKETS = 10_000


class {{ cookiecutter.__class_name }}(loopai.SamplerPlugin):
    """{{ cookiecutter.description }}

    Samples every execution that did not succeed, and a fixed fraction (``rate``) of
    the others. The execution id decides, not a random draw: every replica makes the
    same choice and a repeated call gets the same answer. Replace the rule in
    :meth:`should_sample` with your own and keep the contract: return a
    ``loopai.SamplingDecision`` for any input, never raise.
    """

    name = "{{ cookiecutter.plugin_slug }}"
    description = "{{ cookiecutter.description }}"
    version = __version__
    author = "{{ cookiecutter.author }}"

    class Config(BaseModel):
        """Settings: ``[plugins.samplers.{{ cookiecutter.plugin_slug }}.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        rate: float = Field(
            default=0.1,
            ge=0.0,
            le=1.0,
            description="Fraction of successful executions to sample.",
        )
        sample_failures: bool = Field(
            default=True, description="Always sample executions that did not succeed."
        )

    config: Config

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        failed = execution.status is not loopai.ExecutionStatus.SUCCESS
        if failed and self.config.sample_failures:
            return loopai.SamplingDecision(
                should_sample=True,
                reason=f"execution ended with status {execution.status}",
                sampler_type=self.name,
            )
        bucket = execution.id.int % _BUCKETS
        chosen = bucket < self.config.rate * _BUCKETS
        where = "in" if chosen else "outside"
        return loopai.SamplingDecision(
            should_sample=chosen,
            reason=f"{where} the sampled {self.config.rate:.2%} of executions",
            sampler_type=self.name,
            metadata={"bucket": bucket},
        )
{% else %}
import logging

import loopai
from pydantic import BaseModel, ConfigDict, Field

__version__ = "{{ cookiecutter.version }}"

log = logging.getLogger(__name__)

_RANK = {severity: rank for rank, severity in enumerate(loopai.EventSeverity)}


class {{ cookiecutter.__class_name }}(loopai.WebhookHandlerPlugin):
    """{{ cookiecutter.description }}

    Turns each event at or above ``min_severity`` into a one-line summary and
    delivers it (to the log, until you replace :meth:`deliver` with a real
    destination). In a dry run it only logs what it would deliver. Keep the contract:
    return None, and raise only when delivery failed, which makes the host retry.
    """

    name = "{{ cookiecutter.plugin_slug }}"
    description = "{{ cookiecutter.description }}"
    version = __version__
    author = "{{ cookiecutter.author }}"
    # Which events arrive at all (default: all 17); the host filters before calling.
    supported_events = frozenset(loopai.WebhookEventType)

    class Config(BaseModel):
        """Settings: ``[plugins.webhook_handlers.{{ cookiecutter.plugin_slug }}.configuration]``."""

        model_config = ConfigDict(extra="forbid")

        min_severity: loopai.EventSeverity = Field(
            default=loopai.EventSeverity.INFO,
            description="Events below this severity are ignored.",
        )
        prefix: str = Field(default="loopai", description="Starts every summary.")

    config: Config

    async def handle_event(
        self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext
    ) -> None:
        if _RANK[event.severity] < _RANK[self.config.min_severity]:
            return
        line = self.summarise(event)
        if context.is_dry_run:
            log.info("dry run, not delivered: %s", line)
            return
        await self.deliver(line, event)

    def summarise(self, event: loopai.WebhookEvent) -> str:
        """One line about ``event``: prefix, severity, type and task."""
        task = event.task_id or "-"
        severity, kind = event.severity, event.event_type
        return f"{self.config.prefix}: [{severity}] {kind} task={task}"

    async def deliver(self, line: str, event: loopai.WebhookEvent) -> None:
        """Send ``line`` where it belongs (HTTP, a queue...); raise if that fails. Until then: the
        log, at INFO (a warning per event would flood the output of ``loopai run``)."""
        log.info("%s", line)
{% endif -%}
