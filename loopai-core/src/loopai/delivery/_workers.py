"""Background delivery: workers that take due deliveries from the outbox and make them, concurrently.

One dispatcher thread claims each handler's due deliveries (up to its limit in flight, in groups
so that one claim serves several) and hands them to a pool of daemon threads. Each attempt's
outcome is written back at once: delivered, a retry *scheduled* in the outbox (backoff with
jitter, or the receiver's ``Retry-After``), or dead after the handler's retries. A circuit
breaker per handler stops claiming for a dead endpoint. Nothing waits in the caller: ``emit``
records and pokes the dispatcher. A failing outbox (a database away past its timeout, a full disk)
stops delivery until it answers again: the dispatcher tries it again, less and less often, and
resumes by itself.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from loopai._errors import LoopaiError, OutboxError
from loopai._isolation import describe
from loopai._log import logger
from loopai.delivery._breaker import Breaker, closed_notice, opened_notice
from loopai.delivery._deliverer import Backoff, Describe, Target, gave_up
from loopai.delivery._outbox import Claim, Notifying, Outbox
from loopai.delivery._pool import DaemonPool
from loopai.delivery._stalls import Stalls
from loopai.delivery._stalls import say as say_stalled
from loopai.delivery._stats import Counters, Halt, HandlerDeliveries, row_of

__all__ = ["WorkerSettings", "Workers"]

log = logger("loopai.delivery")

_POOL_SIZE = 64
"""Threads at most, for all handlers together (each handler is bounded by its own limit)."""
_JOIN = 5.0
"""Seconds :meth:`Workers.stop` waits for the dispatcher to notice."""
_ACTIVE = ("running", "draining")
"""States in which the workers deliver (draining: stopping once nothing is left)."""
_RETRY_LONGEST = 5.0
"""Seconds at most between two tries of a failing outbox (from ``poll_interval``, doubling)."""


@dataclass(frozen=True)
class WorkerSettings:
    """How the workers deliver; see ``[delivery]`` in the configuration for each setting."""

    max_in_flight: int = 8
    circuit_failures: int = 5
    circuit_cooldown: float = 30.0
    poll_interval: float = 1.0
    lease: float = 300.0
    stall_notice: float = 10.0
    """Seconds a delivery may run before the handler is named as holding it (0: never); ``[dispatch] stall_notice``."""


def _said(target: Target, error: BaseException, attempts: int) -> str:
    return f"webhook handler {target.name!r} raised {describe(error)} (after {attempts} attempts)"


class Workers:
    """Delivers what ``outbox`` holds as due to the handlers ``targets()`` names, in the background.

    ``start()`` once; ``poke()`` after recording (the dispatcher also looks every
    ``poll_interval`` seconds, for what other processes record, and is woken at once by an
    outbox that tells: :class:`~loopai.delivery.Notifying`); ``drain()`` waits until
    nothing is left to do now; ``stop()`` drains up to a deadline, then hands what is still
    in flight back to the outbox. Async handlers run on ``loop`` (the application's, when the
    host was started from asyncio code), sync ones in the pool's threads. A failing outbox
    stops delivery: :attr:`failure` is its :class:`loopai.OutboxError` and :meth:`drain` raises
    it, until the outbox answers again; the dispatcher tries it again every ``poll_interval``
    seconds, doubling up to 5 s (at once when poked), and resumes by itself (:attr:`failure` is
    None again). Stopping is logged once as an error on the ``loopai.delivery`` logger, resuming
    once as a warning. A circuit that opens is logged as a warning, its closing as info.
    """

    def __init__(
        self,
        outbox: Outbox,
        targets: Callable[[], Mapping[str, Target]],
        backoff: Backoff,
        settings: WorkerSettings | None = None,
        *,
        describe_dead: Describe = _said,
    ) -> None:
        self._outbox = outbox
        self._targets = targets
        self._backoff = backoff
        self.settings = settings or WorkerSettings()
        self._describe = describe_dead
        self._cond = threading.Condition()
        self._counters: dict[str, Counters] = {}
        self._breakers: dict[str, Breaker] = {}
        self._flying: dict[tuple[str, str], Claim] = {}
        self._attempting: set[tuple[str, str]] = set()  # of those, the ones whose attempt has begun
        self._stalls = Stalls(self.settings.stall_notice)  # deliveries that run on (see loopai.delivery._stalls)
        self._busy = 0  # deliveries whose outcome is not written yet
        self._poked = False
        self._passes = 0  # dispatcher passes started
        self._passing = False  # a pass is under way
        self._quiet = -1  # the last pass that found nothing more to start now
        self._next_due: float | None = None  # of the handlers free to deliver (Unix seconds)
        self._state = "new"
        self._halt = Halt()  # the failing outbox that stops delivery, if any
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = DaemonPool("loopai-delivery", _POOL_SIZE)
        self._unlisten: Callable[[], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._state in _ACTIVE

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start delivering (later calls do nothing). ``loop``: where async handlers run."""
        with self._cond:
            if self._state != "new":
                return
            self._state, self._loop = "running", loop
        self._thread = threading.Thread(target=self._run, name="loopai-delivery-dispatch", daemon=True)
        self._thread.start()
        if isinstance(self._outbox, Notifying):
            try:
                self._unlisten = self._outbox.listen(self.poke)
            except LoopaiError as exc:  # polling still finds what others record
                log.warning("%s; polling every %g s instead", exc, self.settings.poll_interval)

    def poke(self) -> None:
        """Look for due deliveries now (after recording some)."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def drain(self, timeout: float | None = None, *, due_within: float | None = None) -> bool:
        """Wait until nothing is in flight and nothing is due before the deadline (``due_within``
        seconds from now, default ``timeout``), except behind an open circuit; True then, False when
        ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        horizon = timeout if due_within is None else due_within
        last_due = None if horizon is None else time.time() + horizon
        with self._cond:
            self._poked = True  # a fresh look, after whatever was recorded before this call
            self._cond.notify_all()
            while True:
                if self._halt.error is not None:
                    raise self._halt.error
                if self._state not in _ACTIVE:
                    return self._busy == 0
                if self._idle(last_due):
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def _idle(self, last_due: float | None) -> bool:
        """Whether the last pass, complete and with nothing recorded since, found nothing to start,
        nothing is in flight, and nothing is due before ``last_due`` (the caller holds the lock)."""
        if self._passing or self._poked or self._busy or self._quiet != self._passes:
            return False
        return self._next_due is None or (last_due is not None and self._next_due > last_due)

    def stop(self, drain_timeout: float | None) -> bool:
        """Drain up to ``drain_timeout`` seconds, then stop: what is still in flight is handed back to
        the outbox (pending, for the next worker) and its outcome, if it comes, is ignored: one not
        begun is due as it was, one whose attempt may still be running only once that attempt must
        have ended (its handler's timeout; the lease without one), so that no other worker sends it
        meanwhile. True when everything was drained. Idempotent."""
        with self._cond:
            if self._state != "running":
                self._state = "stopped"
                return True
            self._state = "draining"
        drained = False
        try:
            drained = self.drain(drain_timeout)
        except LoopaiError:
            pass  # said when it happened; what is left stays in the outbox
        finally:  # also when the wait is interrupted (Ctrl-C): stop all the same
            with self._cond:
                self._state = "stopped"
                unfinished, begun = dict(self._flying), set(self._attempting)
                self._flying.clear()
                self._stalls.clear()
                self._cond.notify_all()
        if self._unlisten is not None:
            self._unlisten()
        if unfinished:
            try:
                self._outbox.release([key for key in unfinished if key not in begun])
                self._hand_back({key: claim for key, claim in unfinished.items() if key in begun})
            except OutboxError as exc:  # the outbox's own close ends its leases all the same
                log.warning("%s", exc)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_JOIN)
        self._pool.close()
        return drained

    def _hand_back(self, begun: dict[tuple[str, str], Claim]) -> None:
        try:
            targets = self._targets()
        except LoopaiError:
            targets = {}
        for (event_id, name), claim in begun.items():
            timeout = getattr(targets.get(name), "timeout", None)
            wait = self.settings.lease if timeout is None else min(timeout, self.settings.lease)
            said = "the host stopped while this attempt was in flight: its outcome is unknown"
            self._outbox.retry(event_id, name, claim.attempts, said, time.time() + wait)

    @property
    def failure(self) -> LoopaiError | None:
        """The error that stops delivery now (a failing outbox), or None: while it delivers, and
        again once the outbox answers."""
        return self._halt.error

    def report(self, open_counts: Mapping[str, Mapping[str, int]]) -> list[HandlerDeliveries]:
        """Per handler (loaded, or with deliveries in ``open_counts``): what the workers did and what
        the outbox holds (``open_counts``: :meth:`Outbox.open_counts`)."""
        try:
            loaded: Iterable[str] = list(self._targets())
        except LoopaiError:
            loaded = ()
        with self._cond:
            ours = {*loaded, *self._counters}  # loaded, or delivered to by these workers
            names = sorted({*ours, *open_counts})
            rows = [(name, self._counters.get(name), self._breakers.get(name)) for name in names]
            return [row_of(*row, open_counts.get(row[0], {}), row[0] in ours) for row in rows]

    # -- the dispatcher -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self._passes_until_stopped()
                return
            except LoopaiError as exc:
                self._fail(exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not pass silently: stop, say it, keep the outbox
                self._fail(OutboxError(self._outbox.path, f"delivery stopped on an unexpected error: {describe(exc)}"))
            with self._cond:  # try the outbox again later, or at once when poked (a recording, a listener back)
                wait = self._halt.retry_in(self.settings.poll_interval, _RETRY_LONGEST)
                if self._state in _ACTIVE and not self._poked:
                    self._cond.wait(wait)
                if self._state not in _ACTIVE:
                    return

    def _passes_until_stopped(self) -> None:
        while True:
            with self._cond:
                if self._state not in _ACTIVE:
                    return
                self._poked = False
                self._passing = True
                self._passes += 1
                number, failures = self._passes, self._halt.count
            try:
                wait = self._pass(number)
            finally:
                with self._cond:
                    self._passing = False
                    self._cond.notify_all()
            with self._cond:
                stopped_for = self._halt.answered(failures, time.monotonic())
                self._cond.notify_all()
                if self._state in _ACTIVE and not self._poked and stopped_for is None:
                    self._cond.wait(wait)
            if stopped_for is not None:
                log.warning("delivery resumed: the outbox answers again, after %.1f s", stopped_for)

    def _fail(self, error: LoopaiError) -> None:
        """Delivery stops on ``error`` until the outbox answers again; said once per outage."""
        with self._cond:
            first = self._halt.failed(error, time.monotonic())
            running = self._state == "running"
            self._cond.notify_all()
        if first:
            log.error("delivery stopped: %s%s", error, "; trying again until the outbox answers" if running else "")

    def _pass(self, number: int) -> float:
        """Claim and start what is due for each handler with room; seconds until the next look."""
        now = time.monotonic()
        waits = [self.settings.poll_interval]
        self._say_stalled(now, waits)
        full, spare = False, []
        for name, target in self._targets().items():
            room, deferred = self._room(name, target, now, waits)
            if deferred:
                full = True  # claimed when more of its deliveries in flight have finished
            if room <= 0:
                continue
            claims = self._outbox.claim(name, room, lease=self.settings.lease)
            if claims:
                self._launch(target, claims)
            if len(claims) == room:
                full = True  # more may be due: the next pass, after some finish, looks again
            else:
                spare.append(name)
        next_due = self._outbox.next_due(spare) if spare else None
        with self._cond:
            if not full:
                self._quiet = number
            self._next_due = next_due
            self._cond.notify_all()
        if next_due is not None:
            waits.append(next_due - time.time())
        return max(0.0, min(waits))

    def _say_stalled(self, now: float, waits: list[float]) -> None:
        """Name the handlers whose delivery has run on (see :mod:`loopai.delivery._stalls`)."""
        with self._cond:
            due = self._stalls.due(now, waits)
        if due:
            say_stalled(due, self._targets())

    def _room(self, name: str, target: Target, now: float, waits: list[float]) -> tuple[int, bool]:
        """How many of ``name``'s deliveries to claim now, and whether claiming waits for more room."""
        limit = target.max_in_flight or self.settings.max_in_flight
        with self._cond:
            counters = self._counter(name)
            breaker = self._breaker(name)
            flying = counters.in_flight
            room = breaker.room(limit - flying, flying, now)
            reopens = breaker.reopens_at()
        if reopens is not None:
            waits.append(reopens - now)
        # Claim in groups: one claim (a transaction) for several deliveries, not one per slot freed.
        if flying and 0 < room < max(1, limit // 2):
            return 0, True
        return room, False

    def _counter(self, name: str) -> Counters:
        counters = self._counters.get(name)
        if counters is None:
            counters = self._counters[name] = Counters()
        return counters

    def _breaker(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            settings = self.settings
            breaker = self._breakers[name] = Breaker(settings.circuit_failures, settings.circuit_cooldown)
        return breaker

    def _launch(self, target: Target, claims: list[Claim]) -> None:
        with self._cond:
            counters = self._counter(target.name)
            began = time.monotonic()
            for claim in claims:
                key = (str(claim.event.event_id), claim.handler)
                self._flying[key] = claim
                self._stalls.began(key, claim, began)
            counters.in_flight += len(claims)
            self._busy += len(claims)
        for claim in claims:
            self._pool.submit(functools.partial(self._deliver, target, claim))

    # -- one delivery, on a pool thread ---------------------------------------------------------

    def _deliver(self, target: Target, claim: Claim) -> None:
        key = (str(claim.event.event_id), claim.handler)
        with self._cond:
            begins = key in self._flying  # else handed back, untried, by stop()
            if begins:
                self._attempting.add(key)
        error = None
        if begins:
            try:
                error = self._attempt(target, claim)
            except BaseException as exc:  # noqa: BLE001 - whatever the handler did is its failure
                error = exc
        notice: tuple[int, str, str] | None = None
        try:
            with self._cond:
                mine = self._flying.pop(key, None) is not None  # else handed back by stop()
                self._attempting.discard(key)
                self._stalls.ended(key)
            if mine:
                notice = self._settle(target, key, claim.attempts + 1, error)
        except LoopaiError as exc:
            self._fail(exc)
        finally:
            with self._cond:
                self._counter(target.name).in_flight -= 1
                self._busy -= 1
                self._poked = True
                self._cond.notify_all()
        if notice is not None:  # with the circuit's state, for whoever gathers several processes' notices
            level, line, state = notice
            log.log(level, "%s", line, extra={"circuit": (target.name, state)})

    def _attempt(self, target: Target, claim: Claim) -> BaseException | None:
        loop = self._loop
        if loop is not None and target.is_async and not loop.is_closed():
            coroutine = target.aattempt(claim.event, claim.attempts, claim.dry_run)
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, loop)
            except RuntimeError:  # the application's loop closed meanwhile: the host's own serves
                coroutine.close()
            else:
                return future.result()
        return target.attempt(claim.event, claim.attempts, claim.dry_run)

    def _settle(
        self, target: Target, key: tuple[str, str], attempts: int, error: BaseException | None
    ) -> tuple[int, str, str] | None:
        """Write the attempt's outcome; when the handler's circuit opened or closed, the log level,
        the line that tells it, and the new state."""
        event_id, name = key
        if error is None:
            self._outbox.delivered(event_id, name, attempts)
            with self._cond:
                self._counter(name).delivered += 1
                closed = self._breaker(name).succeeded()
            return closed_notice(name) if closed else None
        said = describe(error)
        if gave_up(target, attempts, error):
            self._outbox.dead(event_id, name, attempts, self._describe(target, error, attempts))
        else:
            at = time.time() + self._backoff.delay(attempts, error)
            self._outbox.retry(event_id, name, attempts, said, at)
        with self._cond:
            counters = self._counter(name)
            counters.last_error = said
            if gave_up(target, attempts, error):
                counters.dead += 1
            else:
                counters.retried += 1
            breaker = self._breaker(name)
            if getattr(error, "retryable", True) is False:  # the endpoint answered: it is up
                return closed_notice(name) if breaker.succeeded() else None
            return opened_notice(name, breaker, said) if breaker.failed(time.monotonic()) else None
