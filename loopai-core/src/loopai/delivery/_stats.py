"""What delivery did per handler: counts kept by the workers, and the snapshot callers read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from loopai.delivery._breaker import CircuitState

__all__ = ["Counters", "HandlerDeliveries"]


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
