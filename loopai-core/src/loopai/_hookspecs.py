"""The hook contract: pluggy markers for project "loopai" and the five hookspecs."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

import pluggy

from loopai._models import (
    ExecutionRecord,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
    WebhookHandlerContext,
)

__all__ = ["HOOK_NAMES", "PROJECT", "HookSpecs", "hookimpl", "hookspec"]

PROJECT: Final = "loopai"

hookspec: Final = pluggy.HookspecMarker(PROJECT)
"""Marks a hook specification of project ``loopai``."""

hookimpl: Final = pluggy.HookimplMarker(PROJECT)
"""Marks a function or method as a loopai hook implementation (pluggy style)."""


class HookSpecs:
    """The hooks a loopai plugin may implement.

    A plugin class (``loopai.ValidatorPlugin`` and friends) implements them as plain
    methods; a module or object implements them as functions marked ``@loopai.hookimpl``.
    An implementation may accept a subset of the arguments, by name, and may be
    ``def`` or ``async def``. Arguments not in the spec are refused at registration.

    What every hook shares: its arguments are read-only (nested dicts and lists included; a
    change raises ``TypeError`` in the plugin, reported as its failure). Plugins of a kind are
    called in their effective order: ``run_before`` / ``run_after`` constraints first, then
    ``priority`` (higher first), then name. A plugin with ``isolation = "process"`` runs in a
    worker process: its arguments and result cross as JSON, and besides an exception, a wrong
    type or a timeout, its call may fail as ``crashed``, ``memory-limit`` or ``cpu-limit``; the
    worker is replaced and the other plugins go on.
    """

    @hookspec
    def validate(
        self, execution: ExecutionRecord, context: ValidationContext
    ) -> ValidationResult | Awaitable[ValidationResult]:
        """Judge whether ``execution``'s output is valid.

        :param execution: the run to judge (read-only).
        :param context: the task's schemas, expected output and metadata (read-only).
        :returns: a :class:`loopai.ValidationResult` (or an awaitable of one).

        Order: every enabled validator runs, in the effective order (``run_before`` /
        ``run_after``, then highest ``priority`` first, ties by name).
        ``Host.validate`` reports the run valid only when every validator returned
        ``is_valid=True``; with ``stop_on_failure`` it stops at the first invalid result.

        Errors: an exception, a result of another type, a timeout (when one is configured
        for the plugin), or for an isolated plugin a lost worker (``crashed``,
        ``memory-limit``, ``cpu-limit``), is caught; the report names the plugin and the
        problem, counts that validator as failed, and the other validators still run. After
        five lost workers in a row the validator is not called again until a reload: each
        call fails at once as ``disabled`` (no record is judged valid without it).

        Example::

            @loopai.hookimpl
            def validate(execution, context):
                ok = isinstance(execution.output, dict)
                return loopai.ValidationResult(is_valid=ok, validator_type="is-object")
        """
        raise NotImplementedError

    @hookspec
    def should_sample(
        self, execution: ExecutionRecord, context: SamplingContext
    ) -> SamplingDecision | Awaitable[SamplingDecision]:
        """Decide whether ``execution`` is sampled for deeper checking.

        :param execution: the run in question (read-only).
        :param context: the task's ``sampling_rate`` and the host's statistics for the task
            as they were *before* this execution (``total_executions``,
            ``sampled_executions``, ``last_sample_time``).
        :returns: a :class:`loopai.SamplingDecision` (or an awaitable of one).

        Order: enabled samplers are asked in the effective order (``run_before`` /
        ``run_after``, then highest ``priority`` first); the first that answers
        ``should_sample=True`` wins and later samplers are not asked.
        The host then updates its statistics for the task.

        Errors: an exception, a wrong return type, a timeout or a lost worker (isolated
        plugins) counts as "do not sample" for that sampler, is named in the report, and the
        next sampler is asked.

        Example::

            @loopai.hookimpl
            def should_sample(execution, context):
                slow = (execution.latency_ms or 0) > 500
                return loopai.SamplingDecision(should_sample=slow, reason="slow run")
        """
        raise NotImplementedError

    @hookspec
    def handle_event(self, event: WebhookEvent, context: WebhookHandlerContext) -> Awaitable[None] | None:
        """Deliver ``event`` somewhere (a console, Slack, an HTTP endpoint...).

        :param event: the event (read-only); only types in the handler's ``supported_events`` arrive.
        :param context: the handler's settings, ``retry_attempt`` (0 on the first try),
            ``max_retries`` and ``is_dry_run`` (when true, describe but do not send).
        :returns: nothing; the return value is ignored. Success is "did not raise" (a handler that
            returns a value, ``False`` say, is still delivered, and the host warns once).

        Order: every enabled handler that supports the event type is called, in the
        effective order (``run_before`` / ``run_after``, then highest ``priority`` first);
        handlers do not see each other's outcome. ``Host.emit`` calls
        them one after another; ``Host.aemit`` starts them in that order and runs them
        concurrently (a sync handler in a worker thread), so they may finish in any order.

        Errors: an exception, a timeout or a lost worker is retried with exponential backoff up to
        ``max_retries`` times, with ``retry_attempt`` counting up; after the last try the
        emit report names the handler and the last error. Other handlers are unaffected.

        Example::

            @loopai.hookimpl
            def handle_event(event, context):
                if not context.is_dry_run:
                    print(event.event_type, event.payload)
        """
        raise NotImplementedError

    @hookspec
    def startup(self, host: Any) -> Awaitable[None] | None:
        """Called once when ``host`` (the :class:`loopai.Host`) starts (``with Host(...)``,
        ``host.start()``, or ``async with Host(...)`` / ``await host.astart()``).

        Open connections or warm caches here rather than at import time. Order: every
        kind of plugin, each after the plugins it names in ``requires_plugins``, otherwise
        by priority. A reload starts the new set's plugins here before it stops the old
        ones (a plugin carried over is not started again). An isolated plugin's hook runs
        in each of its worker processes, with a :class:`loopai.host.WorkerHost` as ``host``.
        Sync or async: under ``async with`` an
        ``async def`` hook is awaited on the application's running loop (so what it
        opens belongs to that loop); under a plain ``with`` it runs on a private loop in
        another thread. Errors: any exception (``SystemExit`` included) disables the
        plugin and is named in ``host.problems`` (a :class:`loopai.StartupError` in
        strict mode); others start. During a reload it fails the reload instead: the
        running set stays, and the new set's plugins that did start are shut down.

        Example::

            @loopai.hookimpl
            def startup(host):
                print("plugins:", host.registry.count(loopai.ValidatorPlugin))
        """
        raise NotImplementedError

    @hookspec
    def shutdown(self, host: Any) -> Awaitable[None] | None:
        """Called once when ``host`` closes (or a reload retires this plugin's set, after its
        last call), in the reverse of the startup order; close resources here. An isolated
        plugin's hook runs in each worker as it stops.

        Runs on the same kind of loop as :meth:`startup` (``async with``: the
        application's). Errors (``SystemExit`` included) are reported in ``host.problems``
        and never stop other plugins' shutdown.

        Example::

            @loopai.hookimpl
            def shutdown(host):
                print("bye")
        """
        raise NotImplementedError


HOOK_NAMES: Final = tuple(name for name, value in vars(HookSpecs).items() if callable(value) and name[0] != "_")
"""The hooks, as :class:`HookSpecs` declares them: each kind's own, then ``startup`` and ``shutdown``."""
