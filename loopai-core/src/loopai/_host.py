"""The host: builds the plugin set from configuration and code, and dispatches every hook call."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, Any
from uuid import UUID

from loopai._config import LoopaiConfig, PluginConfiguration
from loopai._discovery import DiscoveredPlugin, discover, load_discovered
from loopai._dispatch import HookTimeout, Invoker, Tracer
from loopai._errors import LoopaiError, PluginError, StartupError
from loopai._models import (
    ExecutionRecord,
    ExecutionStatus,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
    WebhookEventType,
    WebhookHandlerContext,
)
from loopai._plugin import (
    Plugin,
    SamplerPlugin,
    ValidatorPlugin,
    WebhookHandlerPlugin,
    kind_label,
    validate_settings,
)
from loopai._registry import HOOK_OF_KIND, KINDS, PluginRegistry, RegisteredPlugin
from loopai._selection import Selection
from loopai._report import EmitReport, FailureKind, PluginFailure, SamplingReport, ValidationReport

__all__ = ["Host", "TaskStatistics"]

log = logging.getLogger("loopai")

_TRUE = {"1", "true", "yes", "on"}


class _WrongType(LoopaiError):
    pass


class TaskStatistics:
    """The host's running counts for one task, as samplers see them."""

    __slots__ = ("failed_executions", "last_sample_time", "sampled_executions", "total_executions")

    def __init__(self) -> None:
        self.total_executions = 0
        self.sampled_executions = 0
        self.failed_executions = 0
        self.last_sample_time: datetime | None = None

    def copy(self) -> TaskStatistics:
        """An independent snapshot of these counts."""
        twin = TaskStatistics()
        twin.total_executions = self.total_executions
        twin.sampled_executions = self.sampled_executions
        twin.failed_executions = self.failed_executions
        twin.last_sample_time = self.last_sample_time
        return twin

    def __repr__(self) -> str:
        return (
            f"TaskStatistics(total={self.total_executions}, sampled={self.sampled_executions}, "
            f"failed={self.failed_executions}, last_sample_time={self.last_sample_time})"
        )


class _Call:
    """One enabled plugin as a dispatch loop sees it (rebuilt when the registry changes)."""

    __slots__ = ("context", "dry_context", "entry", "events", "fn", "max_retries", "name", "timeout")

    def __init__(self, entry: RegisteredPlugin, fn: Callable[[Any, Any], Any], timeout: float | None) -> None:
        self.entry = entry
        self.name = entry.name
        self.fn = fn
        self.timeout = timeout
        self.events: frozenset[WebhookEventType] = frozenset()
        self.max_retries = 0
        self.context: WebhookHandlerContext | None = None
        self.dry_context: WebhookHandlerContext | None = None


class _Snapshot:
    __slots__ = ("generation", "handlers", "samplers", "validators")

    def __init__(
        self,
        generation: int,
        validators: tuple[_Call, ...] = (),
        samplers: tuple[_Call, ...] = (),
        handlers: dict[WebhookEventType, tuple[_Call, ...]] | None = None,
    ) -> None:
        self.generation = generation
        self.validators = validators
        self.samplers = samplers
        self.handlers = handlers or {}


def _flag(environ: Mapping[str, str], name: str) -> bool | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in _TRUE


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _events(plugin: Plugin) -> frozenset[WebhookEventType]:
    declared = getattr(plugin, "supported_events", None)
    if declared is None:
        return frozenset(WebhookEventType)
    if isinstance(declared, (str, WebhookEventType)):
        declared = [declared]
    return frozenset(WebhookEventType(e) for e in declared)


class Host:
    """Runs loopai plugins for an application: validation, sampling and events.

    Build one per application (there is no global host)::

        with loopai.Host(config=loopai.load_config(), plugins=[MyValidator()]) as host:
            report = host.validate(execution, context)

    Plugins come from ``plugins`` (registered by code) and from ``config`` (entries with
    a ``factory``). A plugin that cannot be registered, configured or started is left
    out and described in :attr:`problems`; with ``strict`` (argument, config
    ``strict = true`` or ``LOOPAI_STRICT_PLUGINS=1``) the constructor or :meth:`start`
    raises :class:`loopai.StartupError` listing every problem instead.

    Dispatch never lets one plugin stop the others: an exception, a wrong return type
    or a timeout is caught and named in the call's report. All methods are thread-safe;
    ``avalidate``, ``ashould_sample`` and ``aemit`` are the asyncio twins. Sync and
    async plugins work from both.
    """

    def __init__(
        self,
        config: LoopaiConfig | None = None,
        *,
        plugins: Iterable[object] = (),
        registry: PluginRegistry | None = None,
        strict: bool | None = None,
        trace: bool | IO[str] | None = None,
        dry_run: bool | None = None,
        stop_on_failure: bool | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        environ: Mapping[str, str] | None = None,
        discover: bool = False,
        selection: Selection | None = None,
        paths: Sequence[str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.config = config if config is not None else LoopaiConfig()
        dispatch = self.config.dispatch
        self.registry = registry if registry is not None else PluginRegistry()
        self.problems: list[str] = []
        self.strict = next(
            v for v in (strict, _flag(environ, "LOOPAI_STRICT_PLUGINS"), self.config.strict) if v is not None
        )
        trace_on = trace if trace is not None else (_flag(environ, "LOOPAI_TRACE") or self.config.trace)
        self._tracer = (
            Tracer(trace if not isinstance(trace, bool) and trace is not None else None) if trace_on else None
        )
        self.dry_run = dispatch.dry_run if dry_run is None else dry_run
        self.stop_on_failure = dispatch.stop_on_failure if stop_on_failure is None else stop_on_failure
        self.max_retries = dispatch.max_retries if max_retries is None else max_retries
        self.retry_backoff = dispatch.retry_backoff if retry_backoff is None else retry_backoff
        self.retry_max_backoff = dispatch.retry_max_backoff
        self.default_timeout = dispatch.default_timeout
        self._invoker = Invoker()
        self._random = random.Random()
        self._stats: dict[UUID | None, TaskStatistics] = {}
        self._stats_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._started = False
        self._closed = False
        self._snapshot = _Snapshot(-1)

        self.discovered: list[DiscoveredPlugin] = []
        """Every plugin found through entry points (with ``discover=True``) and its status."""
        for plugin in plugins:
            self._try(lambda p=plugin: self.registry.register(p), f"plugin {_name_of(plugin)!r}")
        if discover:
            self._discover(environ, selection, paths)
        self._apply_config()
        self._raise_if_strict()

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Host:
        """The usual way to build a host: read the configuration and discover installed plugins.

        ``path`` as for :func:`loopai.load_config`; ``options`` are passed to :class:`Host`.
        Raises :class:`loopai.ConfigError` for a bad file and, in strict mode,
        :class:`loopai.StartupError` for any plugin problem.
        """
        from loopai._config import load_config

        config = load_config(path, environ=environ)
        return cls(config, environ=environ, discover=True, **options)

    def _discover(self, environ: Mapping[str, str], selection: Selection | None, paths: Sequence[str] | None) -> None:
        if selection is None:
            selection = Selection.resolve(self.config, environ)
        self.discovered = discover(self.config, environ=environ, selection=selection, paths=paths)
        load_discovered(self.discovered, self.registry, self.config)
        for record in self.discovered:
            if record.status not in ("ok", "disabled"):
                self._problem(
                    f"{record.kind} {record.name!r} ({record.distribution} {record.version}) "
                    f"is {record.status}: {record.reason}"
                )

    # -- building --------------------------------------------------------------------

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)

    def _try(self, action: Callable[[], Any], what: str) -> bool:
        try:
            action()
        except LoopaiError as exc:
            self._problem(str(exc))
            return False
        except Exception as exc:  # a plugin's own code failed (constructor, import...)
            self._problem(f"{what} failed: {_describe(exc)}")
            return False
        return True

    def _raise_if_strict(self) -> None:
        if self.strict and self.problems:
            raise StartupError(self.problems)

    def _apply_config(self) -> None:
        label = self.config.source_label
        for kind in KINDS:
            key = {ValidatorPlugin: "validators", SamplerPlugin: "samplers", WebhookHandlerPlugin: "webhook_handlers"}[
                kind
            ]
            for entry in self.config.plugins.for_kind(kind):
                self._apply_entry(kind, entry, f"{label}: {key}.{entry.name}")

    def _apply_entry(self, kind: type[Plugin], entry: PluginConfiguration, where: str) -> None:
        given = entry.model_fields_set
        label = kind_label(kind)
        found = next((r for r in self.discovered if r.kind == label and r.name == entry.name), None)
        if found is not None and not found.loaded:
            return  # discovery left it out and already said why
        registered = self.registry.entry(kind, entry.name)
        if registered is None and entry.factory:
            if not self._try(lambda: self._register_factory(kind, entry, where), where):
                return
            registered = self.registry.entry(kind, entry.name)
        if registered is None:
            if entry.enabled:
                self._problem(
                    f"{where}: no {kind_label(kind)} named {entry.name!r} is registered; "
                    'install the package that provides it, register it in code, or set factory = "module:attribute"'
                )
            return
        plugin = registered.plugin
        if "configuration" in given and not entry.factory and found is None:
            if not self._try(lambda: plugin.configure(entry.configuration, where=where), where):
                self.registry.unregister(kind, entry.name)
                return
        if isinstance(plugin, WebhookHandlerPlugin) and not plugin.validate_configuration(entry.configuration):
            self._problem(f"{where}: webhook handler {entry.name!r} refused its configuration; check its settings")
            self.registry.unregister(kind, entry.name)
            return
        plugin.metadata = {**plugin.metadata, **entry.metadata}
        if entry.timeout is not None:
            plugin.timeout = entry.timeout
        if "priority" in given:
            plugin.priority = entry.priority
        if "enabled" in given:
            plugin.enabled = entry.enabled

    def _register_factory(self, kind: type[Plugin], entry: PluginConfiguration, where: str) -> None:
        module_name, _, attribute = (entry.factory or "").partition(":")
        if not module_name or not attribute:
            raise PluginError(
                entry.name, f"{where}.factory: {entry.factory!r} must look like 'package.module:attribute'"
            )
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                entry.name, f"{where}.factory: cannot import {entry.factory!r}: {_describe(exc)}"
            ) from None
        if isinstance(target, type) and issubclass(target, Plugin):
            target = target(validate_settings(target.Config, entry.configuration, where))
        elif isinstance(target, type):
            target = target()
        self.registry.register(target, name=entry.name)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Host:
        """Run every plugin's ``startup`` hook once (later calls do nothing); returns the host.

        A plugin whose startup fails is disabled and named in :attr:`problems`; in strict
        mode :class:`loopai.StartupError` is raised after all plugins were tried.
        """
        with self._state_lock:
            if self._started:
                return self
            self._started = True
        for entry in self._lifecycle_entries("startup"):
            hook = entry.startup
            assert hook is not None
            try:
                self._invoker.call_sync(hook, (self,), entry.plugin.timeout or self.default_timeout)
            except Exception as exc:
                self._problem(f"plugin {entry.name!r} failed to start and was disabled: {_describe(exc)}")
                entry.plugin.enabled = False
        self._raise_if_strict()
        return self

    def close(self) -> None:
        """Run every started plugin's ``shutdown`` hook once, in reverse priority order."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        if started:
            for entry in reversed(self._lifecycle_entries("shutdown")):
                hook = entry.shutdown
                assert hook is not None
                try:
                    self._invoker.call_sync(hook, (self,), entry.plugin.timeout or self.default_timeout)
                except Exception as exc:
                    self._problem(f"plugin {entry.name!r} failed to shut down: {_describe(exc)}")
        self._invoker.close()

    def _lifecycle_entries(self, hook: str) -> list[RegisteredPlugin]:
        seen: set[int] = set()
        chosen = []
        everything = sorted(self.registry, key=lambda e: (-e.plugin.priority, e.name))
        for entry in everything:
            function = getattr(entry, hook)
            if function is None or id(function) in seen or not entry.plugin.enabled:
                continue
            seen.add(id(function))
            chosen.append(entry)
        return chosen

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Host:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self.close)

    # -- the plugin set as dispatch sees it ------------------------------------------

    def _refresh(self) -> _Snapshot:
        generation = self.registry.generation  # read first: a change during the build forces another
        validators = tuple(self._call(e) for e in self.registry.entries(ValidatorPlugin))
        samplers = tuple(self._call(e) for e in self.registry.entries(SamplerPlugin))
        handlers = [self._handler_call(e) for e in self.registry.entries(WebhookHandlerPlugin)]
        by_event = {t: tuple(c for c in handlers if t in c.events) for t in WebhookEventType}
        snapshot = _Snapshot(generation, validators, samplers, by_event)
        self._snapshot = snapshot
        return snapshot

    def _call(self, entry: RegisteredPlugin) -> _Call:
        timeout = entry.plugin.timeout or self.default_timeout
        fn = entry.call
        if entry.is_async or timeout is not None:
            raw, invoker = entry.call, self._invoker
            fn = lambda first, second: invoker.call_sync(raw, (first, second), timeout)  # noqa: E731
        if self._tracer is not None:
            fn = self._tracer.wrap(HOOK_OF_KIND[entry.kind], entry.name, fn)
        return _Call(entry, fn, timeout)

    def _handler_call(self, entry: RegisteredPlugin) -> _Call:
        call = self._call(entry)
        plugin = entry.plugin
        call.events = _events(plugin)
        own = getattr(plugin, "max_retries", None)
        call.max_retries = own if isinstance(own, int) else self.max_retries
        call.context = self._handler_context(call, 0, False)
        call.dry_context = self._handler_context(call, 0, True)
        return call

    def _handler_context(self, call: _Call, attempt: int, dry_run: bool) -> WebhookHandlerContext:
        plugin = call.entry.plugin
        settings = plugin.config
        configuration = dict(settings) if isinstance(settings, Mapping) else settings.model_dump()
        return WebhookHandlerContext(
            configuration=configuration,
            retry_attempt=attempt,
            max_retries=call.max_retries,
            is_dry_run=dry_run,
            metadata=dict(plugin.metadata),
        )

    # -- failures --------------------------------------------------------------------

    def _failure(self, call: _Call, hook: str, exc: BaseException, attempts: int = 1) -> PluginFailure:
        problem: FailureKind
        if isinstance(exc, HookTimeout):
            problem, what = "timeout", str(exc)
        elif isinstance(exc, _WrongType):
            problem, what = "wrong-type", str(exc)
        else:
            problem, what = "exception", f"raised {_describe(exc)}"
        label = kind_label(call.entry.kind)
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return PluginFailure(call.name, hook, problem, f"{label} {call.name!r} {what}{tries}", exc, attempts)

    def _checked(self, call: _Call, result: Any, expected: type, hook: str) -> Any:
        if isinstance(result, expected):
            return result
        if hasattr(result, "__await__"):  # a plain function that returned a coroutine
            return self._checked(call, self._invoker.wait(result, call.timeout), expected, hook)
        raise _WrongType(f"returned {type(result).__name__}, but {hook} must return {expected.__name__}")

    def _invalid(self, call: _Call, failure: PluginFailure) -> ValidationResult:
        return ValidationResult(
            is_valid=False,
            validator_type=call.name,
            message=failure.message,
            metadata={"plugin_failure": failure.problem},
        )

    # -- validation ------------------------------------------------------------------

    def validate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """Run every enabled validator, highest priority first, and report.

        ``context`` defaults to one with the execution's ``task_id`` and nothing else.
        With ``stop_on_failure`` (default: the host's setting) the first invalid result
        ends the run. A validator that fails is reported invalid and named in
        ``report.failures``; the others still run.
        """
        snapshot = self._snapshot
        if snapshot.generation != self.registry._generation:
            snapshot = self._refresh()
        if context is None:
            context = ValidationContext(task_id=execution.task_id)
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        results: list[ValidationResult] = []
        failures: list[PluginFailure] | None = None
        for call in snapshot.validators:
            try:
                result = call.fn(execution, context)
                if result.__class__ is not ValidationResult:
                    result = self._checked(call, result, ValidationResult, "validate")
            except Exception as exc:
                failure = self._failure(call, "validate", exc)
                failures = [*(failures or ()), failure]
                result = self._invalid(call, failure)
            results.append(result)
            if stop and not result.is_valid:
                return ValidationReport(results, failures, stopped_early=len(results) < len(snapshot.validators))
        return ValidationReport(results, failures)

    async def avalidate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """The asyncio twin of :meth:`validate`: async validators are awaited on the caller's loop."""
        snapshot = self._snapshot
        if snapshot.generation != self.registry._generation:
            snapshot = self._refresh()
        if context is None:
            context = ValidationContext(task_id=execution.task_id)
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        results: list[ValidationResult] = []
        failures: list[PluginFailure] | None = None
        for call in snapshot.validators:
            try:
                result = await self._acall(call, "validate", execution, context)
                if not isinstance(result, ValidationResult):
                    raise _WrongType(f"returned {type(result).__name__}, but validate must return ValidationResult")
            except Exception as exc:
                failure = self._failure(call, "validate", exc)
                failures = [*(failures or ()), failure]
                result = self._invalid(call, failure)
            results.append(result)
            if stop and not result.is_valid:
                return ValidationReport(results, failures, stopped_early=len(results) < len(snapshot.validators))
        return ValidationReport(results, failures)

    async def _acall(self, call: _Call, hook: str, first: Any, second: Any) -> Any:
        entry = call.entry
        started = time.perf_counter()
        try:
            result = await self._invoker.call_async(entry.call, (first, second), call.timeout, entry.is_async)
        except BaseException as exc:
            if self._tracer is not None:
                self._tracer.line(hook, call.name, started, f"raised {type(exc).__name__}: {exc}")
            raise
        if self._tracer is not None:
            self._tracer.line(hook, call.name, started, f"-> {type(result).__name__}")
        return result

    # -- sampling --------------------------------------------------------------------

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """A snapshot of the host's counts for ``task_id`` (zeros for an unseen task)."""
        with self._stats_lock:
            stats = self._stats.get(task_id)
            return stats.copy() if stats is not None else TaskStatistics()

    def _sampling_context(
        self, execution: ExecutionRecord, context: SamplingContext | None
    ) -> tuple[TaskStatistics, SamplingContext]:
        task_id = execution.task_id
        stats = self._stats.get(task_id)
        if stats is None:
            with self._stats_lock:
                stats = self._stats.setdefault(task_id, TaskStatistics())
        if context is None:
            context = SamplingContext(
                task_id=task_id,
                total_executions=stats.total_executions,
                sampled_executions=stats.sampled_executions,
                last_sample_time=stats.last_sample_time,
            )
        else:
            # Plain stores into the model's field dict: validated ints from our own
            # counters, and a hot path that must stay close to a bare loop.
            fields = context.__dict__
            fields["total_executions"] = stats.total_executions
            fields["sampled_executions"] = stats.sampled_executions
            fields["last_sample_time"] = stats.last_sample_time
        return stats, context

    def _record(self, stats: TaskStatistics, execution: ExecutionRecord, sampled: bool) -> None:
        with self._stats_lock:
            stats.total_executions += 1
            if execution.status is not ExecutionStatus.SUCCESS:
                stats.failed_executions += 1
            if sampled:
                stats.sampled_executions += 1
                stats.last_sample_time = execution.executed_at

    def should_sample(self, execution: ExecutionRecord, context: SamplingContext | None = None) -> SamplingReport:
        """Ask enabled samplers, highest priority first, until one says yes.

        The host fills the context's ``total_executions``, ``sampled_executions`` and
        ``last_sample_time`` with its counts for the task *before* this execution (a
        given ``context`` is updated in place), then counts this execution, and its
        ``executed_at`` as the task's last sample time when it was sampled.
        """
        snapshot = self._snapshot
        if snapshot.generation != self.registry._generation:
            snapshot = self._refresh()
        stats, context = self._sampling_context(execution, context)
        decisions: list[SamplingDecision] = []
        failures: list[PluginFailure] | None = None
        for call in snapshot.samplers:
            try:
                decision = call.fn(execution, context)
                if decision.__class__ is not SamplingDecision:
                    decision = self._checked(call, decision, SamplingDecision, "should_sample")
            except Exception as exc:
                failures = [*(failures or ()), self._failure(call, "should_sample", exc)]
                continue
            decisions.append(decision)
            if decision.should_sample:
                self._record(stats, execution, True)
                return SamplingReport(decisions, failures, call.name)
        self._record(stats, execution, False)
        return SamplingReport(decisions, failures)

    async def ashould_sample(
        self, execution: ExecutionRecord, context: SamplingContext | None = None
    ) -> SamplingReport:
        """The asyncio twin of :meth:`should_sample`."""
        snapshot = self._snapshot
        if snapshot.generation != self.registry._generation:
            snapshot = self._refresh()
        stats, context = self._sampling_context(execution, context)
        decisions: list[SamplingDecision] = []
        failures: list[PluginFailure] | None = None
        for call in snapshot.samplers:
            try:
                decision = await self._acall(call, "should_sample", execution, context)
                if not isinstance(decision, SamplingDecision):
                    raise _WrongType(
                        f"returned {type(decision).__name__}, but should_sample must return SamplingDecision"
                    )
            except Exception as exc:
                failures = [*(failures or ()), self._failure(call, "should_sample", exc)]
                continue
            decisions.append(decision)
            if decision.should_sample:
                self._record(stats, execution, True)
                return SamplingReport(decisions, failures, call.name)
        self._record(stats, execution, False)
        return SamplingReport(decisions, failures)

    # -- events ----------------------------------------------------------------------

    def _backoff(self, attempt: int, exc: BaseException) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            return min(float(retry_after), self.retry_max_backoff)
        ceiling = min(self.retry_max_backoff, self.retry_backoff * 2 ** (attempt - 1))
        return ceiling * (0.5 + self._random.random() / 2)  # jitter: spread retries of many hosts

    def emit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """Deliver ``event`` to every enabled handler that supports its type, by priority.

        A handler that raises or times out is retried with exponential backoff and
        jitter (honouring an exception's ``retry_after`` seconds) up to its
        ``max_retries``, with ``context.retry_attempt`` counting the retries. ``dry_run``
        (default: the host's setting) sets ``context.is_dry_run``.
        """
        snapshot = self._snapshot
        if snapshot.generation != self.registry._generation:
            snapshot = self._refresh()
        dry = self.dry_run if dry_run is None else dry_run
        delivered: list[str] = []
        failures: list[PluginFailure] | None = None
        for call in snapshot.handlers.get(event.event_type, ()):
            try:
                call.fn(event, call.dry_context if dry else call.context)
            except Exception as exc:
                failure = self._retry(call, event, dry, exc)
                if failure is not None:
                    failures = [*(failures or ()), failure]
                    continue
            delivered.append(call.name)
        return EmitReport(event, delivered, failures)

    def _retry(self, call: _Call, event: WebhookEvent, dry: bool, exc: Exception) -> PluginFailure | None:
        attempt = 0
        while attempt < call.max_retries:
            attempt += 1
            time.sleep(self._backoff(attempt, exc))
            try:
                call.fn(event, self._handler_context(call, attempt, dry))
                return None
            except Exception as again:
                exc = again
        return self._failure(call, "handle_event", exc, attempt + 1)

    async def aemit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """The asyncio twin of :meth:`emit`; handlers (and their retries) run concurrently."""
        snapshot = self._snapshot
        if snapshot.generation != self.registry._generation:
            snapshot = self._refresh()
        dry = self.dry_run if dry_run is None else dry_run
        calls = snapshot.handlers.get(event.event_type, ())
        outcomes = await asyncio.gather(*(self._adeliver(call, event, dry) for call in calls))
        delivered = [call.name for call, failure in zip(calls, outcomes) if failure is None]
        failures = [failure for failure in outcomes if failure is not None]
        return EmitReport(event, delivered, failures)

    async def _adeliver(self, call: _Call, event: WebhookEvent, dry: bool) -> PluginFailure | None:
        attempt = 0
        while True:
            context = (
                (call.dry_context if dry else call.context)
                if attempt == 0
                else self._handler_context(call, attempt, dry)
            )
            try:
                await self._acall(call, "handle_event", event, context)
                return None
            except Exception as exc:
                if attempt >= call.max_retries:
                    return self._failure(call, "handle_event", exc, attempt + 1)
                attempt += 1
                await asyncio.sleep(self._backoff(attempt, exc))


def _name_of(plugin: object) -> str:
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(plugin, "__name__", type(plugin).__name__)
