"""A circuit breaker per webhook handler: after repeated failures, wait instead of hammering a dead endpoint."""

from __future__ import annotations

import logging
from typing import Literal

__all__ = ["Breaker", "CircuitState", "closed_notice", "opened_notice"]

CircuitState = Literal["closed", "open", "half-open"]


class Breaker:
    """One handler's circuit.

    ``closed``: deliveries go. After ``threshold`` consecutive failures it *opens*: nothing is
    started for ``cooldown`` seconds; then it is *half-open*: one delivery goes, as a probe.
    A success closes it; a failed probe opens it for another cool-down. Times are
    ``time.monotonic()`` values given by the caller. Not thread-safe: the owner locks.
    """

    __slots__ = ("cooldown", "failures", "opened_at", "state", "threshold")

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.state: CircuitState = "closed"
        self.failures = 0
        """Consecutive failures so far."""
        self.opened_at = 0.0

    def room(self, wanted: int, in_flight: int, now: float) -> int:
        """How many of ``wanted`` deliveries may start now, with ``in_flight`` running."""
        if self.state == "closed":
            return wanted
        if self.state == "open":
            if now < self.opened_at + self.cooldown:
                return 0
            self.state = "half-open"
        return 1 if in_flight == 0 and wanted > 0 else 0  # half-open: one probe at a time

    def reopens_at(self) -> float | None:
        """When an open circuit lets its probe go (a monotonic time), or None when it is not open."""
        return self.opened_at + self.cooldown if self.state == "open" else None

    def succeeded(self) -> bool:
        """Count a delivery the endpoint answered; True when that closed the circuit."""
        self.failures = 0
        was_open = self.state != "closed"
        self.state = "closed"
        return was_open

    def failed(self, now: float) -> bool:
        """Count a failed delivery; True when that opened a closed circuit (a failed probe opens it
        again quietly: its opening was said already)."""
        self.failures += 1
        if self.state == "half-open":
            self.state, self.opened_at = "open", now
            return False
        if self.state == "closed" and self.threshold > 0 and self.failures >= self.threshold:
            self.state, self.opened_at = "open", now
            return True
        return False


def opened_notice(name: str, breaker: Breaker, last: str) -> tuple[int, str, CircuitState]:
    """The log level, the line that tells that handler ``name``'s circuit opened, and its state."""
    line = (
        f"webhook handler {name!r}: circuit open after {breaker.failures} consecutive failures "
        f"(last: {last}); its deliveries wait {breaker.cooldown:g} s, then one is tried"
    )
    return logging.WARNING, line, "open"


def closed_notice(name: str) -> tuple[int, str, CircuitState]:
    """The log level, the line that tells that handler ``name``'s circuit closed, and its state."""
    return logging.INFO, f"webhook handler {name!r}: circuit closed, deliveries resume", "closed"
