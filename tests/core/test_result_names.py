"""A result without its plugin's name gets it from the host: every result can be traced to its plugin."""

from __future__ import annotations

import asyncio
import uuid

import loopai

SHARED = loopai.ValidationResult(is_valid=True)
"""One result object returned by every call of two validators: it must not take either's name."""


class Anonymous(loopai.ValidatorPlugin):
    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return SHARED


class Named(loopai.ValidatorPlugin):
    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=False, validator_type="its-own")


class AsyncAnonymous(loopai.ValidatorPlugin):
    async def validate(
        self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext
    ) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=True)


class Yes(loopai.SamplerPlugin):
    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(should_sample=True)


class AsyncYes(loopai.SamplerPlugin):
    async def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(should_sample=True, sampler_type="")


def execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())


def test_validator_results_are_named_after_their_plugin_sync_and_async() -> None:
    host = loopai.Host(
        plugins=[Anonymous(name="first"), Anonymous(name="second"), Named(name="named"), AsyncAnonymous(name="later")],
        environ={},
    )
    for report in (host.validate(execution()), asyncio.run(host.avalidate(execution()))):
        assert [r.validator_type for r in report.results] == ["first", "later", "its-own", "second"]
    assert SHARED.validator_type == ""  # the plugin's object is left as it was


def test_the_sampling_decision_is_named_after_its_sampler_sync_and_async() -> None:
    for plugin in (Yes(name="yes"), AsyncYes(name="yes")):
        host = loopai.Host(plugins=[plugin], environ={})
        for report in (host.should_sample(execution()), asyncio.run(host.ashould_sample(execution()))):
            assert report.decision is not None and report.decision.sampler_type == "yes"


INVALID = loopai.ValidationResult(is_valid=False)


class AnonymousInvalid(loopai.ValidatorPlugin):
    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return INVALID


def test_a_run_stopped_at_the_first_failure_names_the_results_it_has() -> None:
    host = loopai.Host(
        plugins=[AnonymousInvalid(name="first", priority=2), Anonymous(name="second", priority=1)],
        environ={},
        stop_on_failure=True,
    )
    for report in (host.validate(execution()), asyncio.run(host.avalidate(execution()))):
        assert report.stopped_early and not report.is_valid
        assert [r.validator_type for r in report.results] == ["first"]
        assert report.to_dict()["results"][0]["validator_type"] == "first"
    assert INVALID.validator_type == ""
