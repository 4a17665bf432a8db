"""What the service asks its host that may wait for a database, asked off the event loop.

The outbox's counts, the state store and the delivery workers' report may each wait for a
database that is away (up to ``[state] unavailable_timeout``, retrying). :class:`Probes` asks each
in a thread, one at a time (a caller that comes while one runs waits for the same run, so that
threads do not pile up behind an outage), and waits for it within a bound: the event loop, and
``/health`` with it, never waits for a database. What fails is said once per outage on the
``loopai.serve`` logger, and once when it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from loopai._log import logger
from loopai.host import Host
from loopai.serve._metrics import Telemetry
from loopai.state import PostgresStateStore

__all__ = ["OffLoop", "Probes"]

log = logger("loopai.serve")

T = TypeVar("T")


class OffLoop(Generic[T]):
    """``call`` (blocking) run in a thread, at most one run at a time.

    ``await off_loop(bound)`` starts a run (or joins the one under way) and waits for it at most
    ``bound`` seconds: :class:`TimeoutError` then, while the run goes on (the next caller waits for
    it). What the run raises is raised to every caller waiting for it.
    """

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._running: asyncio.Future[T] | None = None

    @property
    def busy(self) -> bool:
        """Whether a run is under way."""
        return self._running is not None and not self._running.done()

    async def __call__(self, bound: float) -> T:
        running = self._running
        if running is None or running.done():
            running = self._running = asyncio.ensure_future(asyncio.to_thread(self._call))
            running.add_done_callback(_retrieved)
        return await asyncio.wait_for(asyncio.shield(running), bound)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Take a run's exception, so that a run nobody waited for to its end is not reported as lost."""
    if not future.cancelled():
        future.exception()


class _Said:
    """One kind of failure, said once when it begins and once when it ends."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing = False

    def failed(self, error: BaseException | str) -> None:
        if not self.failing:
            self.failing = True
            log.warning("%s: %s", self.what, _one_line(error))

    def answered(self) -> None:
        if self.failing:
            self.failing = False
            log.info("%s: it answers again", self.what)


class Probes:
    """``host``'s answers that may wait for a database, for the metrics and the readiness probe.

    :meth:`sync` copies the host's counts into ``telemetry`` (its delivery report reads the
    outbox); :meth:`outbox_pending` counts the outbox's pending deliveries; :meth:`checks` are the
    readiness checks (``outbox``, ``state``, ``delivery``). :attr:`database_away` is whether the
    last look found the outbox or the state store failing (the service's shutdown does not wait for
    them then).
    """

    def __init__(self, host: Host, telemetry: Telemetry) -> None:
        self.host = host
        self._sync = OffLoop(functools.partial(telemetry.sync_host, host))
        self._pending = OffLoop(self._count_pending)
        self._outbox = OffLoop(self._outbox_answers)
        self._state = OffLoop(self._state_answers)
        self._sync_said = _Said("metrics: the host's delivery counts cannot be read")
        self._outbox_away = False
        self._state_away = False

    @property
    def database_away(self) -> bool:
        """Whether the last look found the outbox or the state store failing (the readiness checks, the
        copy of the counts), or one still waited for."""
        looks = (self._outbox_away, self._state_away, self._sync_said.failing, self._outbox.busy, self._state.busy)
        return any(looks)

    async def sync(self, bound: float, *, say: bool = True) -> bool:
        """Copy the host's plugin counts and delivery counts into the metrics, waiting ``bound``
        seconds at most; whether it was done. A failure is said once until it is done again
        (``say=False``: neither, for the last copy at shutdown)."""
        try:
            await self._sync(bound)
        except asyncio.TimeoutError:
            if say:
                self._sync_said.failed(f"no answer within {bound:g} s")
            return False
        except Exception as exc:  # noqa: BLE001 - any failure of the outbox: said, and tried again later
            if say:
                self._sync_said.failed(exc)
            return False
        if say:
            self._sync_said.answered()
        return True

    async def outbox_pending(self, bound: float) -> int | None:
        """Deliveries the outbox holds as pending, or None (no outbox, or no answer within ``bound``)."""
        if self.host.outbox is None:
            return None
        with contextlib.suppress(Exception):
            return await self._pending(bound)
        return None

    def _count_pending(self) -> int:
        outbox = self.host.outbox
        assert outbox is not None
        # open_counts, not counts: it never reads the delivered rows, however many (PostgreSQL counts rows).
        return sum(counts.get("pending", 0) for counts in outbox.open_counts().values())

    async def checks(self, bound: float) -> dict[str, str]:
        """The readiness checks and what each found (``ok`` or the problem), each within ``bound`` seconds:
        ``outbox`` and ``state`` answer (the state store touches its database), ``delivery`` is not
        stopped on a failing outbox."""
        outbox, state = await asyncio.gather(_found(self._outbox, bound), _found(self._state, bound))
        self._outbox_away, self._state_away = outbox != "ok", state != "ok"
        failure = self.host.delivery_failure
        delivery = "ok" if failure is None else f"stopped: {_one_line(failure)}"
        return {"outbox": outbox, "state": state, "delivery": delivery}

    def _outbox_answers(self) -> None:
        outbox = self.host.outbox
        if outbox is not None:
            outbox.open_counts()  # never reads the delivered rows, however many

    def _state_answers(self) -> None:
        state = self.host.state
        if isinstance(state, PostgresStateStore):  # its reads answer from the process: ask the database itself
            state.database.run(lambda conn: conn.execute("SELECT 1").fetchone(), autocommit=True)
        else:
            state.statistics(None)


async def _found(probe: Callable[[float], Awaitable[object]], bound: float) -> str:
    try:
        await probe(bound)
    except asyncio.TimeoutError:
        return f"no answer within {bound:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure of the store is the check's finding
        return f"failed: {_one_line(exc)}"
    return "ok"


def _one_line(error: BaseException | str) -> str:
    """``error``'s message on one line (its type when it has none); loopai's messages never carry a password."""
    text = " ".join(str(error).split())
    return text or (type(error).__name__ if isinstance(error, BaseException) else "failed")
