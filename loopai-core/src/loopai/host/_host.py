"""The host: builds the plugin set once, then runs the validate, sample and emit strategies over it."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any
from uuid import UUID

from loopai._errors import LoopaiError, StartupError
from loopai._isolation import Raised, attempt, describe, watch_forks
from loopai._kinds import VALIDATOR
from loopai._log import logger
from loopai._redact import redact
from loopai.config import LoopaiConfig, TaskSettings, by_uuid, load_config
from loopai.delivery import Deliverer, OutboxSpec, open_outbox
from loopai.discovery import Selection
from loopai.host._arguments import check_arguments
from loopai.host._breaches import atomic_breaches
from loopai.host._build import Sources, build_set
from loopai.host._calls import HostCalls
from loopai.host._changes import ReloadResult
from loopai.host._closing import CALLS_WAIT, aclose_host, close_host, refuse_if_closed, stop_waiting
from loopai.host._delivering import HostDelivery
from loopai.host._emit import Emitter
from loopai.host._invoke import Invoker
from loopai.host._links import handlers_of, targets_of
from loopai.host._meter import Meter
from loopai.host._monitor import TaskMonitor
from loopai.host._outcome import Outcomes
from loopai.host._process import WorkerPool
from loopai.host._reload import HostAside, areload, reload
from loopai.host._sample import Sampling
from loopai.host._set import PluginSet
from loopai.host._settings import Settings
from loopai.host._triggers import Triggers
from loopai.registry import PluginRegistry, RegisteredPlugin
from loopai.state import PostgresStateStore, StateStore, open_state

__all__ = ["Host"]

log = logger()


class Host(HostCalls):
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

    A validator or sampler whose configuration entry has ``tasks = ["<task id>", ...]`` runs
    only for records of those tasks.

    Order, dependencies and isolation: each kind's plugins are called in their effective order
    (``run_before`` / ``run_after``, then priority; :meth:`call_order` says why); a plugin whose
    ``requires_plugins`` are missing is disabled; ``isolation = "process"`` runs a plugin in
    worker processes with resource limits. :meth:`reload` (and :meth:`areload`) swaps in a new
    plugin set without stopping calls; ``[host] watch_config`` and ``reload_on_sighup`` trigger it.

    Tasks: the tasks table (``tasks``, else ``config.tasks``) gives each task's schemas and
    sampling rate (the default contexts of :meth:`validate` and :meth:`should_sample`) and
    its rolling thresholds (:meth:`observe`). Per-task state (statistics, time-based sample
    claims, rolling windows) lives in ``state``; by default in this process, or in the
    PostgreSQL database that ``LOOPAI_STATE_URL`` or config ``[state] url`` names, shared by
    every host pointed at it (connected when the host starts, closed with it).

    Durable delivery is opt-in here: ``emit`` records events in an outbox (see
    :attr:`outbox`) only when one is named, by ``outbox=`` (a :class:`loopai.Outbox`, a
    path or ``postgresql://`` URL, or ``True`` for the default: the ``[state] url`` database,
    else a file in the user's state folder, the project's own, one per configuration file, or
    ``outboxes/default.sqlite3`` there without one: see :func:`loopai.delivery.default_outbox_path`), by
    ``LOOPAI_OUTBOX`` or by config ``[delivery] outbox``. A PostgreSQL outbox in the state's
    database shares its connections, and a threshold breach is recorded in the transaction that
    flips its flag. Then ``emit`` records and returns, and delivery workers in this process
    deliver in the background (``[delivery]`` settings: deliveries in flight per handler,
    scheduled retries, a circuit breaker per handler); :meth:`close` drains them for up to
    ``[delivery] drain_timeout`` seconds, and a host never closed drains at interpreter exit.
    Without an outbox, ``Host()`` and ``Host(config)`` call handlers inline (retries sleep in
    the caller) and a killed process loses what it had not delivered; nothing is written to the
    user's home. :meth:`from_config` and the ``loopai`` command default to ``outbox=True``;
    ``outbox=False`` turns the outbox off even when one is configured.
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
        meter: bool | Meter = False,
        state: StateStore | None = None,
        tasks: Mapping[UUID, TaskSettings] | None = None,
    ) -> None:
        check_arguments(**locals())  # TypeError or ConfigError naming a wrong argument and what to pass
        environ = os.environ if environ is None else environ
        config = config if config is not None else LoopaiConfig()
        self._environ = environ
        self._options: dict[str, Any] = {
            "strict": strict,
            "trace": trace,
            "dry_run": dry_run,
            "stop_on_failure": stop_on_failure,
            "max_retries": max_retries,
            "retry_backoff": retry_backoff,
        }
        self._config_path: str | os.PathLike[str] | None = config.source
        self._tasks_given = tasks is not None
        self.problems: list[str] = []
        settings = Settings.resolve(config, environ, **self._options)
        self._apply(settings)
        self.backoff = settings.backoff
        watch_forks()  # a child a plugin forks never runs this host's work
        self._invoker = Invoker()
        self._sources = Sources(discover, selection, paths, environ, self._invoker, self._problem, self._given_up)
        self._meter = meter if isinstance(meter, Meter) else (Meter() if meter else None)
        self._outcomes = Outcomes(self._invoker, self._meter)
        self._emitter = Emitter(Deliverer(self.backoff, self._outcomes.dead_letter), self._outcomes)
        self.state: StateStore
        """Per-task statistics, time-based sample claims and rolling windows (see :func:`loopai.state.open_state`)."""
        self.state, self._owns_state = open_state(state, config, environ)
        self._sampling = Sampling(self.state, self._outcomes)
        self.tasks = TaskMonitor(tasks if tasks is not None else by_uuid(config.tasks), self.state)
        """The tasks table as the host uses it (see :class:`loopai.host.TaskMonitor`)."""
        shared = self.state.database if isinstance(self.state, PostgresStateStore) else None
        opened, owned = open_outbox(outbox, config, environ, database=shared)
        me = weakref.ref(self)
        self._delivery = HostDelivery(
            opened,
            owned,
            self.backoff,
            config.delivery,
            self._outcomes.dead_letter,
            targets_of(me),
            stall_notice=config.dispatch.stall_notice,
        )
        delivery = self._delivery
        self.tasks.breaches = atomic_breaches(self.state, opened, handlers_of(me), delivery.recorded, delivery.poke)
        # A host never closed still drains (up to drain_timeout) at exit, or when collected.
        self._finalizer = weakref.finalize(self, self._delivery.close)
        self._reload_lock = threading.Lock()  # released by whichever thread: not an RLock
        self._triggers = Triggers(self.reload, self._problem)
        self._adjusts: list[Callable[[Any], None]] = []
        self._generation = 1
        registry = registry if registry is not None else PluginRegistry()
        self._set, problems = build_set(self._generation, config, registry, settings, self._sources, plugins)
        for problem in problems:
            self._problem(problem)
        self._raise_if_strict()

    def _apply(self, settings: Settings) -> None:
        self.strict, self._tracer, self.dry_run = settings.strict, settings.tracer, settings.dry_run
        self.stop_on_failure, self.max_retries = settings.stop_on_failure, settings.max_retries
        self.default_timeout = settings.default_timeout

    # -- the plugin set ------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether :meth:`start` (or :meth:`astart`) ran."""
        return self._set.lifecycle.started

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`aclose`) ran, or runs: the host takes no more calls."""
        return self._set.closing

    def _given_up(self, pool: WorkerPool, reason: str) -> None:
        """A worker pool gave up on its plugin (crashes in a row, or a startup that failed): it is
        not called again until a reload. A sampler or a handler is disabled (a handler's deliveries
        wait in the outbox). A validator fails closed: it stays in the plan and each call of it
        fails at once with ``reason``, so that no record is judged valid without it."""
        if pool.kind is not VALIDATOR:
            pool.entry.plugin.enabled = False
        self._problem(reason)

    # -- reload ----------------------------------------------------------------------------

    def reload(self, config: LoopaiConfig | None = None) -> ReloadResult:
        """Re-read the configuration (or take ``config``), rediscover installed plugins, and swap
        the new plugin set in; returns what changed, or why nothing did.

        The new set is built and started beside the running one: calls in flight finish on
        the old set, and the old set's ``shutdown`` hooks run after its last call (this method
        waits for that, so do not call it from inside a plugin hook). Statistics, task state,
        the tasks table's state and the outbox carry over; plugins registered in code are
        carried over as the same objects (their configuration re-applied, never started
        twice). A plugin installed since appears, one uninstalled goes; modules already
        imported are not imported again (an isolated plugin's new workers do import afresh).

        A reload that fails changes nothing: the configuration cannot be read, strict mode
        finds a problem, a new plugin's ``startup`` raises, or a plugin that runs now would be
        lost to a failure (it no longer loads, or its new settings are refused). The
        :class:`~loopai.host.ReloadResult` says why (and it is logged). Thread-safe: reloads
        run one at a time. From asyncio code use :meth:`areload`; for SIGHUP see
        :func:`loopai.host.reload_on_sighup` and ``[host] reload_on_sighup``; ``[host]
        watch_config = true`` reloads when the file changes.
        """
        with self._reload_lock:
            result = reload(self, config)
        return result

    async def areload(self, config: LoopaiConfig | None = None) -> ReloadResult:
        """:meth:`reload` for asyncio applications: async ``startup``/``shutdown`` hooks run on the
        running loop, and the wait for the old set's last call does not block it."""
        await asyncio.to_thread(self._reload_lock.acquire)
        try:
            return await areload(self, config)
        finally:
            self._reload_lock.release()

    def adjust_plugins(self, adjust: Callable[[Any], None]) -> None:
        """Call ``adjust(host)`` now, and again with each plugin set a reload builds, before that set
        takes a call: what an application sets on plugins in code outlives reloads, which re-read
        only the configuration (``loopai run`` and ``loopai serve`` keep the console handler to
        alerts so). During a reload ``host.registry`` and ``host.config`` are the new set's; what
        ``adjust`` raises then is a problem of the reload, and the new set is kept."""
        adjust(self)
        self._adjusts.append(adjust)

    def _read_config(self) -> LoopaiConfig:
        """The configuration again, from where it came from (a given one without a file: itself)."""
        if self._config_path is None and not self._set.config.searched:
            return self._set.config
        return load_config(self._config_path, environ=self._environ)

    def _build_set(
        self, config: LoopaiConfig, carried: Sequence[RegisteredPlugin]
    ) -> tuple[PluginSet, list[str], Settings]:
        """The next plugin set, built from ``config`` aside (not started), its problems, its settings."""
        settings = Settings.resolve(config, self._environ, **self._options)
        self._generation += 1
        plugin_set, problems = build_set(
            self._generation, config, PluginRegistry(), settings, self._sources, (), carried
        )
        for adjust in self._adjusts:
            outcome = attempt(adjust, HostAside(self, plugin_set))
            if isinstance(outcome, Raised):
                named = getattr(adjust, "__qualname__", repr(adjust))
                problems.append(f"adjusting the reloaded plugins failed: {named} raised {describe(outcome.error)}")
        previous = self._set.config.delivery.outbox
        if config.delivery.outbox != previous and self._delivery.outbox is not None:
            problems.append(
                f"[delivery] outbox changed to {redact(config.delivery.outbox)!r}: the outbox in use "
                f"({self._delivery.outbox.path}) stays until the host restarts"
            )
        return plugin_set, problems, settings

    def _swap(self, candidate: PluginSet, settings: Settings, problems: Sequence[str]) -> None:
        """Make ``candidate`` current, with its settings and tasks (a reload's last step)."""
        self._apply(settings)
        self.backoff.base, self.backoff.ceiling = settings.backoff.base, settings.backoff.ceiling
        if not self._tasks_given:
            self.tasks.replace(by_uuid(candidate.config.tasks))
        if candidate.config.source is not None:
            self._config_path = candidate.config.source
        candidate.lifecycle.report_to(self._problem)
        self._set = candidate  # the swap: from here on every call takes the new set
        for problem in problems:
            self._problem(problem)
        self._triggers.follow(candidate.config)

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
        host = cls(config, environ=environ, discover=True, **options)
        host._config_path = path if path is not None else config.source
        return host

    def _raise_if_strict(self) -> None:
        if self.strict and self.problems:
            raise StartupError(self.problems)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Host:
        """Run every plugin's ``startup`` hook once (later calls do nothing); returns the host.

        A plugin whose startup fails is disabled and named in :attr:`problems`; in strict
        mode :class:`loopai.StartupError` is raised after all plugins were tried, and the
        plugins that did start are shut down first. Async hooks run on a private event
        loop: from asyncio code use :meth:`astart` (``async with``) instead. Then, with an
        outbox, the delivery workers start: what it holds as due (left by a killed process,
        or by a host closed before its deliveries were done) goes out in the background.

        A closed host does not start again (:class:`loopai.LoopaiError`: build a new one). A host
        used without starting it (``Host(plugins=[...])``, then ``host.validate(...)``) calls its
        plugins all the same, but their ``startup`` hooks never ran.
        """
        refuse_if_closed(self)
        self.connect()
        lifecycle = self._set.lifecycle
        if not lifecycle.begin():
            return self
        lifecycle.start(self)
        if self.strict and self.problems:
            self.close()  # release what did start before refusing to run
            self._raise_if_strict()
        self._triggers.start(self.config)
        self._start_delivery(None)
        return self

    async def astart(self) -> Host:
        """:meth:`start` for asyncio applications (``async with host`` calls it).

        Async ``startup`` hooks are awaited on the running loop, so what they open
        (clients, pools, tasks) belongs to the application's loop; sync hooks are called
        directly (in a thread when the plugin has a timeout). The delivery workers then start;
        async handlers deliver on this loop.
        """
        refuse_if_closed(self)
        await asyncio.to_thread(self.connect)
        lifecycle = self._set.lifecycle
        if not lifecycle.begin():
            return self
        await lifecycle.astart(self)
        if self.strict and self.problems:
            await self.aclose()
            self._raise_if_strict()
        self._triggers.start(self.config)
        await asyncio.to_thread(self._start_delivery, asyncio.get_running_loop())
        return self

    def _start_delivery(self, loop: asyncio.AbstractEventLoop | None) -> None:
        try:
            self._name_missing_handlers()
        except LoopaiError as exc:  # a failing outbox: said, kept for delivery_failure; nothing delivers
            self._problem(str(exc))
            self._delivery.failed(exc)
            return
        self._delivery.start(loop)

    def close(self, *, drain_timeout: float | None = None, wait_for_database: bool = True) -> None:
        """Refuse every call made from now on (:class:`loopai.LoopaiError`: the host is closed), wait
        up to 30 s for the calls in flight (past it, those still running are named on the ``loopai``
        logger), drain the delivery workers for up to ``drain_timeout`` seconds (default: ``[delivery]
        drain_timeout``; 0: no wait; what is left stays pending in the outbox), then run every
        started plugin's ``shutdown`` hook once, in reverse order (plugins after those that
        require them); stop isolated plugins' workers and the reload triggers, and close what
        the host opened (its threads joined). Later calls do nothing. With ``wait_for_database=False``
        (a process told to stop now) nothing is waited for: not the calls in flight, nor a state or
        outbox database the host opened while it is away (the host's last counts are written if it
        answers at once; a state store that could not write them raises
        :class:`loopai.database.DatabaseUnavailable` saying how many). Do not call it from inside a
        plugin's hook (the calls in flight are then not waited for)."""
        if not wait_for_database:
            stop_waiting(self)
        self._triggers.stop()
        close_host(self, drain_timeout, CALLS_WAIT if wait_for_database else 0.0)

    async def aclose(self, *, drain_timeout: float | None = None, wait_for_database: bool = True) -> None:
        """:meth:`close` for asyncio applications (``async with host`` calls it): the calls in flight
        are waited for without blocking the loop, and async ``shutdown`` hooks are awaited on it.
        ``drain_timeout`` and ``wait_for_database`` as for :meth:`close`."""
        if not wait_for_database:
            stop_waiting(self)
        await asyncio.to_thread(self._triggers.stop)
        await aclose_host(self, drain_timeout, CALLS_WAIT if wait_for_database else 0.0)

    def stop_waiting(self) -> None:
        """Wait no more for a state or outbox database the host opened while it is away: what waits
        for one now gives up at once, and later calls try once. Safe from any thread and from a
        signal handler (a second Ctrl-C while :meth:`close` writes the last counts)."""
        stop_waiting(self)

    def connect(self) -> None:
        """Connect the state store and the outbox that have a server (PostgreSQL), as :meth:`start`
        does first: call it before anything else to find out that one cannot be reached (raises
        :class:`loopai.ConfigError` naming it and what to check; the password never shown).
        Nothing is started; calling it again, or :meth:`start` after it, connects nothing twice."""
        opener = getattr(self.state, "open", None)
        if callable(opener):
            opener()
        self._delivery.open()

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Host:
        return await self.astart()

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
