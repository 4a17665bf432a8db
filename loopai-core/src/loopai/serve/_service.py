"""What one running service owns: its host, its keys and limits, its metrics, and the work in flight.

The application's lifespan calls :meth:`Service.start` and :meth:`Service.stop`; routes reach the
service through a dependency (``loopai.serve._deps``). :meth:`Service.areload` is the one place
that reloads the plugins (``Host.areload()``), for SIGHUP and ``POST /api/v1/admin/reload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from typing import Any, Final

from loopai._log import logger
from loopai.config import LoopaiConfig, ServeSettings, by_uuid
from loopai.host import Host, ReloadResult
from loopai.serve._errors import ApiError
from loopai.serve._metrics import Telemetry
from loopai.serve._probes import Probes
from loopai.serve._security import ApiKeys
from loopai.serve._shutdown import close_host

__all__ = ["Service"]

log = logger("loopai.serve")

_CHECK_TIMEOUT: Final = 2.0
"""Seconds the readiness probe, a scrape and a copy of the counts give the outbox and the state store to answer."""
_SYNC_EVERY: Final = 1.0
"""Seconds between two copies of the host's plugin counts into the metrics."""
_AT_START: Final = ("host", "port", "workers", "max_body_mb")
"""``[serve]`` settings read once, at the start: a reload that changes them says a restart is needed."""


class Service:
    """One service: ``host`` (built for it, or given), keys and limits from ``config`` and ``environ``.

    ``owns_host``: close the host when the service stops (False for a host the caller gave and
    will close itself).
    """

    def __init__(
        self,
        config: LoopaiConfig,
        host: Host,
        telemetry: Telemetry,
        environ: Mapping[str, str],
        *,
        owns_host: bool = True,
    ) -> None:
        self.config = config
        self.settings = config.serve
        self.host = host
        self.telemetry = telemetry
        self._environ = environ
        self.keys = ApiKeys.resolve(self.settings, environ)
        self.inbound_key = _inbound_key(self.settings)
        self.max_body_bytes = int(self.settings.max_body_mb * 1024 * 1024)
        self.owns_host = owns_host
        self._reloading = False
        self.worker_processes = 1
        """How many processes serve together (``--workers``): a request reaches one of them."""
        self.started = False
        self.stopping = False
        self.stop_taking_at: float | None = None
        """When batches in flight stop taking items (``time.monotonic()``), once the server was asked
        to stop (see :meth:`shutting_down`); None until then."""
        self.stop_taking = asyncio.Event()
        """Set at :attr:`stop_taking_at`: a batch waiting for more of an upload stops waiting then."""
        self.reading: set[asyncio.Task[Any]] = set()
        """Requests waiting for more of a body read whole: cut off (503) at :attr:`stop_taking_at`
        (see :mod:`loopai.serve._limits`)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.work: set[asyncio.Task[Any]] = set()
        """Items of batches in flight: each finishes (and emits what it raised) even when its
        client goes away; :meth:`stop` waits for them before closing the host."""
        self._sync: asyncio.Task[None] | None = None
        self.probes = Probes(host, telemetry)
        """The host's answers that may wait for a database, asked off the event loop within a bound."""
        self.stop_by: float | None = None
        """When the shutdown must be over (``time.monotonic()``): ``shutdown_timeout`` after the signal."""
        self.stop_failed: str | None = None
        """Why :meth:`stop` did not stop cleanly (the command's exit status says it), or None."""

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the plugins (and deliver what the outbox held as pending). The host logs its
        problems itself (the ``loopai`` logger)."""
        await self.host.astart()
        self._loop = asyncio.get_running_loop()
        if self.inbound_key is None:
            log.info("no [serve] inbound_secret: deliveries to /api/v1/webhooks/receive are refused (401)")
        self._sync = asyncio.create_task(self._sync_metrics(), name="loopai-serve-metrics")
        self.started = True

    def shutting_down(self) -> None:
        """The server was asked to stop (SIGTERM, Ctrl-C) and waits up to ``[serve] shutdown_timeout``
        for the requests in flight: new work is refused from now on (503 ``NOT_READY``), and a batch
        in flight stops taking items when a second (a tenth of the timeout, when shorter) is left, so
        that its answer ends with its summary instead of being cut (a batch waiting for more of an
        upload too: :attr:`stop_taking` is set then); a body read whole that is still arriving then
        is refused (503), with time left to say so. Called from a signal handler: attribute writes,
        and a wake-up of the event loop, which stops the taking when the time comes."""
        if self.stop_taking_at is None:
            wait = self.settings.shutdown_timeout
            self.stop_by = time.monotonic() + wait
            self.stop_taking_at = self.stop_by - min(1.0, wait / 10)
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits any more
                    self._loop.call_soon_threadsafe(self._stop_taking_in_time)
        self.stopping = True

    def _stop_taking_in_time(self) -> None:
        assert self.stop_taking_at is not None
        delay = max(0.0, self.stop_taking_at - time.monotonic())
        asyncio.get_running_loop().call_later(delay, self._stop_taking)

    def _stop_taking(self) -> None:
        self.stop_taking.set()
        for task in self.reading:
            task.cancel()  # turned into 503 where it waits (loopai.serve._limits)

    async def stop(self, timeout: float | None = None) -> None:
        """Let batch items in flight finish, then close the host (plugins shut down, deliveries drain
        for the time left; what is left stays in the outbox, and how much is said), all within
        ``timeout`` seconds (default: ``[serve] shutdown_timeout`` from the signal, else from now).
        A database known to be away is not waited for, one that goes away meanwhile only until
        then: what could not be written is said in one line and kept in :attr:`stop_failed`."""
        self.stopping = True
        wait = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = self.stop_by if timeout is None and self.stop_by is not None else time.monotonic() + wait
        if self.work:
            _, late = await asyncio.wait(set(self.work), timeout=max(0.0, deadline - time.monotonic()))
            if late:
                log.warning("%d batch item(s) still running at shutdown were cancelled", len(late))
                for task in late:
                    task.cancel()
        if self._sync is not None:
            self._sync.cancel()
        if self.owns_host:
            away = self.probes.database_away or self.host.delivery_failure is not None
            self.stop_failed = await close_host(self.host, deadline, database_away=away)
        # The host's last counts (a closed host answers from memory): for the other workers' scrapes.
        await self.probes.sync(min(_CHECK_TIMEOUT, max(0.1, deadline - time.monotonic())), say=False)
        self.started = False

    async def metrics_text(self) -> bytes:
        """The Prometheus text, this process's counts brought up to date first; what the outbox does
        not answer within a bound is left out (its gauge), never waited for."""
        _, pending = await asyncio.gather(self.probes.sync(_CHECK_TIMEOUT), self.probes.outbox_pending(_CHECK_TIMEOUT))
        return await asyncio.to_thread(self.telemetry.render, pending)  # with workers: reads their files

    async def areload(self) -> ReloadResult:
        """Re-read the configuration and swap the new plugin set in without a restart (calls in
        flight finish on the old one); what changed, or why nothing did. Counted in
        ``loopai_reloads_total`` and logged. With ``--workers N`` each worker reloads on its own
        SIGHUP; SIGHUP to the main process restarts the workers instead, once the configuration checks
        out (see :mod:`._workers`)."""
        self._reloading = True  # the metrics loop leaves the new configuration to this call
        try:
            result = await self.host.areload()  # the host logs what changed, or why nothing did
        finally:
            self._reloading = False
        if result.reloaded:
            result = dataclasses.replace(result, problems=(*result.problems, *self._adopt(self.host.config)))
        self.telemetry.reloaded(result.reloaded)
        return result

    def _adopt(self, config: LoopaiConfig) -> list[str]:
        """Take what a reloaded configuration's ``[serve]`` changes while serving (API keys, the
        inbound secret, ``max_batch_items``, ``shutdown_timeout``); what only a restart changes is
        said, one line each, as a reload's problems. A reload never removes every API key: the
        service would answer anyone."""
        said: list[str] = []
        new, old = config.serve, self.settings
        keys = ApiKeys.resolve(new, self._environ)
        if self.keys.required and not keys.required:
            said.append(
                "serve.api_keys: a reload cannot remove every API key (the service would answer anyone): "
                "the keys stay as they were; restart the service to serve without keys"
            )
            new = new.model_copy(update={"api_keys": old.api_keys})
        else:
            self.keys = keys
        self.inbound_key = _inbound_key(new)
        for name in _AT_START:
            if getattr(new, name) != getattr(old, name):
                said.append(f"serve.{name} changed: it takes effect when the service restarts")
        if config.tasks != self.config.tasks and self.host.tasks.settings != by_uuid(config.tasks):
            # In effect at once when the host's table follows the configuration; not when it was given.
            said.append(
                "tasks changed in the configuration but are not used: this service's tasks table was given "
                "when it started (loopai serve --tasks FILE, read at start only)"
            )
        self.config, self.settings = config, new
        for line in said:
            log.warning("%s", line)
        return said

    def reload(self) -> None:
        """SIGHUP: start :meth:`areload` on the running loop (a signal handler must not wait)."""
        task = asyncio.get_running_loop().create_task(self.areload(), name="loopai-serve-reload")
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    # -- what routes ask -------------------------------------------------------------------

    @property
    def ready_for_work(self) -> bool:
        """Whether the plugins are started and the service is not stopping."""
        return self.started and not self.stopping

    def ensure_ready(self) -> None:
        """Refuse work (:meth:`not_ready`) before the plugins are started or once stopping."""
        if not self.ready_for_work:
            raise self.not_ready()

    def not_ready(self) -> ApiError:
        """503 ``NOT_READY`` (``Retry-After: 1``), saying whether the service is starting or stopping
        and what to do."""
        if self.stopping:
            message = (
                "the service is shutting down: send the request to another instance, or again once it has restarted"
            )
        else:
            message = "the service is starting: send the request again in a moment"
        return ApiError(503, "NOT_READY", message, headers={"Retry-After": "1"})

    async def readiness(self) -> dict[str, str]:
        """Each check (``plugins``, ``outbox``, ``state``, ``delivery``) and what it found: ``ok`` or
        the problem (each store within 2 s; the delivery workers stopped on a failing outbox: its
        message)."""
        checks = {"plugins": "ok" if self.ready_for_work else "stopping" if self.stopping else "not started"}
        checks.update(await self.probes.checks(_CHECK_TIMEOUT))
        return checks

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` (a batch item) until it is done: :meth:`stop` waits for it."""
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    async def _sync_metrics(self) -> None:
        """Every second: the host's counts into the metrics (off the loop, within a bound; a failing
        outbox is said once per outage), and the ``[serve]`` settings of a reload the host did itself.
        Nothing ends it but :meth:`stop`."""
        while True:
            await asyncio.sleep(_SYNC_EVERY)
            try:
                # Reloaded by the host itself ([host] watch_config): its [serve] keys are taken as well.
                if self.host.config is not self.config and not self._reloading:
                    self._adopt(self.host.config)
                    self.telemetry.reloaded(True)
                await self.probes.sync(_CHECK_TIMEOUT)
            except Exception:
                log.exception("copying the host's counts into the metrics failed")


def _inbound_key(settings: ServeSettings) -> bytes | None:
    """The key inbound webhook signatures are checked with (``[serve] inbound_secret``), or None."""
    secret = settings.inbound_secret
    return secret.get_secret_value().encode("utf-8") if secret is not None else None
