"""Exercising a plugin as the host would: every hook on odd inputs, then one call through a real host."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from pydantic import BaseModel

from loopai._errors import StartupError
from loopai._kinds import SAMPLER, VALIDATOR, kind_of
from loopai._models import (
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEventType,
)
from loopai._plugin import Plugin, WebhookHandlerPlugin
from loopai.host import Host
from loopai.registry import PluginRegistry, RegisteredPlugin
from loopai.testing._factories import (
    make_event,
    make_execution,
    make_handler_context,
    make_sampling_context,
    make_validation_context,
    odd_events,
    odd_executions,
)
from loopai.testing._findings import Findings, describe

__all__ = ["entries_of", "exercise", "exercise_host", "run_awaitable"]


def run_awaitable(awaitable: Awaitable[Any]) -> Any:
    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    # Called from async code (an async test): its loop is busy, use another thread's.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def _call_hook(
    entry: RegisteredPlugin, first: Any, second: Any, hook: str, case: str, found: Findings, max_seconds: float
) -> tuple[bool, Any]:
    """Call one hook implementation as the host would (awaiting what it returns); False on a problem.

    The call runs on a thread of its own: one that has not returned after ``max_seconds`` is a
    problem, left behind (a daemon thread), and the hook is not called again."""
    if hook in found.hung:
        return False, None
    outcome: list[Any] = []

    def call() -> None:
        try:
            result = entry.call(first, second)
            outcome.append((True, run_awaitable(result) if inspect.isawaitable(result) else result))
        except Exception as exc:
            outcome.append((False, exc))

    started = time.perf_counter()
    thread = threading.Thread(target=call, name=f"loopai-check-{hook}", daemon=True)
    thread.start()
    limit = max_seconds * 2 + 1  # a hook a little slow is said as slow, not as hung
    thread.join(limit)
    if not outcome:
        timeout = entry.plugin.timeout
        remedy = (
            "fix it, or give the plugin a timeout, after which the host gives up on a call"
            if timeout is None
            else f"its timeout ({timeout:g} s) only makes the host give up on each call, failing it: fix the hook"
        )
        found.add(f"{hook} did not return within {limit:g} s: every record would wait for it ({remedy})", case=case)
        found.hung.add(hook)
        found.hooks.add(hook)
        return False, None
    ok, result = outcome[0]
    if not ok:
        found.add(f"{hook} raised {describe(result)}", result, case=case)
        found.hooks.add(hook)
        return False, None
    elapsed = time.perf_counter() - started
    if elapsed > max_seconds:
        found.add(f"{hook} took longer than {max_seconds:g} s", case=f"{case}: {elapsed:.1f} s")
    return True, result


def _check_result(result: Any, expected: type[BaseModel], hook: str, case: str, found: Findings) -> None:
    if not isinstance(result, expected):
        found.add(f"{hook} returned {type(result).__name__}, but it must return loopai.{expected.__name__}", case=case)
        found.hooks.add(hook)
        return
    try:
        expected.model_validate(result.model_dump())
        result.model_dump_json()
    except Exception as exc:
        found.add(f"{hook} returned an invalid or unserialisable {expected.__name__}: {describe(exc)}", exc, case=case)


def _validation_contexts() -> list[tuple[str, ValidationContext]]:
    return [
        ("ordinary context", make_validation_context()),
        ("empty context", ValidationContext()),
        (
            "context with schemas",
            make_validation_context(
                input_schema={"type": "object"},
                output_schema={"type": "object", "required": ["result"]},
                expected_output={"result": "ok"},
                metadata={"source": "loopai.testing"},
            ),
        ),
    ]


def _sampling_contexts() -> list[tuple[str, SamplingContext]]:
    return [
        ("ordinary context", make_sampling_context()),
        ("empty context", SamplingContext()),
        (
            "busy context (rate 1, a million runs)",
            make_sampling_context(
                1.0,
                total_executions=1_000_000,
                sampled_executions=999_999,
                last_sample_time=make_execution().executed_at,
            ),
        ),
        ("rate 0", make_sampling_context(0.0)),
    ]


def _exercise_validator(entry: RegisteredPlugin, found: Findings, max_seconds: float) -> None:
    for label, execution in odd_executions():
        for context_label, context in _validation_contexts():
            case = f"{label}, {context_label}"
            ok, result = _call_hook(entry, execution, context, "validate", case, found, max_seconds)
            if ok:
                _check_result(result, ValidationResult, "validate", case, found)


def _exercise_sampler(entry: RegisteredPlugin, found: Findings, max_seconds: float) -> None:
    for label, execution in odd_executions():
        for context_label, context in _sampling_contexts():
            case = f"{label}, {context_label}"
            ok, result = _call_hook(entry, execution, context, "should_sample", case, found, max_seconds)
            if ok:
                _check_result(result, SamplingDecision, "should_sample", case, found)


def _exercise_handler(
    entry: RegisteredPlugin, found: Findings, max_seconds: float, dry_run: bool, configuration: Mapping[str, Any]
) -> None:
    plugin = entry.plugin
    assert isinstance(plugin, WebhookHandlerPlugin)
    try:
        accepted = plugin.validate_configuration(configuration)
    except Exception as exc:
        found.add(f"validate_configuration(settings) raised {describe(exc)}", exc)
    else:
        if not isinstance(accepted, bool):
            found.add(f"validate_configuration returned {type(accepted).__name__}, it must return a bool")
        elif not accepted:
            found.add("validate_configuration refused the settings the plugin was built with")
    try:
        supported = [WebhookEventType(t) for t in plugin.supported_events]
    except (TypeError, ValueError):
        return  # already reported by the identity check
    contexts = [
        ("first try", make_handler_context(configuration, is_dry_run=dry_run)),
        ("last retry", make_handler_context(configuration, is_dry_run=dry_run, retry_attempt=3, max_retries=3)),
    ]
    for label, event in odd_events(supported):
        for context_label, context in contexts:
            case = f"{label}, {context_label}{', dry run' if dry_run else ''}"
            ok, result = _call_hook(entry, event, context, "handle_event", case, found, max_seconds)
            if ok and result is not None:
                found.add(
                    f"handle_event returned {type(result).__name__}, but it must return None "
                    "(success is not raising: raise to make the host retry)",
                    case=case,
                )


def exercise_host(
    plugin: object, entries: list[RegisteredPlugin], found: Findings, dry_run: bool, *, odd_cases: bool = False
) -> None:
    """One ordinary call of each hook through a real host, from sync and async callers; with
    ``odd_cases`` (a plugin isolated in worker processes, whose hooks are not called directly)
    every odd case too. Not when a hook hung and no timeout would end the host's call."""
    if found.hung and getattr(entries[0].plugin, "timeout", None) is None:
        return
    was_enabled = plugin.enabled if isinstance(plugin, Plugin) else None
    if isinstance(plugin, Plugin):
        plugin.enabled = True  # an opt-in plugin is still checked
    try:
        try:
            host = Host(plugins=[plugin], strict=True, environ={}, outbox=False, max_retries=0, retry_backoff=0.0)
            host.start()
        except StartupError as exc:
            for problem in exc.problems:
                found.add(f"in a host: {problem}", exc)
            return
        try:
            for entry in entries:
                if odd_cases:
                    _host_odd_cases(host, entry, found, dry_run)
                _host_calls(host, entry, found, dry_run)
        finally:
            host.close()
            for problem in host.problems:
                found.add(f"in a host: {problem}")
    finally:
        if isinstance(plugin, Plugin) and was_enabled is not None:
            plugin.enabled = was_enabled


def _host_calls(host: Host, entry: RegisteredPlugin, found: Findings, dry_run: bool) -> None:
    reports: list[Any]
    if kind_of(entry.kind) is VALIDATOR:
        reports = [host.validate(make_execution()), run_awaitable(host.avalidate(make_execution()))]
    elif kind_of(entry.kind) is SAMPLER:
        reports = [host.should_sample(make_execution()), run_awaitable(host.ashould_sample(make_execution()))]
    else:
        plugin = entry.plugin
        assert isinstance(plugin, WebhookHandlerPlugin)
        try:
            first = WebhookEventType(next(iter(plugin.supported_events)))
        except (StopIteration, TypeError, ValueError):
            return  # already reported by the identity check
        event = make_event(first)
        reports = [host.emit(event, dry_run=dry_run), run_awaitable(host.aemit(event, dry_run=dry_run))]
    for caller, report in zip(("sync", "async"), reports, strict=True):
        for failure in report.failures:
            if failure.hook in found.hooks:
                continue
            found.add(f"in a host ({caller} caller): {failure.message}", failure.error)


def _host_odd_cases(host: Host, entry: RegisteredPlugin, found: Findings, dry_run: bool) -> None:
    """Every odd case through ``host``: what its isolation reports (a crash, a limit, a wrong type)."""
    kind = kind_of(entry.kind)
    reports: list[tuple[str, Any]] = []
    if kind is VALIDATOR:
        reports = [
            (f"{label}, {context_label}", host.validate(execution, context))
            for label, execution in odd_executions()
            for context_label, context in _validation_contexts()
        ]
    elif kind is SAMPLER:
        reports = [
            (f"{label}, {context_label}", host.should_sample(execution, context))
            for label, execution in odd_executions()
            for context_label, context in _sampling_contexts()
        ]
    else:
        plugin = entry.plugin
        assert isinstance(plugin, WebhookHandlerPlugin)
        try:
            supported = [WebhookEventType(t) for t in plugin.supported_events]
        except (TypeError, ValueError):
            return  # already reported by the identity check
        reports = [(label, host.emit(event, dry_run=dry_run)) for label, event in odd_events(supported)]
    for case, report in reports:
        for failure in report.failures:
            found.add(f"in a host: {failure.message}", failure.error, case=case)
            found.hooks.add(failure.hook)


def entries_of(plugin: object, found: Findings) -> list[RegisteredPlugin]:
    try:
        return PluginRegistry().register(plugin)
    except Exception as exc:
        found.add(f"cannot be registered: {exc}", exc)
        return []


def exercise(
    entry: RegisteredPlugin, found: Findings, max_seconds: float, dry_run: bool, configuration: Mapping[str, Any]
) -> None:
    """Call ``entry``'s hook on every odd case for its kind, noting every problem in ``found``."""
    kind = kind_of(entry.kind)
    if kind is VALIDATOR:
        _exercise_validator(entry, found, max_seconds)
    elif kind is SAMPLER:
        _exercise_sampler(entry, found, max_seconds)
    else:
        _exercise_handler(entry, found, max_seconds, dry_run, configuration)
