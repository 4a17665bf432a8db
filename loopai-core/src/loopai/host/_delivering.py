"""A host's durable delivery: its outbox, grouped recording and background workers, wired together.

Without an outbox there is nothing here: the host calls handlers inline (see :mod:`._emit`).
With one, ``emit`` records through :class:`~loopai.delivery.CommitGroup` and pokes the
:class:`~loopai.delivery.Workers`, which deliver to the plan's handlers (given as a function, so
that a registry change reaches them); closing drains them, then closes an outbox the host opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence

from loopai._errors import LoopaiError
from loopai._isolation import describe
from loopai._log import logger
from loopai._models import WebhookEvent
from loopai.config import DeliverySettings
from loopai.delivery import (
    Backoff,
    CommitGroup,
    Describe,
    HandlerDeliveries,
    Outbox,
    Target,
    Workers,
    WorkerSettings,
)
from loopai.host._breaches import Recorded

__all__ = ["HostDelivery"]

log = logger("loopai.delivery")

_LEASE = 300.0
"""Seconds of a lease when neither ``[delivery] lease`` nor the outbox says (see ``default_lease``)."""


class HostDelivery:
    """The outbox side of one host (inert when ``outbox`` is None).

    ``owns``: the host opened the outbox, so :meth:`close` closes it. After :meth:`close`,
    :meth:`report` keeps returning the last counts (``loopai run`` prints them after the host
    closed). ``recorded``: events recorded already (a breach, with its flag), that recording
    answers for instead of writing them again. ``stall_notice``: seconds a delivery may run before
    its handler is named as holding it (``[dispatch] stall_notice``).
    """

    def __init__(
        self,
        outbox: Outbox | None,
        owns: bool,
        backoff: Backoff,
        settings: DeliverySettings,
        describe_dead: Describe,
        targets: Callable[[], Mapping[str, Target]],
        stall_notice: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self._owns = owns
        self.drain_timeout: float = settings.drain_timeout
        """Seconds :meth:`stop` waits for due deliveries (``[delivery] drain_timeout``)."""
        self._group = CommitGroup(outbox) if outbox is not None else None
        self.durable: bool = outbox is not None
        """Whether events are recorded (an outbox) rather than delivered inline."""
        self.recorded = Recorded()
        self.workers: Workers | None = None
        if outbox is not None:
            lease = settings.lease if settings.lease is not None else getattr(outbox, "default_lease", _LEASE)
            options = WorkerSettings(
                max_in_flight=settings.max_in_flight,
                circuit_failures=settings.circuit_failures,
                circuit_cooldown=settings.circuit_cooldown,
                poll_interval=settings.poll_interval,
                lease=float(lease),
                stall_notice=stall_notice,
            )
            self.workers = Workers(outbox, targets, backoff, options, describe_dead=describe_dead)
        self.in_process: bool = settings.workers
        """Whether this host's workers deliver (``[delivery] workers``); else it only records."""
        self._final: list[HandlerDeliveries] | None = None
        self._closed = False
        self._failure: LoopaiError | None = None

    @property
    def failure(self) -> LoopaiError | None:
        """The error that stops delivery now (a failing outbox), if any: the workers' while they run
        (None again once the outbox answers: they resume by themselves), else the one met at start
        or at close."""
        if self.workers is not None and (self._failure is None or self.workers.running):
            return self.workers.failure
        return self._failure

    def failed(self, error: LoopaiError) -> None:
        """Delivery cannot go on (the outbox failed at start): keep ``error`` for :attr:`failure`."""
        self._failure = error

    def open(self) -> None:
        """Connect an outbox that has a server (the PostgreSQL one), so that one that cannot be used
        is an error at start (:class:`loopai.ConfigError`), not at the first emit."""
        opener = getattr(self.outbox, "open", None)
        if callable(opener) and not self._closed:
            opener()

    def poke(self) -> None:
        """Something was recorded outside :meth:`record` (a breach, with its flag): deliver it."""
        if self.workers is not None and self.in_process and not self._closed:
            self.workers.start()
            self.workers.poke()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the workers (once): what the outbox holds as due goes out. ``loop``: where async
        handlers run (None: the host's own loop for async plugins)."""
        if self.workers is not None and self.in_process and not self._closed:
            self.workers.start(loop)

    def record(self, batch: Sequence[tuple[WebhookEvent, Sequence[str]]]) -> list[list[str]]:
        """Store ``batch`` durably (one commit, shared with concurrent callers), then wake the workers."""
        assert self._group is not None and self.workers is not None
        recorded = self.recorded.record(batch, self._group.record)
        if self.in_process:
            self.workers.start()  # a host used without start() still delivers
            self.workers.poke()
        return recorded

    def drain(self, timeout: float | None, due_within: float | None = None) -> bool:
        """Wait for due deliveries (see :meth:`loopai.delivery.Workers.drain`), starting the workers
        first if they do not run yet; True without workers."""
        if self.workers is None or self._closed or not self.in_process:
            return True
        self.workers.start()
        return self.workers.drain(timeout, due_within=due_within)

    @property
    def idle(self) -> bool:
        """Whether this host's workers would deliver but were never started (neither by the host's
        start nor by a recording): a drain would start them."""
        return self.workers is not None and self.in_process and not self._closed and not self.workers.running

    def not_loaded(self, loaded: Collection[str]) -> list[str]:
        """Handlers that have pending deliveries in the outbox but are not among ``loaded``."""
        if self.outbox is None:
            return []
        held = self.outbox.open_counts()
        return sorted(name for name, counts in held.items() if counts.get("pending") and name not in loaded)

    def report(self) -> list[HandlerDeliveries]:
        """Per handler: delivered, retried, dead (by this host), pending and quarantined (in the outbox)."""
        if self._final is not None:
            return self._final
        if self.workers is None or self.outbox is None:
            return []
        return self.workers.report(self.outbox.open_counts())

    def stop(self, drain_timeout: float | None = None) -> bool:
        """Drain up to ``drain_timeout`` seconds (default :attr:`drain_timeout`), then stop the
        workers; what is left stays pending."""
        if self.workers is None or self._closed:
            return True
        return self.workers.stop(self.drain_timeout if drain_timeout is None else drain_timeout)

    def owned_outbox(self) -> Outbox | None:
        """The outbox when the host opened it (and closes it), else None."""
        return self.outbox if self._owns else None

    def close(self) -> None:
        """Stop the workers, keep the last report, close the outbox if the host opened it (idempotent).

        It is the host's finalizer too, run at exit where a traceback is only noise: a failing
        outbox is kept in :attr:`failure`, anything else is one line on the ``loopai.delivery``
        logger; either way the last counts are lost."""
        if self._closed:
            return
        try:
            self.stop()
            self._final = self.report()
        except LoopaiError as exc:  # a failing outbox: kept for the caller
            self._failure = self.failure or exc
            self._final = []
        except Exception as exc:  # noqa: BLE001 - never out of a finalizer
            log.error("closing the outbox's delivery failed: %s", " ".join(describe(exc).split()))
            self._final = []
        self._closed = True
        if self.outbox is not None and self._owns:
            self.outbox.close()
