"""The host: builds the plugin set once, then runs the validate, sample and emit strategies over it."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any
from uuid import UUID

from loopai._errors import StartupError
from loopai._flags import flag
from loopai._models import ExecutionRecord, SamplingContext, ValidationContext, WebhookEvent, WebhookEventType
from loopai._report import EmitReport, PluginFailure, SamplingReport, ValidationReport
from loopai.config import LoopaiConfig, TaskSettings, by_uuid, load_config
from loopai.delivery import Backoff, Deliverer, Outbox, OutboxSpec, open_outbox
from loopai.discovery import DiscoveredPlugin, Selection
from loopai.host._build import populate
from loopai.host._emit import Emitter
from loopai.host._invoke import Invoker, Tracer
from loopai.host._lifecycle import Lifecycle
from loopai.host._meter import Meter, PluginUsage
from loopai.host._monitor import Observation, TaskMonitor
from loopai.host._outcome import Outcomes
from loopai.host._plan import Call, Plan, build_plan
from loopai.host._record import RecordReport
from loopai.host._sample import Sampling
from loopai.host._validate import avalidate, validate
from loopai.registry import PluginRegistry
from loopai.state import MemoryStateStore, StateStore, TaskStatistics

__all__ = ["Host"]

log = logging.getLogger("loopai")


class Host:
    """Runs loopai plugins for an application: validation, sampling and events.

    Build one per application (there is no global host)::

        with loopai.Host(config=loopai.load_config(), plugins=[MyValidator()]) as host:
            report = host.validate(execution, context)

    Plugins come from ``plugins`` (registered by code), from installed packages (with
    ``discover=True``, as :meth:`from_config` does) and from ``config`` (entries with a
    ``factory``). Each is configured once, from its entry in ``config``. A plugin that
    cannot be registered, configured or started is left out and described in
    :attr:`problems`; with ``strict`` (argument, config ``strict = true`` or
    ``LOOPAI_STRICT_PLUGINS=1``) the constructor or :meth:`start` raises
    :class:`loopai.StartupError` listing every problem instead.

    Dispatch never lets one plugin stop the others: an exception (``SystemExit``
    included; only ``KeyboardInterrupt``, ``GeneratorExit`` and the cancellation of the
    caller's own task go through), a wrong return type or a timeout is caught and named
    in the call's report. All methods are thread-safe; ``avalidate``, ``ashould_sample``
    and ``aemit`` are the asyncio twins, and ``async with`` (:meth:`astart`,
    :meth:`aclose`) runs async ``startup``/``shutdown`` hooks on the application's event
    loop. Sync and async plugins work from both.

    Tasks: the tasks table (``tasks``, else ``config.tasks``) gives each task's schemas and
    sampling rate (the default contexts of :meth:`validate` and :meth:`should_sample`) and
    its rolling thresholds (:meth:`observe`). Per-task state (statistics, time-based sample
    claims, rolling windows) lives in ``state`` (default: in this process).

    Durable delivery is opt-in here: ``emit`` writes events to an outbox (see
    :attr:`outbox`) only when one is named, by ``outbox=`` (a :class:`loopai.Outbox`, a
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
        outbox: OutboxSpec = None,
        meter: bool = False,
        state: StateStore | None = None,
        tasks: Mapping[UUID, TaskSettings] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.config = config if config is not None else LoopaiConfig()
        dispatch = self.config.dispatch
        self.registry = registry if registry is not None else PluginRegistry()
        self.problems: list[str] = []
        self.strict: bool = next(
            v for v in (strict, flag(environ, "LOOPAI_STRICT_PLUGINS"), self.config.strict) if v is not None
        )
        trace_on = trace if trace is not None else (flag(environ, "LOOPAI_TRACE") or self.config.trace)
        stream = trace if not isinstance(trace, bool) and trace is not None else None
        self._tracer = Tracer(stream) if trace_on else None
        self.dry_run = dispatch.dry_run if dry_run is None else dry_run
        self.stop_on_failure = dispatch.stop_on_failure if stop_on_failure is None else stop_on_failure
        self.max_retries = dispatch.max_retries if max_retries is None else max_retries
        self.default_timeout = dispatch.default_timeout
        self._invoker = Invoker()
        self._meter = Meter() if meter else None
        self._outcomes = Outcomes(self._invoker, self._meter)
        self.backoff = Backoff(
            dispatch.retry_backoff if retry_backoff is None else retry_backoff,
            dispatch.retry_max_backoff,
            random=random.Random(),
        )
        """How long a failed delivery waits before its retry (see :class:`loopai.delivery.Backoff`)."""
        self._emitter = Emitter(Deliverer(self.backoff, self._dead_letter), self._outcomes)
        self.state: StateStore = state if state is not None else MemoryStateStore()
        """Per-task statistics, time-based sample claims and rolling windows."""
        self._sampling = Sampling(self.state, self._outcomes)
        self.tasks = TaskMonitor(tasks if tasks is not None else by_uuid(self.config.tasks), self.state)
        """The tasks table as the host uses it (see :class:`loopai.host.TaskMonitor`)."""
        self._outbox, self._owns_outbox = open_outbox(outbox, self.config, environ)
        self._lifecycle = Lifecycle(self.registry, self._invoker, self._tracer, self.default_timeout, self._problem)
        self._plan = Plan()
        self.discovered: list[DiscoveredPlugin]
        """Every plugin found through entry points (with ``discover=True``) and its status."""
        self.discovered, problems = populate(
            self.registry,
            self.config,
            plugins,
            installed=discover,
            environ=environ,
            selection=selection,
            paths=paths,
            strict=self.strict,
        )
        for problem in problems:
            self._problem(problem)
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
        config = load_config(path, environ=environ)
        options.setdefault("outbox", True)
        return cls(config, environ=environ, discover=True, **options)

    # -- settings read by the strategies ---------------------------------------------------

    @property
    def retry_backoff(self) -> float:
        """Seconds before the first retry of a failed delivery (doubling after each)."""
        return self.backoff.base

    @retry_backoff.setter
    def retry_backoff(self, seconds: float) -> None:
        self.backoff.base = seconds

    @property
    def retry_max_backoff(self) -> float:
        """The longest wait between two tries of a delivery (a ``retry_after`` may be longer)."""
        return self.backoff.ceiling

    @retry_max_backoff.setter
    def retry_max_backoff(self, seconds: float) -> None:
        self.backoff.ceiling = seconds

    @property
    def retry_after_limit(self) -> float:
        """Longest wait for a handler's ``retry_after``, in seconds (never below ``retry_max_backoff``)."""
        return self.backoff.retry_after_limit

    @retry_after_limit.setter
    def retry_after_limit(self, seconds: float) -> None:
        self.backoff.retry_after_limit = seconds

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox events are written to before delivery, or None (direct delivery)."""
        return self._outbox

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)

    def _raise_if_strict(self) -> None:
        if self.strict and self.problems:
            raise StartupError(self.problems)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Host:
        """Run every plugin's ``startup`` hook once (later calls do nothing); returns the host.

        A plugin whose startup fails is disabled and named in :attr:`problems`; in strict
        mode :class:`loopai.StartupError` is raised after all plugins were tried, and the
        plugins that did start are shut down first. Async hooks run on a private event
        loop: from asyncio code use :meth:`astart` (``async with``) instead. Then what the
        outbox holds as pending (left by a killed process) is delivered.
        """
        if not self._lifecycle.begin():
            return self
        self._lifecycle.start(self)
        if self.strict and self.problems:
            self.close()  # release what did start before refusing to run
            self._raise_if_strict()
        self.redeliver()
        return self

    async def astart(self) -> Host:
        """:meth:`start` for asyncio applications (``async with host`` calls it).

        Async ``startup`` hooks are awaited on the running loop, so what they open
        (clients, pools, tasks) belongs to the application's loop; sync hooks are called
        directly (in a thread when the plugin has a timeout). The outbox's leftovers
        are then delivered in a worker thread.
        """
        if not self._lifecycle.begin():
            return self
        await self._lifecycle.astart(self)
        if self.strict and self.problems:
            await self.aclose()
            self._raise_if_strict()
        await asyncio.to_thread(self.redeliver)
        return self

    def close(self) -> None:
        """Run every started plugin's ``shutdown`` hook once, in reverse priority order."""
        entries = self._lifecycle.begin_close()
        if entries is None:
            return
        try:
            self._lifecycle.stop(self, entries)
        finally:
            self._release()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio applications (``async with host`` calls it): async
        ``shutdown`` hooks are awaited on the running loop."""
        entries = self._lifecycle.begin_close()
        if entries is None:
            return
        try:
            await self._lifecycle.astop(self, entries)
        finally:
            await asyncio.to_thread(self._release)

    def _release(self) -> None:
        self._invoker.close()
        if self._outbox is not None and self._owns_outbox:
            self._outbox.close()

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Host:
        return await self.astart()

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- the plugin set as dispatch sees it --------------------------------------------------

    def _current(self) -> Plan:
        plan = self._plan
        if not plan.stale:
            return plan
        self._lifecycle.start_late(self)
        plan = build_plan(
            self.registry, self._invoker, self._tracer, self._meter, self.default_timeout, self.max_retries
        )
        for problem in plan.problems:
            if problem not in self.problems:  # said once, not at every rebuild
                self._problem(problem)
        self._plan = plan
        return plan

    def handled_events(self) -> frozenset[WebhookEventType]:
        """The event types at least one enabled handler takes (emitting others reaches nobody)."""
        return self._current().handled

    def plugin_usage(self) -> list[PluginUsage]:
        """Calls, failures and time per plugin, when the host was built with ``meter=True``
        (metering wraps every call, so it is off by default); else an empty list."""
        return self._meter.usage() if self._meter is not None else []

    # -- validation ------------------------------------------------------------------------

    def validate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """Run every enabled validator, highest priority first, and report.

        ``context`` defaults to the task's (its schemas from the tasks table, when it is
        there). With ``stop_on_failure`` (default: the host's setting) the first invalid
        result ends the run. A validator that fails is reported invalid and named in
        ``report.failures``; the others still run.
        """
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).validation
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        return validate(plan.validators, execution, context, stop, self._outcomes)

    async def avalidate(
        self,
        execution: ExecutionRecord,
        context: ValidationContext | None = None,
        *,
        stop_on_failure: bool | None = None,
    ) -> ValidationReport:
        """The asyncio twin of :meth:`validate`: async validators are awaited on the caller's loop."""
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).validation
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        return await avalidate(plan.validators, execution, context, stop, self._outcomes)

    # -- sampling --------------------------------------------------------------------------

    def statistics(self, task_id: UUID | None) -> TaskStatistics:
        """A snapshot of the host's counts for ``task_id`` (zeros for an unseen task)."""
        return self.state.statistics(task_id)

    def should_sample(self, execution: ExecutionRecord, context: SamplingContext | None = None) -> SamplingReport:
        """Ask enabled samplers, highest priority first, until one says yes.

        ``context`` defaults to the task's (its sampling rate from the tasks table). The host
        fills the context's ``total_executions``, ``sampled_executions`` and
        ``last_sample_time`` with its counts for the task *before* this execution (a given
        ``context`` is updated in place), then counts this execution, and its
        ``executed_at`` as the task's last sample time when it was sampled.
        """
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        return self._sampling.sample(plan.samplers, execution, context)

    async def ashould_sample(
        self, execution: ExecutionRecord, context: SamplingContext | None = None
    ) -> SamplingReport:
        """The asyncio twin of :meth:`should_sample`."""
        plan = self._current()
        if context is None:
            context = self.tasks.view(execution.task_id).sampling.model_copy()
        return await self._sampling.asample(plan.samplers, execution, context)

    # -- events ----------------------------------------------------------------------------

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
        dry = self.dry_run if dry_run is None else dry_run
        return self._emitter.emit(self._current(), event, dry, self._outbox)

    async def aemit(self, event: WebhookEvent, *, dry_run: bool | None = None) -> EmitReport:
        """The asyncio twin of :meth:`emit`; handlers (and their retries) run concurrently."""
        dry = self.dry_run if dry_run is None else dry_run
        return await self._emitter.aemit(self._current(), event, dry, self._outbox)

    def redeliver(self) -> tuple[int, list[PluginFailure]]:
        """Deliver everything the outbox holds as pending (left by a killed process, or
        replayed): returns how many were delivered and the failures (now dead letters).
        Deliveries to handlers that are not loaded stay pending and are named in
        :attr:`problems`. Without an outbox: ``(0, [])``."""
        outbox = self._outbox
        if outbox is None:
            return 0, []
        delivered, failures, missing = self._emitter.redeliver(self._current(), outbox)
        for handler in sorted(missing):
            self._problem(
                f"outbox {outbox.path}: deliveries to webhook handler {handler!r} stay pending: it is not loaded"
            )
        return delivered, failures

    def _dead_letter(self, call: Any, error: BaseException, attempts: int) -> str:
        assert isinstance(call, Call)
        return self._outcomes.message(call, error, attempts)

    # -- one record, end to end --------------------------------------------------------------

    def observe(
        self,
        execution: ExecutionRecord,
        validation: ValidationReport,
        sampling: SamplingReport | None = None,
        *,
        payload: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Count ``execution``'s outcome in its task's rolling window and say what it raised.

        The :class:`~loopai.host.Observation` lists the record's events in order (run
        status, validation, threshold crossings) and builds them (``payload`` is added to
        each event's payload); nothing is emitted here: see :meth:`process`.
        """
        return self.tasks.observe(execution, validation, sampling, payload)

    def process(
        self,
        execution: ExecutionRecord,
        *,
        expected_output: Any = None,
        payload: Mapping[str, Any] | None = None,
    ) -> RecordReport:
        """What ``loopai run`` does with one record: validate it (against its task's schemas and
        ``expected_output``), offer it to the samplers, observe it for its task's thresholds,
        and emit the events it raised that some handler takes."""
        validation = self.validate(execution, self.tasks.view(execution.task_id).validation_context(expected_output))
        sampling = self.should_sample(execution)
        observation = self.observe(execution, validation, sampling, payload=payload)
        emitted = [self.emit(event) for event in observation.events(self.handled_events())]
        return RecordReport(validation, sampling, observation, emitted)

    async def aprocess(
        self,
        execution: ExecutionRecord,
        *,
        expected_output: Any = None,
        payload: Mapping[str, Any] | None = None,
    ) -> RecordReport:
        """The asyncio twin of :meth:`process`."""
        context = self.tasks.view(execution.task_id).validation_context(expected_output)
        validation = await self.avalidate(execution, context)
        sampling = await self.ashould_sample(execution)
        observation = self.observe(execution, validation, sampling, payload=payload)
        events = observation.events(self.handled_events())
        emitted = list(await asyncio.gather(*(self.aemit(event) for event in events)))
        return RecordReport(validation, sampling, observation, emitted)
