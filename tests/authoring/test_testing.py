"""loopai.testing: the pytest plugin's fixtures, the factories, and the contract checks on good and broken plugins."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
import types
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

import loopai
from loopai.testing import (
    PROGRAM_ID,
    TASK_ID,
    HostFactory,
    PluginContractNote,
    check_plugin,
    check_sampler,
    check_settings,
    check_validator,
    check_webhook_handler,
    make_event,
    make_execution,
    make_handler_context,
    make_sampling_context,
    make_validation_context,
    odd_events,
    odd_executions,
)

pytest_plugins = ["pytester"]


# -- good plugins ------------------------------------------------------------------------


class GoodValidator(loopai.ValidatorPlugin):
    version = "1.0.0"

    class Config(BaseModel):
        required: list[str] = Field(default_factory=list)

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        output = execution.output
        missing = [k for k in self.config.required if not isinstance(output, dict) or k not in output]
        return loopai.ValidationResult(
            is_valid=not missing, validator_type=self.name, errors={k: ["missing"] for k in missing}
        )


class AsyncSampler(loopai.SamplerPlugin):
    version = "2.0.0"

    async def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        await asyncio.sleep(0)
        return loopai.SamplingDecision(should_sample=execution.status != "success", sampler_type=self.name)


class AsyncHandler(loopai.WebhookHandlerPlugin):
    version = "0.3.0"
    supported_events = frozenset({"program.execution.failed", "ValidationFailed"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    async def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        if not context.is_dry_run:
            self.sent.append(str(event.event_type))


class NeedsUrl(loopai.WebhookHandlerPlugin):
    """Settings without defaults: checked with example settings."""

    version = "1.0.0"

    class Config(BaseModel):
        url: str

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        assert context.configuration["url"].startswith("https://")


def module_plugin() -> types.ModuleType:
    module = types.ModuleType("loopai_test_module_plugin")
    module.version = "1.2.3"  # type: ignore[attr-defined]

    @loopai.hookimpl
    def validate(execution: loopai.ExecutionRecord) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=execution.output is not None)

    module.validate = validate  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    "plugin",
    [GoodValidator, GoodValidator({"required": ["result"]}), AsyncSampler, AsyncSampler(), AsyncHandler()],
    ids=["validator class", "validator instance", "async sampler class", "async sampler", "async handler"],
)
def test_good_plugins_pass(plugin: object) -> None:
    check_plugin(plugin)


def test_a_module_of_hookimpls_passes() -> None:
    check_plugin(module_plugin())
    check_validator(module_plugin())


def test_settings_without_defaults_are_checked_with_example_settings() -> None:
    check_webhook_handler(NeedsUrl, settings={"url": "https://example.invalid/hook"})
    with pytest.raises(AssertionError, match=r"NeedsUrl\(\) refused its default settings"):
        check_plugin(NeedsUrl)


def test_handlers_are_called_in_dry_run_by_default() -> None:
    handler = AsyncHandler()
    check_plugin(handler)
    assert handler.sent == []
    check_plugin(handler, dry_run=False)
    assert set(handler.sent) == {"program.execution.failed", "validation.failed"}


def test_a_disabled_plugin_is_checked_and_stays_disabled() -> None:
    plugin = GoodValidator(enabled=False)
    check_plugin(plugin)
    assert plugin.enabled is False


def test_checks_work_from_async_code() -> None:
    async def inside_a_loop() -> None:
        check_plugin(AsyncSampler)

    asyncio.run(inside_a_loop())


def test_a_good_plugin_is_checked_quickly() -> None:
    started = time.perf_counter()
    check_plugin(GoodValidator)
    assert time.perf_counter() - started < 5


# -- broken plugins ----------------------------------------------------------------------


def contract_failure(plugin: object, **options: Any) -> AssertionError:
    with pytest.raises(AssertionError) as info:
        check_plugin(plugin, **options)
    return info.value


class ReturnsDict(loopai.ValidatorPlugin):
    version = "1.0.0"

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> Any:
        return {"is_valid": True}


def test_a_wrong_return_type_is_named() -> None:
    error = contract_failure(ReturnsDict)
    text = str(error)
    where = f"{ReturnsDict.__module__}.ReturnsDict"
    assert text.startswith(f"validator 'returns-dict' ({where}) breaks loopai's plugin contract (1 problem(s)):")
    assert "validate returned dict, but it must return loopai.ValidationResult" in text
    assert "case(s): ordinary, ordinary context" in text


class CrashesOnNone(loopai.ValidatorPlugin):
    version = "1.0.0"

    async def validate(
        self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext
    ) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=execution.output["result"] == "ok")  # type: ignore[call-overload, index]


def test_a_crash_on_odd_input_is_named_with_its_cases_and_chained() -> None:
    error = contract_failure(CrashesOnNone)
    text = str(error)
    assert "validate raised TypeError: 'NoneType' object is not subscriptable" in text
    assert "output=None, ordinary context" in text
    assert "validate raised KeyError: 'result'" in text  # the empty object
    assert isinstance(error.__cause__, TypeError)


class UnicodeHater(loopai.SamplerPlugin):
    version = "1.0.0"

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        str(execution.input).encode("ascii")
        return loopai.SamplingDecision(should_sample=False)


def test_unicode_input_is_exercised() -> None:
    assert "should_sample raised UnicodeEncodeError" in str(contract_failure(UnicodeHater))


class ReturnsFalse(loopai.WebhookHandlerPlugin):
    version = "1.0.0"

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> Any:
        return False  # the C# habit: "not delivered"


def test_a_handler_returning_a_value_is_refused() -> None:
    text = str(contract_failure(ReturnsFalse))
    assert "handle_event returned bool, but it must return None" in text
    # Cases are counted, not listed whole: 17 types and 9 odd events, first try and last retry.
    assert "[52 case(s): " in text and "; and 49 more]" in text


class Unversioned(loopai.ValidatorPlugin):
    name = "my plugin"

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=True)


def test_identity_problems_are_listed_together() -> None:
    text = str(contract_failure(Unversioned, strict=True))
    assert "(2 problem(s))" in text
    assert "name 'my plugin' must be usable as an entry point name and a bare TOML key" in text
    assert "version is not set (got '0.0.0')" in text


def test_a_missing_version_is_a_note_unless_strict() -> None:
    text = str(contract_failure(Unversioned))
    assert "(1 problem(s))" in text
    problems, note = text.split("\nand, not a failure:\n")
    assert "version is not set" not in problems and "version is not set (got '0.0.0')" in note


class NonEmpty(loopai.ValidatorPlugin):
    """The README's first plugin: ten lines, no version."""

    name = "non-empty"
    priority = 100

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        ok = execution.output not in (None, "", [], {})
        return loopai.ValidationResult(is_valid=ok, validator_type=self.name)


def test_an_unversioned_plugin_passes_with_a_note() -> None:
    with pytest.warns(PluginContractNote, match=r"validator 'non-empty' .*: version is not set") as notes:
        check_plugin(NonEmpty)
    assert [note.filename for note in notes] == [__file__]
    with pytest.warns(PluginContractNote):
        check_validator(NonEmpty)
    assert "version is not set" in str(contract_failure(NonEmpty, strict=True))
    with pytest.raises(AssertionError, match="version is not set"):
        check_validator(NonEmpty, strict=True)


def test_the_note_does_not_fail_a_project_that_turns_warnings_into_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_unversioned=textwrap.dedent(
            """
            import loopai
            from loopai.testing import check_plugin

            class NonEmpty(loopai.ValidatorPlugin):
                name = "non-empty"

                def validate(self, execution, context):
                    return loopai.ValidationResult(is_valid=execution.output is not None)

            def test_contract():
                check_plugin(NonEmpty)
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PluginContractNote: validator 'non-empty'*version is not set*"])


def test_an_invalid_version_is_named() -> None:
    plugin = GoodValidator()
    plugin.version = "one"
    assert "version 'one' is not a valid PEP 440 version" in str(contract_failure(plugin))


class TypoTolerant(loopai.ValidatorPlugin):
    version = "1.0.0"

    class Config(BaseModel):
        level: int = 1

        @model_validator(mode="before")
        @classmethod
        def drop_unknown(cls, data: Any) -> Any:
            return {k: v for k, v in data.items() if k in cls.model_fields} if isinstance(data, dict) else data

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=True)


def test_a_settings_model_that_swallows_unknown_keys_is_refused() -> None:
    text = str(contract_failure(TypoTolerant))
    assert "TypoTolerant.Config accepted an unknown key" in text
    with pytest.raises(AssertionError, match="accepted an unknown key"):
        check_settings(TypoTolerant)


class Unwritable(loopai.SamplerPlugin):
    version = "1.0.0"

    class Config(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        lock: Any = Field(default_factory=threading.Lock)

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(should_sample=False)


def test_settings_that_cannot_be_written_in_toml_are_refused() -> None:
    assert "do not survive a JSON round trip" in str(contract_failure(Unwritable))


class NotAModel(loopai.ValidatorPlugin):
    version = "1.0.0"
    Config = dict  # type: ignore[assignment]

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult(is_valid=True)


def test_a_config_that_is_not_a_pydantic_model_is_named() -> None:
    assert "Config must be a pydantic model" in str(contract_failure(NotAModel))


class Slow(loopai.ValidatorPlugin):
    version = "1.0.0"

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        time.sleep(0.002)
        return loopai.ValidationResult(is_valid=True)


def test_a_slow_hook_is_named() -> None:
    assert "validate took longer than 0.001 s" in str(contract_failure(Slow, max_seconds=0.001))


class DefaultOutOfBounds(loopai.SamplerPlugin):
    version = "1.0.0"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        rate: float = Field(default=5.0, ge=0, le=1)

    def should_sample(
        self, execution: loopai.ExecutionRecord, context: loopai.SamplingContext
    ) -> loopai.SamplingDecision:
        return loopai.SamplingDecision(should_sample=False)


def test_a_default_that_breaks_its_own_constraint_is_named_as_such() -> None:
    failure = str(contract_failure(DefaultOutOfBounds))

    assert "DefaultOutOfBounds.Config: a default breaks its own field's constraints; fix the default" in failure
    assert "DefaultOutOfBounds.Config.rate: must be <= 1 (got 5.0)" in failure
    assert "JSON round trip" not in failure
    assert "refused its default settings" not in failure  # said once, as a default to fix


def test_a_default_that_breaks_its_own_constraint_is_refused_where_it_is_used() -> None:
    """As a host refuses a wrong value: pydantic alone would let the default through, unvalidated."""
    with pytest.raises(loopai.PluginSettingsError) as refused:
        DefaultOutOfBounds()
    set_in_code = DefaultOutOfBounds({"rate": 0.5})

    assert refused.value.problems == [
        "default-out-of-bounds.rate: must be <= 1 (got 5.0): that is the default of DefaultOutOfBounds.Config.rate, "
        "which breaks its own field's constraints; set rate in the configuration, or fix the default in the plugin "
        "(or ask its maintainers to)"
    ]
    assert set_in_code.config.rate == 0.5
    with pytest.raises(loopai.PluginSettingsError, match=r"that is the default of DefaultOutOfBounds\.Config\.rate"):
        set_in_code.configure({})


class Hangs(loopai.ValidatorPlugin):
    version = "1.0.0"

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        time.sleep(3600)
        return loopai.ValidationResult(is_valid=True)


def test_a_hook_that_hangs_is_named_and_the_check_ends() -> None:
    started = time.monotonic()

    failure = str(contract_failure(Hangs, max_seconds=0.2))

    assert time.monotonic() - started < 10  # not the hour the hook would take
    assert "validate did not return within 1.4 s: every record would wait for it" in failure
    assert "give the plugin a timeout" in failure


class HangsWithATimeout(Hangs):
    timeout = 0.1


def test_a_hook_that_hangs_despite_its_timeout_is_not_told_to_get_one() -> None:
    failure = str(contract_failure(HangsWithATimeout, max_seconds=0.2))

    assert "its timeout (0.1 s) only makes the host give up on each call, failing it: fix the hook" in failure
    assert "give the plugin a timeout" not in failure


class WrongSignature(loopai.ValidatorPlugin):
    version = "1.0.0"

    def validate(self, execution: loopai.ExecutionRecord, ctx: loopai.ValidationContext) -> loopai.ValidationResult:  # type: ignore[override]
        return loopai.ValidationResult(is_valid=True)


def test_a_signature_the_host_refuses_is_named() -> None:
    text = str(contract_failure(WrongSignature))
    assert "cannot be registered" in text
    assert "validate(execution, context)" in text


class FailsToStart(GoodValidator):
    def startup(self, host: loopai.Host) -> None:
        raise ConnectionError("database is down")


def test_a_startup_failure_in_a_host_is_named() -> None:
    text = str(contract_failure(FailsToStart))
    assert "in a host:" in text
    assert "ConnectionError: database is down" in text


class Constructed(loopai.ValidatorPlugin):
    """A plugin whose result bypasses validation."""

    version = "1.0.0"

    def validate(self, execution: loopai.ExecutionRecord, context: loopai.ValidationContext) -> loopai.ValidationResult:
        return loopai.ValidationResult.model_construct(is_valid="maybe")


def test_a_result_built_without_validation_is_checked() -> None:
    assert "validate returned an invalid or unserialisable ValidationResult" in str(contract_failure(Constructed))


class NoEvents(loopai.WebhookHandlerPlugin):
    version = "1.0.0"
    supported_events = ()

    def handle_event(self, event: loopai.WebhookEvent, context: loopai.WebhookHandlerContext) -> None:
        return None


def test_a_handler_that_takes_no_event_is_named() -> None:
    assert "supported_events is empty" in str(contract_failure(NoEvents))


def test_the_per_kind_checks_refuse_another_kind() -> None:
    with pytest.raises(AssertionError, match=r"sampler 'async-sampler' .* is not a validator"):
        check_validator(AsyncSampler)
    with pytest.raises(AssertionError, match="does not implement the sampler hook"):
        check_sampler(module_plugin())
    with pytest.raises(AssertionError, match="is not a webhook-handler"):
        check_webhook_handler(GoodValidator())


def test_a_class_that_is_not_a_plugin_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a loopai plugin class"):
        check_plugin(dict)


# -- factories ---------------------------------------------------------------------------


def test_make_execution_defaults_are_stable_and_valid() -> None:
    first, second = make_execution(), make_execution()
    assert first.task_id == second.task_id == TASK_ID
    assert first.program_id == PROGRAM_ID
    assert first.id != second.id
    assert first.output == {"result": "ok"} and first.input == {"text": "hello"}
    assert first.status is loopai.ExecutionStatus.SUCCESS and first.error_message is None


def test_make_execution_takes_odd_values() -> None:
    assert make_execution(output=None).output is None
    failed = make_execution(status="error")
    assert failed.status is loopai.ExecutionStatus.ERROR and failed.error_message == "simulated error"
    assert make_execution(status="timeout", error_message=None).error_message is None
    chosen = UUID(int=7)
    assert make_execution(id=chosen, task_id=str(chosen)).task_id == chosen
    with pytest.raises(ValueError):
        make_execution(latency_ms=-1)


def test_contexts_and_events() -> None:
    assert make_validation_context().task_id == TASK_ID
    assert make_validation_context(expected_output=[1]).expected_output == [1]
    sampling = make_sampling_context(0.5, total_executions=3)
    assert (sampling.sampling_rate, sampling.total_executions, sampling.task_id) == (0.5, 3, TASK_ID)
    event = make_event("ProgramExecutionFailed", severity="error")
    assert event.event_type is loopai.WebhookEventType.PROGRAM_EXECUTION_FAILED
    assert event.payload == {"message": "simulated program.execution.failed"}
    assert (event.task_id, event.program_id) == (TASK_ID, PROGRAM_ID)
    context = make_handler_context({"url": "x"}, retry_attempt=2)
    assert context.retry_attempt == 2 and not context.is_dry_run
    with pytest.raises(TypeError, match="read-only"):
        context.configuration["url"] = "y"


def test_odd_inputs_are_labelled_and_valid() -> None:
    executions = odd_executions()
    labels = [label for label, _ in executions]
    assert len(labels) == len(set(labels)) >= 15
    assert all(isinstance(e, loopai.ExecutionRecord) for _, e in executions)
    events = odd_events(["task.created", "canary.rollback"])
    assert [label for label, _ in events[:2]] == ["task.created", "canary.rollback"]
    assert odd_events([]) == []


# -- the loopai_host fixture, used directly ---------------------------------------------------


def test_loopai_host_is_started_hermetic_and_strict(loopai_host: HostFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPAI_STRICT_PLUGINS", "0")
    monkeypatch.setenv("LOOPAI_OUTBOX", ":memory:")
    host = loopai_host(GoodValidator)
    assert host.strict and host.outbox is None and host.discovered == []
    assert host.validate(make_execution()).is_valid
    with pytest.raises(loopai.StartupError, match="no validator named 'absent'"):
        loopai_host(config={"plugins": {"validators": {"absent": {}}}})


def test_loopai_host_configures_plugins_from_toml(loopai_host: HostFactory) -> None:
    host = loopai_host(
        GoodValidator(),
        config="""
        [plugins.validators.good-validator]
        priority = 5
        [plugins.validators.good-validator.configuration]
        required = ["answer"]
        """,
    )
    report = host.validate(make_execution(output={"other": 1}))
    assert not report.is_valid and report.results[0].errors == {"answer": ["missing"]}
    with pytest.raises(loopai.StartupError, match="required"):
        loopai_host(
            GoodValidator(), config={"plugins": {"validators": {"good-validator": {"configuration": {"required": 3}}}}}
        )
    with pytest.raises(loopai.ConfigError, match="invalid TOML"):
        loopai_host(config="[plugins")


def test_loopai_host_resolves_references_from_the_environ_it_is_given(loopai_host: HostFactory) -> None:
    config = {"plugins": {"validators": {"good-validator": {"configuration": {"required": ["${FIELD}"]}}}}}
    host = loopai_host(GoodValidator(), config=config, environ={"FIELD": "answer"})
    assert not host.validate(make_execution(output={"result": 1})).is_valid
    with pytest.raises(loopai.ConfigError, match="FIELD"):
        loopai_host(GoodValidator(), config=config)


# -- the pytest plugin, in a test run of its own -------------------------------------------------

PLUGIN_USER = """
import loopai
from loopai.testing import check_plugin, make_execution

CALLS = []

class Recorder(loopai.ValidatorPlugin):
    version = "1.0.0"

    def startup(self, host):
        CALLS.append("startup")

    def shutdown(self, host):
        CALLS.append("shutdown")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=execution.output is not None)


def test_host(loopai_host):
    host = loopai_host(Recorder())
    assert host.validate(make_execution()).is_valid
    assert not host.validate(make_execution(output=None)).is_valid
    assert CALLS == ["startup"]


def test_closed_at_teardown():
    assert CALLS == ["startup", "shutdown"]


def test_not_started(loopai_host):
    host = loopai_host(Recorder(), start=False)
    assert CALLS == ["startup", "shutdown"]


def test_contract():
    check_plugin(Recorder)
"""


def test_the_fixtures_arrive_through_the_pytest11_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=PLUGIN_USER)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=4)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_host(loopai_host):\n    pass\n")
    result = pytester.runpytest("-p", "no:loopai", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'loopai_host' not found*"])


def test_a_broken_plugin_fails_its_authors_test_with_a_readable_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken=textwrap.dedent(
            """
            import loopai
            from loopai.testing import check_plugin

            class Broken(loopai.SamplerPlugin):
                version = "1.0.0"

                def should_sample(self, execution, context):
                    return execution.latency_ms > 100

            def test_contract():
                check_plugin(Broken)
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: sampler 'broken' (test_broken.Broken) breaks loopai's plugin contract*",
            "*should_sample returned bool, but it must return loopai.SamplingDecision*",
            "*should_sample raised TypeError*",
        ]
    )


def test_importing_loopai_imports_neither_testing_nor_pytest() -> None:
    code = "import sys, loopai; print(sorted(m for m in ('loopai.testing', 'pytest', '_pytest') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
