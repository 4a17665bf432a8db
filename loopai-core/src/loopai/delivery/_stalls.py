"""Deliveries that run on: a handler that hangs without a timeout holds one of its slots for good, silently.

:class:`Stalls` keeps when each delivery in flight began and says (on the ``loopai.delivery`` logger)
when one of a handler's has run ``[dispatch] stall_notice`` seconds, naming the handler, the event
and its timeout or how to give it one; again for that handler only once one has run twice as long.
The workers tell it what starts and ends, and ask it on each look (their dispatcher's lock held).
"""

from __future__ import annotations

from collections.abc import Mapping

from loopai._crash import GIVE_TIMEOUT
from loopai._log import logger
from loopai.delivery._deliverer import Target
from loopai.delivery._outbox import Claim

__all__ = ["Stalls"]

log = logger("loopai.delivery")

Key = tuple[str, str]
"""A delivery: its event id and its handler's name."""


class Stalls:
    """When each delivery in flight began, and what was said of each handler (see the module)."""

    def __init__(self, after: float) -> None:
        self.after = after
        self._since: dict[Key, tuple[float, Claim]] = {}
        self._said: dict[str, float] = {}  # per handler, the longest run of one delivery said so far

    def began(self, key: Key, claim: Claim, now: float) -> None:
        if self.after > 0:
            self._since[key] = (now, claim)

    def ended(self, key: Key) -> None:
        self._since.pop(key, None)

    def clear(self) -> None:
        self._since.clear()

    def due(self, now: float, waits: list[float]) -> list[tuple[str, float, Claim]]:
        """The handlers to name now: each one's oldest delivery, how long it has run, and its claim.
        ``waits`` gets the seconds until the next may be due."""
        oldest: dict[str, tuple[float, Claim]] = {}
        for (_, name), (since, claim) in self._since.items():
            if name not in oldest or since < oldest[name][0]:
                oldest[name] = (since, claim)
        due = []
        for name, (since, claim) in oldest.items():
            held, threshold = now - since, max(self.after, 2 * self._said.get(name, 0.0))
            if held >= threshold:
                self._said[name] = held
                due.append((name, held, claim))
            else:
                waits.append(threshold - held)
        return due


def say(due: list[tuple[str, float, Claim]], targets: Mapping[str, Target]) -> None:
    """Log one line for each of :meth:`Stalls.due`'s handlers."""
    for name, held, claim in due:
        target = targets.get(name)
        timeout = target.timeout if target is not None else None
        ends = f"its timeout ends it after {timeout:g} s" if timeout else f"if it hangs, {GIVE_TIMEOUT}"
        event_type = getattr(claim.event.event_type, "value", claim.event.event_type)
        ran = f"{held:.1f} s" if held < 10 else f"{held:.0f} s"
        log.warning(
            "webhook handler %r: a delivery has run %s (event %s, %s, attempt %d); %s",
            name, ran, claim.event.event_id, event_type, claim.attempts + 1, ends,
        )  # fmt: skip
