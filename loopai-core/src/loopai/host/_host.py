"""The host: builds the plugin set once, then runs the validate, sample and emit strategies over it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any
from uuid import UUID

from loopai._errors import StartupError
from loopai._log import logger
from loopai.config import LoopaiConfig, TaskSettings, by_uuid, load_config
from loopai.delivery import Deliverer, OutboxSpec, open_outbox
from loopai.discovery import DiscoveredPlugin, Selection
from loopai.host._build import populate
from loopai.host._calls import HostCalls
from loopai.host._emit import Emitter
from loopai.host._invoke import Invoker
from loopai.host._lifecycle import Lifecycle
from loopai.host._meter import Meter
from loopai.host._monitor import TaskMonitor
from loopai.host._outcome import Outcomes
from loopai.host._plan import Plan
from loopai.host._sample import Sampling
from loopai.host._settings import Settings
from loopai.registry import PluginRegistry
from loopai.state import MemoryStateStore, StateStore

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
        self.registry = registry if registry is not None else PluginRegistry()
        self.problems: list[str] = []
        settings = Settings.resolve(
            self.config,
            environ,
            strict=strict,
            trace=trace,
            dry_run=dry_run,
            stop_on_failure=stop_on_failure,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
        )
        self.strict, self._tracer, self.dry_run = settings.strict, settings.tracer, settings.dry_run
        self.stop_on_failure, self.max_retries = settings.stop_on_failure, settings.max_retries
        self.default_timeout = settings.default_timeout
        self.backoff = settings.backoff
        """How long a failed delivery waits before its retry (see :class:`loopai.delivery.Backoff`)."""
        self._invoker = Invoker()
        self._meter = Meter() if meter else None
        self._outcomes = Outcomes(self._invoker, self._meter)
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
