"""Tests of {{ cookiecutter.__class_name }}: contract, behaviour, settings, packaging.

``loopai_host`` is a fixture of loopai's pytest plugin (installed with loopai-core).
"""

from __future__ import annotations

import importlib.metadata
{%- if cookiecutter.kind == 'webhook-handler' %}
import logging
{%- endif %}

import loopai
import pytest
from loopai.testing import HostFactory, check_plugin, {% if cookiecutter.kind == 'webhook-handler' %}make_event{% else %}make_execution{% endif %}

from {{ cookiecutter.package_name }} import {{ cookiecutter.__class_name }}
{% if cookiecutter.kind == 'validator' %}
LOOPAI_TOML = """
[plugins.validators.{{ cookiecutter.plugin_slug }}.configuration]
required_keys = ["answer"]
"""


def test_keeps_the_plugin_contract() -> None:
    # strict: a missing version fails too (a packaged plugin should have one)
    check_plugin({{ cookiecutter.__class_name }}, strict=True)
    check_plugin({{ cookiecutter.__class_name }}, settings={"required_keys": ["answer"]})


def test_accepts_an_output_with_the_required_keys(loopai_host: HostFactory) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}(), config=LOOPAI_TOML)
    report = host.validate(make_execution(output={"answer": 42}))
    assert report.is_valid, report.to_dict()


def test_refuses_an_output_without_a_required_key(loopai_host: HostFactory) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}(), config=LOOPAI_TOML)
    report = host.validate(make_execution(output={"other": 1}))
    assert not report.is_valid
    assert report.results[0].errors == {"answer": ["is required"]}


def test_refuses_a_failed_execution(loopai_host: HostFactory) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}())
    report = host.validate(make_execution(output=None, status="error"))
    assert not report.is_valid
    assert "status" in report.results[0].errors


def test_settings_refuse_unknown_keys() -> None:
    with pytest.raises(loopai.PluginSettingsError, match="required_kyes"):
        {{ cookiecutter.__class_name }}({"required_kyes": ["answer"]})
{% elif cookiecutter.kind == 'sampler' %}
LOOPAI_TOML = """
[plugins.samplers.{{ cookiecutter.plugin_slug }}.configuration]
rate = 0.25
"""


def test_keeps_the_plugin_contract() -> None:
    # strict: a missing version fails too (a packaged plugin should have one)
    check_plugin({{ cookiecutter.__class_name }}, strict=True)
    check_plugin({{ cookiecutter.__class_name }}, settings={"rate": 1.0})


def test_samples_the_configured_fraction(loopai_host: HostFactory) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}(), config=LOOPAI_TOML)
    reports = [host.should_sample(make_execution()) for _ in range(4000)]
    sampled = sum(report.should_sample for report in reports)
    assert 800 < sampled < 1200  # 25% of 4000, give or take
    assert host.statistics(make_execution().task_id).total_executions == 4000


def test_always_samples_failures(loopai_host: HostFactory) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}({"rate": 0.0}))
    assert host.should_sample(make_execution(status="error")).should_sample
    assert not host.should_sample(make_execution()).should_sample


def test_same_execution_same_answer() -> None:
    sampler = {{ cookiecutter.__class_name }}({"rate": 0.5})
    execution = make_execution()
    context = loopai.SamplingContext()
    answers = {sampler.should_sample(execution, context).reason for _ in range(9)}
    assert len(answers) == 1


def test_settings_refuse_a_rate_above_one() -> None:
    with pytest.raises(loopai.PluginSettingsError, match="rate"):
        {{ cookiecutter.__class_name }}({"rate": 1.5})
{% else %}
LOOPAI_TOML = """
[plugins.webhook_handlers.{{ cookiecutter.plugin_slug }}.configuration]
min_severity = "warning"
prefix = "test"
"""


def test_keeps_the_plugin_contract() -> None:
    # strict: a missing version fails too (a packaged plugin should have one)
    check_plugin({{ cookiecutter.__class_name }}, strict=True)


def test_delivers_events_at_or_above_min_severity(
    loopai_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}(), config=LOOPAI_TOML)
    with caplog.at_level(logging.INFO, logger="{{ cookiecutter.package_name }}"):
        report = host.emit(make_event("program.execution.failed", severity="error"))
        host.emit(make_event("task.created", severity="info"))
    assert report.delivered == ("{{ cookiecutter.plugin_slug }}",), report.failures
    assert [r.getMessage() for r in caplog.records] == [
        f"test: [error] program.execution.failed task={make_event().task_id}"
    ]


def test_dry_run_delivers_nothing(
    loopai_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    host = loopai_host({{ cookiecutter.__class_name }}(), dry_run=True)
    with caplog.at_level(logging.INFO, logger="{{ cookiecutter.package_name }}"):
        host.emit(make_event("validation.failed", severity="warning"))
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert caplog.records[0].getMessage().startswith("dry run, not delivered:")


def test_settings_refuse_an_unknown_severity() -> None:
    with pytest.raises(loopai.PluginSettingsError, match="min_severity"):
        {{ cookiecutter.__class_name }}({"min_severity": "loud"})
{% endif %}

def test_is_installed_as_an_entry_point() -> None:
    group, name = "{{ cookiecutter.__group }}", "{{ cookiecutter.plugin_slug }}"
    found = importlib.metadata.entry_points(group=group, name=name)
    assert [entry_point.load() for entry_point in found] == [{{ cookiecutter.__class_name }}]
