"""The host: builds the plugin set from configuration and code, and dispatches every hook call."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import random
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any, Final
from uuid import UUID

from loopai._config import LoopaiConfig, PluginConfiguration
from loopai._discovery import DiscoveredPlugin, discover, load_discovered
from loopai._dispatch import PASS_THROUGH, HookTimeout, Invoker, Tracer
from loopai._errors import LoopaiError, PluginError, StartupError
from loopai._meter import Meter, PluginUsage
from loopai._models import (
    ExecutionRecord,
    ExecutionStatus,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
)
from loopai._outbox import Outbox, default_outbox_path
from loopai._plugin import (
    Plugin,
    SamplerPlugin,
    ValidatorPlugin,
    WebhookHandlerPlugin,
    kind_label,
    validate_settings,
)
from loopai._registry import KINDS, PluginRegistry, RegisteredPlugin
from loopai._report import (
    EmitReport,
    FailureKind,
    PluginFailure,
    SamplingReport,
    ValidationReport,
    _FastSamplingReport,
)
from loopai._selection import Selection
from loopai._snapshot import Call, Snapshot, TaskStatistics, build_snapshot, handler_context

__all__ = ["Host", "TaskStatistics"]

log = logging.getLogger("loopai")

_TRUE = {"1", "true", "yes", "on"}
_SUCCESS = ExecutionStatus.SUCCESS
RETRY_AFTER_LIMIT: Final = 300.0
"""Seconds a handler's ``retry_after`` (an HTTP ``Retry-After``) is honoured up to, by default."""


class _WrongType(LoopaiError):
    pass


def _flag(environ: Mapping[str, str], name: str) -> bool | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in _TRUE


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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

    Dispatch never lets one plugin stop the others: an exception (``SystemExit``
    included; only ``KeyboardInterrupt``, ``GeneratorExit`` and task cancellation go
    through), a wrong return type or a timeout is caught and named in the call's report.
    All methods are thread-safe; ``avalidate``, ``ashould_sample`` and ``aemit`` are the
    asyncio twins, and ``async with`` (:meth:`astart`, :meth:`aclose`) runs async
    ``startup``/``shutdown`` hooks on the application's event loop. Sync and async
    plugins work from both.

    Durable delivery is opt-in here: ``emit`` writes events to an outbox (see
    :attr:`outbox`) only when one is named, by ``outbox=`` (an :class:`loopai.Outbox`, a
    path, or ``True`` for the default ``$XDG_STATE_HOME/loopai/outbox.sqlite3``), by
    ``LOOPAI_OUTBOX`` or by config ``[delivery] outbox``. Without one, ``Host()`` and
    ``Host(config)`` call handlers directly and a killed process loses what it had not
    delivered; nothing is written to the user's home. :meth:`from_config` and the
    ``loopai`` command default to ``outbox=True``; ``outbox=False`` turns the outbox off
    even when one is configured.
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
        outbox: Outbox | str | os.PathLike[str] | bool | None = None,
        meter: bool = False,
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
        self.retry_after_limit = RETRY_AFTER_LIMIT
        """Longest wait for a handler's ``retry_after``, in seconds (never below ``retry_max_backoff``)."""
        self.default_timeout = dispatch.default_timeout
        self._invoker = Invoker()
        self._meter = Meter() if meter else None
        self._random = random.Random()
        self._stats: dict[int | None, TaskStatistics] = {}  # by task_id.int: hashing a UUID is slow
        self._stats_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._started = False
        self._closed = False
        self._running: list[RegisteredPlugin] = []
        self._snapshot = Snapshot(-1)
        self._outbox, self._owns_outbox = self._open_outbox(outbox, environ)

        self.discovered: list[DiscoveredPlugin] = []
        """Every plugin found through entry points (with ``discover=True``) and its status."""
        for plugin in plugins:
            self._try(partial(self.registry.register, plugin), f"plugin {_name_of(plugin)!r}")
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
        options.setdefault("outbox", True)
        return cls(config, environ=environ, discover=True, **options)

    def _open_outbox(
        self, outbox: Outbox | str | os.PathLike[str] | bool | None, environ: Mapping[str, str]
    ) -> tuple[Outbox | None, bool]:
        if isinstance(outbox, Outbox):
            return outbox, False
        if outbox is False:
            return None, False
        if outbox is None or outbox is True:
            location = outbox_location(self.config, environ, default=outbox is True)
        else:
            location = Path(outbox)
        return (Outbox(location), True) if location is not None else (None, False)

    def _discover(self, environ: Mapping[str, str], selection: Selection | None, paths: Sequence[str] | None) -> None:
        if selection is None:
            selection = Selection.resolve(self.config, environ)
        self.discovered = discover(self.config, environ=environ, selection=selection, paths=paths)
        load_discovered(self.discovered, self.registry, self.config, strict=self.strict)
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
        except BaseException as exc:  # a plugin's own code failed (constructor, import...), even sys.exit()
            if isinstance(exc, PASS_THROUGH):
                raise
            self._problem(f"{what} failed: {_describe(exc)}")
            return False
        return True

    def _raise_if_strict(self) -> None:
        if self.strict and self.problems:
            raise StartupError(self.problems)

    def _apply_config(self) -> None:
        for kind in KINDS:
            key = {ValidatorPlugin: "validators", SamplerPlugin: "samplers", WebhookHandlerPlugin: "webhook_handlers"}[
                kind
            ]
            for entry in self.config.plugins.for_kind(kind):
                self._apply_entry(kind, entry, self.config.where(key, entry.name))

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
        configure_now = "configuration" in given and not entry.factory and found is None
        if configure_now and not self._try(lambda: plugin.configure(entry.configuration, where=where), where):
            self.registry.unregister(kind, entry.name)
            return
        if isinstance(plugin, WebhookHandlerPlugin) and not self._accepts(plugin, entry, where):
            self.registry.unregister(kind, entry.name)
            return
        plugin.metadata = {**plugin.metadata, **entry.metadata}
        if entry.timeout is not None:
            plugin.timeout = entry.timeout
        if "priority" in given:
            plugin.priority = entry.priority
        if "enabled" in given:
            plugin.enabled = entry.enabled

    def _accepts(self, plugin: WebhookHandlerPlugin, entry: PluginConfiguration, where: str) -> bool:
        """Whether the handler's ``validate_configuration`` accepts its settings; a refusal,
        or an exception, is a problem named after the handler."""
        try:
            accepted = plugin.validate_configuration(entry.configuration)
        except BaseException as exc:
            if isinstance(exc, PASS_THROUGH):
                raise
            self._problem(
                f"{where}: webhook handler {entry.name!r} was left out: its validate_configuration raised "
                f"{_describe(exc)}; check its settings, or report it to the plugin's maintainers"
            )
            return False
        if not accepted:
            self._problem(f"{where}: webhook handler {entry.name!r} refused its configuration; check its settings")
        return bool(accepted)

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
        elif isinstance(target, (type, types.FunctionType)):
            target = target()  # a class that is not a Plugin, or a function that makes the plugin
        if isinstance(target, Plugin) and "configuration" in entry.model_fields_set:
            target.configure(entry.configuration, where=where)
        self.registry.register(target, name=entry.name)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Host:
        """Run every plugin's ``startup`` hook once (later calls do nothing); returns the host.

        A plugin whose startup fails is disabled and named in :attr:`problems`; in strict
        mode :class:`loopai.StartupError` is raised after all plugins were tried, and the
        plugins that did start are shut down first. Async hooks run on a private event
        loop: from asyncio code use :meth:`astart` (``async with``) instead.
        """
        if not self._begin_start():
            return self
        failed: set[int] = set()
        for entry in self._lifecycle_entries("startup"):
            try:
                self._lifecycle_call("startup", entry)
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                self._start_failed(entry, exc, failed)
        if self._end_start(failed):
            self.close()  # release what did start before refusing to run
        self._raise_if_strict()
        self.redeliver()  # what a killed process left in the outbox
        return self

    async def astart(self) -> Host:
        """:meth:`start` for asyncio applications (``async with host`` calls it).

        Async ``startup`` hooks are awaited on the running loop, so what they open
        (clients, pools, tasks) belongs to the application's loop; sync hooks are called
        directly (in a thread when the plugin has a timeout). The outbox's leftovers
        are then delivered in a worker thread.
        """
        if not self._begin_start():
            return self
        failed: set[int] = set()
        for entry in self._lifecycle_entries("startup"):
            try:
                await self._alifecycle_call("startup", entry)
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                self._start_failed(entry, exc, failed)
        if self._end_start(failed):
            await self.aclose()
        self._raise_if_strict()
        await asyncio.to_thread(self.redeliver)
        return self

    def _begin_start(self) -> bool:
        """Claim the start (False when the host was started already)."""
        with self._state_lock:
            if self._started:
                return False
            self._started = True
            # What close() shuts down: the plugins enabled now, even if disabled later;
            # not those registered after start, nor those whose startup failed.
            self._running = [e for e in self.registry if e.plugin.enabled]
        return True

    def _start_failed(self, entry: RegisteredPlugin, exc: BaseException, failed: set[int]) -> None:
        self._problem(f"plugin {entry.name!r} failed to start and was disabled: {_describe(exc)}")
        failed.add(id(entry.startup))

    def _shutdown_failed(self, entry: RegisteredPlugin, exc: BaseException) -> None:
        self._problem(f"plugin {entry.name!r} failed to shut down: {_describe(exc)}")

    def _end_start(self, failed: set[int]) -> bool:
        """Disable the plugins whose startup failed; True when strict mode must refuse to run."""
        if failed:
            # A module implementing several kinds has one entry per kind: disable them all.
            for entry in self.registry:
                if id(entry.startup) in failed:
                    entry.plugin.enabled = False
            self._running = [e for e in self._running if id(e.startup) not in failed]
        return self.strict and bool(self.problems)

    def _start_late(self) -> None:
        """Start plugins enabled or registered after :meth:`start` (they get shutdown too)."""
        with self._state_lock:
            running = {id(e.startup) for e in self._running} | {id(e) for e in self._running}
            late = [e for e in self.registry if e.plugin.enabled and id(e) not in running]
            self._running.extend(late)
        started: set[int] = set()
        for entry in late:
            if entry.startup is None or id(entry.startup) in started or id(entry.startup) in running:
                continue
            started.add(id(entry.startup))
            try:
                self._lifecycle_call("startup", entry)
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                self._start_failed(entry, exc, set())
                entry.plugin.enabled = False

    def close(self) -> None:
        """Run every started plugin's ``shutdown`` hook once, in reverse priority order."""
        entries = self._begin_close()
        if entries is None:
            return
        try:
            for entry in entries:
                try:
                    self._lifecycle_call("shutdown", entry)
                except BaseException as exc:
                    if isinstance(exc, PASS_THROUGH):
                        raise
                    self._shutdown_failed(entry, exc)
        finally:
            self._release()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio applications (``async with host`` calls it): async
        ``shutdown`` hooks are awaited on the running loop."""
        entries = self._begin_close()
        if entries is None:
            return
        try:
            for entry in entries:
                try:
                    await self._alifecycle_call("shutdown", entry)
                except BaseException as exc:
                    if isinstance(exc, PASS_THROUGH):
                        raise
                    self._shutdown_failed(entry, exc)
        finally:
            await asyncio.to_thread(self._release)

    def _begin_close(self) -> list[RegisteredPlugin] | None:
        """Claim the close: the entries to shut down, in order; None when closed already."""
        with self._state_lock:
            if self._closed:
                return None
            self._closed = True
            started = self._started
        return list(reversed(self._lifecycle_entries("shutdown", self._running))) if started else []

    def _release(self) -> None:
        self._invoker.close()
        if self._outbox is not None and self._owns_outbox:
            self._outbox.close()

    def _lifecycle_entries(self, hook: str, among: Iterable[RegisteredPlugin] | None = None) -> list[RegisteredPlugin]:
        """Entries with ``hook``, by priority, once per hook function (a module may be of
        several kinds); the enabled ones in the registry, or all of ``among``."""
        seen: set[int] = set()
        chosen = []
        everything = sorted(self.registry if among is None else among, key=lambda e: (-e.plugin.priority, e.name))
        for entry in everything:
            function = getattr(entry, hook)
            if function is None or id(function) in seen or (among is None and not entry.plugin.enabled):
                continue
            seen.add(id(function))
            chosen.append(entry)
        return chosen

    def _lifecycle_call(self, hook: str, entry: RegisteredPlugin) -> None:
        function = getattr(entry, hook)
        timeout = entry.plugin.timeout or self.default_timeout

        def run(host: Host) -> Any:
            return self._invoker.call_sync(function, (host,), timeout)

        if self._tracer is not None:
            run = self._tracer.wrap(hook, entry.name, run)
        run(self)

    async def _alifecycle_call(self, hook: str, entry: RegisteredPlugin) -> None:
        function = getattr(entry, hook)
        timeout = entry.plugin.timeout or self.default_timeout
        started = time.perf_counter()
        try:
            result = await self._invoker.call_async(function, (self,), timeout, inspect.iscoroutinefunction(function))
        except BaseException as exc:
            if self._tracer is not None:
                self._tracer.line(hook, entry.name, started, f"raised {type(exc).__name__}: {exc}")
            raise
        if self._tracer is not None:
            self._tracer.line(hook, entry.name, started, f"-> {type(result).__name__}")

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Host:
        return await self.astart()

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- the plugin set as dispatch sees it ------------------------------------------

    def _refresh(self) -> Snapshot:
        if self._started and not self._closed:
            self._start_late()
        snapshot = build_snapshot(
            self.registry, self._invoker, self._tracer, self._meter, self.default_timeout, self.max_retries
        )
        for problem in snapshot.problems:
            if problem not in self.problems:  # said once, not at every rebuild
                self._problem(problem)
        self._snapshot = snapshot
        return snapshot

    # -- failures --------------------------------------------------------------------

    def plugin_usage(self) -> list[PluginUsage]:
        """Calls, failures and time per plugin, when the host was built with ``meter=True``
        (metering wraps every call, so it is off by default); else an empty list."""
        return self._meter.usage() if self._meter is not None else []

    def _failure(self, call: Call, hook: str, exc: BaseException, attempts: int = 1) -> PluginFailure:
        if self._meter is not None:
            self._meter.failed(kind_label(call.entry.kind), call.name)
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

    def _checked(self, call: Call, result: Any, expected: type, hook: str) -> Any:
        if isinstance(result, expected):
            return result
        if hasattr(result, "__await__"):  # a plain function that returned a coroutine
            return self._checked(call, self._invoker.wait(result, call.timeout), expected, hook)
        raise _WrongType(f"returned {type(result).__name__}, but {hook} must return {expected.__name__}")

    def _invalid(self, call: Call, failure: PluginFailure) -> ValidationResult:
        return ValidationResult(
            is_valid=False,
            validator_type=call.name,
            message=failure.message,
            metadata={"plugin_failure": failure.problem},
        )

    async def _acall(self, call: Call, hook: str, first: Any, second: Any) -> Any:
        entry = call.entry
        started = time.perf_counter()
        if self._meter is not None:
            # Timed here, not by a wrapper: the async path calls the plugin's own function.
            try:
                return await self._timed_acall(call, hook, first, second, started)
            finally:
                self._meter.record(kind_label(entry.kind), call.name, time.perf_counter() - started)
        return await self._timed_acall(call, hook, first, second, started)

    async def _timed_acall(self, call: Call, hook: str, first: Any, second: Any, started: float) -> Any:
        entry = call.entry
        try:
            result = await self._invoker.call_async(
                entry.call, (first, second), call.timeout, entry.is_async, offload=hook == "handle_event"
            )
        except BaseException as exc:
            if self._tracer is not None:
                self._tracer.line(hook, call.name, started, f"raised {type(exc).__name__}: {exc}")
            raise
        if self._tracer is not None:
            self._tracer.line(hook, call.name, started, f"-> {type(result).__name__}")
        return result

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
        if snapshot.stale:
            snapshot = self._refresh()
        if context is None:
            context = ValidationContext(task_id=execution.task_id)
        return snapshot.validate(self, execution, context, stop_on_failure)

    def _validator_failed(self, report: ValidationReport, call: Call, exc: BaseException) -> ValidationResult:
        failure = self._failure(call, "validate", exc)
        report.failures = [*report.failures, failure]
        return self._invalid(call, failure)

    async def avalidate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """The asyncio twin of :meth:`validate`: async validators are awaited on the caller's loop."""
        snapshot = self._snapshot
        if snapshot.stale:
            snapshot = self._refresh()
        if context is None:
            context = ValidationContext(task_id=execution.task_id)
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        results: list[ValidationResult] = []
        report = ValidationReport(results)
        for call in snapshot.validators:
            try:
                result = await self._acall(call, "validate", execution, context)
                if not isinstance(result, ValidationResult):
                    raise _WrongType(f"returned {type(result).__name__}, but validate must return ValidationResult")
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                result = self._validator_failed(report, call, exc)
            results.append(result)
            if not result.is_valid:
                report.is_valid = False
                if stop:
                    report.stopped_early = len(results) < len(snapshot.validators)
                    break
        return report

    # -- sampling --------------------------------------------------------------------

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """A snapshot of the host's counts for ``task_id`` (zeros for an unseen task)."""
        with self._stats_lock:
            stats = self._stats.get(task_id.int if task_id is not None else None)
            return stats.copy() if stats is not None else TaskStatistics()

    def _task(self, task_id: UUID) -> TaskStatistics:
        with self._stats_lock:
            return self._stats.setdefault(task_id.int, TaskStatistics())

    def _sampling_context(self, execution: ExecutionRecord, stats: TaskStatistics) -> SamplingContext:
        return SamplingContext(
            task_id=execution.task_id,
            total_executions=stats.total_executions,
            sampled_executions=stats.sampled_executions,
            last_sample_time=stats.last_sample_time,
        )

    def _record(self, stats: TaskStatistics, execution: ExecutionRecord, sampled: bool) -> None:
        failed = execution.status is not TaskStatistics._SUCCESS
        lock = self._stats_lock
        lock.acquire()  # not `with`: half the cost on the sampling hot path, same guarantee
        try:
            stats.total_executions += 1
            if failed:
                stats.failed_executions += 1
            if sampled:
                stats.sampled_executions += 1
                stats.last_sample_time = execution.executed_at
        finally:
            lock.release()

    def should_sample(self, execution: ExecutionRecord, context: SamplingContext | None = None) -> SamplingReport:
        """Ask enabled samplers, highest priority first, until one says yes.

        The host fills the context's ``total_executions``, ``sampled_executions`` and
        ``last_sample_time`` with its counts for the task *before* this execution (a
        given ``context`` is updated in place), then counts this execution, and its
        ``executed_at`` as the task's last sample time when it was sampled.
        """
        snapshot = self._snapshot
        if snapshot.stale:
            snapshot = self._refresh()
        stats = self._stats.get(execution.task_id.int) or self._task(execution.task_id)
        failed = execution.status is not _SUCCESS
        if context is None:
            context = self._sampling_context(execution, stats)
        else:
            # Plain stores into the model's field dict: validated values from our own
            # counters, on a hot path that must stay close to a bare loop.
            fields = context.__dict__
            fields["total_executions"] = stats.total_executions
            fields["sampled_executions"] = stats.sampled_executions
            fields["last_sample_time"] = stats.last_sample_time
        report: SamplingReport = _FastSamplingReport()
        # type(): see validate. The sampler's position is looked up only when needed.
        _type, expected = type, SamplingDecision
        fns = snapshot.sampler_fns
        for fn in fns:
            try:
                decision = fn(execution, context)
                if _type(decision) is not expected:
                    decision = self._checked(
                        snapshot.samplers[_at(fns, fn)], decision, SamplingDecision, "should_sample"
                    )
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                call = snapshot.samplers[_at(fns, fn)]
                report.failures = [*report.failures, self._failure(call, "should_sample", exc)]
                continue
            if decision.should_sample:
                position = _at(fns, fn)
                report.decision = decision
                report.winner = snapshot.samplers[position].name
                report.asked = position + 1
                self._record(stats, execution, True)
                return report
        report.asked = len(fns)
        lock = self._stats_lock  # _record inlined for the common "not sampled" case
        lock.acquire()
        try:
            stats.total_executions += 1
            if failed:
                stats.failed_executions += 1
        finally:
            lock.release()
        return report

    async def ashould_sample(
        self, execution: ExecutionRecord, context: SamplingContext | None = None
    ) -> SamplingReport:
        """The asyncio twin of :meth:`should_sample`."""
        snapshot = self._snapshot
        if snapshot.stale:
            snapshot = self._refresh()
        stats = self._task(execution.task_id)
        if context is None:
            context = self._sampling_context(execution, stats)
        else:
            fields = context.__dict__
            fields["total_executions"] = stats.total_executions
            fields["sampled_executions"] = stats.sampled_executions
            fields["last_sample_time"] = stats.last_sample_time
        report = SamplingReport()
        for call in snapshot.samplers:
            report.asked += 1
            try:
                decision = await self._acall(call, "should_sample", execution, context)
                if not isinstance(decision, SamplingDecision):
                    raise _WrongType(
                        f"returned {type(decision).__name__}, but should_sample must return SamplingDecision"
                    )
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                report.failures = [*report.failures, self._failure(call, "should_sample", exc)]
                continue
            if decision.should_sample:
                report.decision = decision
                report.winner = call.name
                self._record(stats, execution, True)
                return report
        self._record(stats, execution, False)
        return report

    # -- events ----------------------------------------------------------------------

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox events are written to before delivery, or None (direct delivery)."""
        return self._outbox

    def _backoff(self, attempt: int, exc: BaseException) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            return min(float(retry_after), max(self.retry_after_limit, self.retry_max_backoff))
        ceiling = min(self.retry_max_backoff, self.retry_backoff * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + self._random.random() / 2)  # jitter: spread retries of many hosts

    def emit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """Deliver ``event`` to every enabled handler that supports its type, by priority.

        With an outbox (see :attr:`outbox`) the event and one pending delivery per
        handler are stored before any handler is called; each delivery ends
        ``delivered`` or, after its retries, ``dead`` with the last error, and what a
        killed process left pending is delivered by the next :meth:`start`. An event id
        already delivered to a handler is not delivered to it again.

        A handler that raises or times out is retried with exponential backoff and
        jitter (capped by ``retry_max_backoff``) up to its ``max_retries``, with
        ``context.retry_attempt`` counting the retries. When the exception has a
        ``retry_after`` (seconds; the HTTP handler sets it from ``Retry-After``) that
        wait is honoured in full, even past ``retry_max_backoff``, up to
        :attr:`retry_after_limit` (300 s unless changed).

        ``dry_run`` (default: the host's setting) sets ``context.is_dry_run``. A dry run
        is not written to the outbox: it does not count as a delivery, so a later real
        emit of the same event id still delivers it.
        """
        snapshot = self._snapshot
        if snapshot.stale:
            snapshot = self._refresh()
        dry = self.dry_run if dry_run is None else dry_run
        if self._outbox is not None and not dry:
            return self._emit_durably(snapshot, event)
        first, dry_first, all_delivered = snapshot.routes[event.event_type]
        failures: list[PluginFailure] | None = None
        for fn, context in dry_first if dry else first:
            try:
                fn(event, context)
            except BaseException as exc:  # costs nothing until a handler raises
                if isinstance(exc, PASS_THROUGH):
                    raise
                failures = self._retry_failed(snapshot, event, fn, dry, exc, failures)
        if failures is None:
            return all_delivered
        failed = {failure.plugin for failure in failures}
        return EmitReport(event.event_type, [n for n in all_delivered.delivered if n not in failed], failures)

    def _retry_failed(
        self,
        snapshot: Snapshot,
        event: WebhookEvent,
        fn: Any,
        dry: bool,
        error: BaseException,
        failures: list[PluginFailure] | None,
    ) -> list[PluginFailure] | None:
        first, dry_first, _ = snapshot.routes[event.event_type]
        route = dry_first if dry else first
        # By identity: a plugin registered under two names has two calls that compare equal.
        position = _at(tuple(pair[0] for pair in route), fn)
        failure = self._deliver(snapshot.handlers[event.event_type][position], event, dry, 1, error, None)
        return failures if failure is None else [*(failures or ()), failure]

    def _emit_durably(self, snapshot: Snapshot, event: WebhookEvent) -> EmitReport:
        outbox = self._outbox
        assert outbox is not None
        calls = snapshot.handlers.get(event.event_type, ())
        all_delivered = snapshot.routes[event.event_type][2]
        if not calls:
            return all_delivered
        todo = outbox.record(event, all_delivered.delivered)
        delivered: list[str] = []
        failures: list[PluginFailure] = []
        for call in calls:
            if call.name in todo:
                failure = self._deliver(call, event, False, 0, None, outbox)
                if failure is None:
                    delivered.append(call.name)
                else:
                    failures.append(failure)
        if len(delivered) == len(calls):
            return all_delivered  # the common case: the shared report, as emit without an outbox
        return EmitReport(event.event_type, delivered, failures)

    def _deliver(
        self,
        call: Call,
        event: WebhookEvent,
        dry: bool,
        attempt: int,
        error: BaseException | None,
        outbox: Outbox | None,
    ) -> PluginFailure | None:
        """Deliver to one handler from try number ``attempt`` (0: the first), retrying;
        ``error`` is the previous try's error when ``attempt`` > 0. Each outcome is
        written to ``outbox`` (None: not recorded)."""
        event_id = str(event.event_id)
        while True:
            if error is not None:
                if attempt > call.max_retries or getattr(error, "retryable", True) is False:
                    failure = self._failure(call, "handle_event", error, attempt)
                    if outbox is not None:
                        outbox.dead(event_id, call.name, attempt, failure.message)
                    return failure
                if outbox is not None:
                    outbox.failed_attempt(event_id, call.name, attempt, _describe(error))
                time.sleep(self._backoff(attempt, error))
            context = (
                (call.dry_context if dry else call.context) if attempt == 0 else handler_context(call, attempt, dry)
            )
            try:
                call.fn(event, context)
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                error = exc
                attempt += 1
                continue
            if outbox is not None:
                outbox.delivered(event_id, call.name, attempt + 1)
            return None

    def redeliver(self) -> tuple[int, list[PluginFailure]]:
        """Deliver everything the outbox holds as pending (left by a killed process, or
        replayed): returns how many were delivered and the failures (now dead letters).
        Deliveries to handlers that are not loaded stay pending and are named in
        :attr:`problems`. Without an outbox: ``(0, [])``."""
        outbox = self._outbox
        delivered, failures = 0, list[PluginFailure]()
        if outbox is None:
            return delivered, failures
        snapshot = self._snapshot
        if snapshot.stale:
            snapshot = self._refresh()
        missing: set[str] = set()
        for event, handler, attempts, dry in outbox.pending():
            call = snapshot.handler(event.event_type, handler)
            if call is None:
                missing.add(handler)
                continue
            failure = self._deliver(call, event, dry, attempts, None, outbox)
            if failure is None:
                delivered += 1
            else:
                failures.append(failure)
        for handler in sorted(missing):
            self._problem(
                f"outbox {outbox.path}: deliveries to webhook handler {handler!r} stay pending: it is not loaded"
            )
        return delivered, failures

    async def aemit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """The asyncio twin of :meth:`emit`; handlers (and their retries) run concurrently."""
        snapshot = self._snapshot
        if snapshot.stale:
            snapshot = self._refresh()
        dry = self.dry_run if dry_run is None else dry_run
        calls = snapshot.handlers.get(event.event_type, ())
        outbox = None if dry else self._outbox  # dry runs are not recorded: see emit
        if outbox is not None:
            todo = set(outbox.record(event, [call.name for call in calls]))
            calls = tuple(call for call in calls if call.name in todo)
        outcomes = await asyncio.gather(*(self._adeliver(call, event, dry, outbox) for call in calls))
        delivered = [call.name for call, failure in zip(calls, outcomes, strict=True) if failure is None]
        failures = [failure for failure in outcomes if failure is not None]
        return EmitReport(event.event_type, delivered, failures)

    async def _adeliver(
        self, call: Call, event: WebhookEvent, dry: bool, outbox: Outbox | None
    ) -> PluginFailure | None:
        event_id = str(event.event_id)
        attempt = 0
        while True:
            context = (
                (call.dry_context if dry else call.context) if attempt == 0 else handler_context(call, attempt, dry)
            )
            try:
                await self._acall(call, "handle_event", event, context)
            except BaseException as exc:
                if isinstance(exc, PASS_THROUGH):
                    raise
                attempt += 1
                if attempt > call.max_retries or getattr(exc, "retryable", True) is False:
                    failure = self._failure(call, "handle_event", exc, attempt)
                    if outbox is not None:
                        outbox.dead(event_id, call.name, attempt, failure.message)
                    return failure
                if outbox is not None:
                    outbox.failed_attempt(event_id, call.name, attempt, _describe(exc))
                await asyncio.sleep(self._backoff(attempt, exc))
                continue
            if outbox is not None:
                outbox.delivered(event_id, call.name, attempt + 1)
            return None


def outbox_location(config: LoopaiConfig, environ: Mapping[str, str], *, default: bool) -> Path | None:
    """Where the outbox is: ``LOOPAI_OUTBOX``, else config ``[delivery] outbox`` (relative to
    the configuration file), else the default path when ``default``, else None."""
    return resolve_outbox(config.delivery.outbox, config.source, environ, default=default)


def resolve_outbox(
    configured: str | None, source: Path | None, environ: Mapping[str, str], *, default: bool
) -> Path | None:
    """:func:`outbox_location` from its parts: ``configured`` is ``[delivery] outbox`` of the
    configuration file ``source`` (None: built-in defaults)."""
    named = environ.get("LOOPAI_OUTBOX") or None
    if named is None and configured:
        named = configured
        if named != ":memory:" and source is not None and not Path(named).is_absolute():
            return source.parent / named
    if named is not None:
        return Path(named)
    return default_outbox_path(environ) if default else None


def _at(functions: tuple[Any, ...], function: Any) -> int:
    """The position of ``function`` in ``functions``, by identity (bound methods of one
    plugin registered twice compare equal)."""
    return next(i for i, candidate in enumerate(functions) if candidate is function)


def _name_of(plugin: object) -> str:
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(plugin, "__name__", type(plugin).__name__)
