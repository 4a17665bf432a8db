"""What delivery did per handler: counts kept by the workers, and the snapshot callers read; whether
the workers are stopped on a failing outbox (:class:`Halt`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from loopai._errors import LoopaiError
from loopai.delivery._breaker import Breaker, CircuitState

__all__ = ["Counters", "Halt", "HandlerDeliveries", "row_of"]


class Counters:
    """One handler's running counts in this process (the workers update them under their lock)."""

    __slots__ = ("dead", "delivered", "in_flight", "last_error", "retried")

    def __init__(self) -> None:
        self.delivered = 0
        self.retried = 0
        self.dead = 0
        self.in_flight = 0
        self.last_error: str | None = None


@dataclass(frozen=True)
class HandlerDeliveries:
    """One handler's deliveries, as ``Host.delivery_report()`` tells them.

    ``delivered``, ``retried`` (failed attempts whose retry was scheduled) and ``dead`` count
    what this host's workers did since it started; ``pending`` and ``quarantined`` are what the
    outbox holds for the handler now, whoever recorded it; ``in_flight`` is being delivered;
    ``circuit`` is its breaker's state and ``last_error`` the last failed attempt's error. ``loaded``
    is False for a handler this host does not run, listed because the outbox holds deliveries for it
    (recorded by other hosts, or by earlier runs with other plugins): none of them are this host's.
    """

    handler: str
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    pending: int = 0
    quarantined: int = 0
    in_flight: int = 0
    circuit: CircuitState = "closed"
    last_error: str | None = None
    loaded: bool = True

    @property
    def settled(self) -> bool:
        """True when nothing of this handler is pending, in flight or dead."""
        return not (self.pending or self.in_flight or self.dead)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def row_of(
    name: str, counters: Counters | None, breaker: Breaker | None, held: Mapping[str, int], loaded: bool
) -> HandlerDeliveries:
    """Handler ``name``'s row of a delivery report: what the workers counted, its circuit, and what
    the outbox holds for it (``held``: its counts by status)."""
    counters = counters or Counters()
    return HandlerDeliveries(
        name,
        delivered=counters.delivered,
        retried=counters.retried,
        dead=counters.dead,
        pending=held.get("pending", 0),
        quarantined=held.get("quarantined", 0),
        in_flight=counters.in_flight,
        circuit=breaker.state if breaker is not None else "closed",
        last_error=counters.last_error,
        loaded=loaded,
    )


class Halt:
    """Whether the workers are stopped on a failing outbox, since when, and how long to wait before
    trying it again (the workers keep it under their lock).

    ``error`` is the failure that stopped them (None while they deliver); ``count`` grows with every
    failure met, so that a pass that began before the last one does not call the outbox back."""

    __slots__ = ("count", "error", "since", "tries")

    def __init__(self) -> None:
        self.error: LoopaiError | None = None
        self.since = 0.0
        self.count = 0
        self.tries = 0

    def failed(self, error: LoopaiError, now: float) -> bool:
        """Keep ``error``; True when it stops deliveries that ran (the first failure of an outage)."""
        first = self.error is None
        if first:
            self.since, self.tries = now, 0
        self.error = error
        self.count += 1
        return first

    def retry_in(self, poll_interval: float, longest: float) -> float:
        """Seconds before the next try of a failing outbox: ``poll_interval`` doubling up to ``longest``."""
        self.tries += 1
        return float(min(max(poll_interval, 0.05) * 2 ** min(self.tries - 1, 16), longest))

    def answered(self, count: int, now: float) -> float | None:
        """The outbox answered a pass that began when :attr:`count` was ``count``: the seconds the
        workers were stopped (they resume), or None when they were not, or a later failure stands."""
        if self.error is None or self.count != count:
            return None
        self.error = None
        return now - self.since
