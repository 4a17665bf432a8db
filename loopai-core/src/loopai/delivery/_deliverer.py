"""Delivering one event to one handler: what a handler is to delivery, backoff, and the inline deliverer.

Delivery knows handlers only as :class:`Target`: a name, a retry budget, a limit of deliveries in
flight and one isolated attempt (which returns the error instead of raising). :class:`Backoff`
says how long to wait before a retry; without an outbox, :class:`Deliverer` waits it inline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from loopai._isolation import describe
from loopai._models import WebhookEvent

__all__ = ["RETRY_AFTER_LIMIT", "Backoff", "Deliverer", "Describe", "Outcome", "Target", "gave_up"]

RETRY_AFTER_LIMIT: Final = 300.0
"""Seconds a handler's ``retry_after`` (an HTTP ``Retry-After``) is honoured up to, by default."""


class Target(Protocol):
    """A webhook handler as the deliverer sees it."""

    @property
    def name(self) -> str: ...

    @property
    def max_retries(self) -> int: ...

    @property
    def max_in_flight(self) -> int | None:
        """This handler's own limit of deliveries in flight (None: the host's setting)."""
        ...

    @property
    def is_async(self) -> bool:
        """Whether its hook is a coroutine function (then it runs on the host's event loop)."""
        ...

    @property
    def timeout(self) -> float | None:
        """Seconds one call may take (None: no limit)."""
        ...

    def attempt(self, event: WebhookEvent, attempt: int, dry_run: bool) -> BaseException | None:
        """Try number ``attempt`` (0: the first); the error, or None when the handler took the event."""
        ...

    async def aattempt(self, event: WebhookEvent, attempt: int, dry_run: bool) -> BaseException | None:
        """:meth:`attempt` from async code."""
        ...


@dataclass
class Backoff:
    """How long to wait before a retry: exponential from ``base`` seconds, capped at ``ceiling``,
    with jitter; a handler's ``retry_after`` is honoured in full up to ``retry_after_limit``."""

    base: float = 0.5
    ceiling: float = 30.0
    retry_after_limit: float = RETRY_AFTER_LIMIT
    random: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, error: BaseException) -> float:
        """Seconds to wait before try number ``attempt`` (1: the first retry) after ``error``."""
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            return min(float(retry_after), max(self.retry_after_limit, self.ceiling))
        ceiling = min(self.ceiling, self.base * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + self.random.random() / 2)  # jitter: spread retries of many hosts


@dataclass(frozen=True)
class Outcome:
    """How one delivery ended: ``error`` is None when the handler took the event."""

    handler: str
    attempts: int
    error: BaseException | None = None

    @property
    def delivered(self) -> bool:
        """True when the handler took the event."""
        return self.error is None


Describe = Callable[[Target, BaseException, int], str]
"""How a failed delivery's error is written: ``(target, error, attempts) -> message``."""


def _default_describe(target: Target, error: BaseException, attempts: int) -> str:
    return f"webhook handler {target.name!r} raised {describe(error)} (after {attempts} attempts)"


class Deliverer:
    """Delivers an event to a :class:`Target` inline, retrying after a sleep: the host's way without
    an outbox (with one, :class:`~loopai.delivery.Workers` schedule retries instead of sleeping)."""

    def __init__(
        self,
        backoff: Backoff,
        describe_dead: Describe = _default_describe,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backoff = backoff
        self.describe = describe_dead
        self._sleep = sleep

    def deliver(
        self,
        target: Target,
        event: WebhookEvent,
        dry_run: bool,
        *,
        attempt: int = 0,
        error: BaseException | None = None,
    ) -> Outcome:
        """Deliver from try number ``attempt`` on; ``error`` is the previous try's error when
        ``attempt`` > 0 (the first try was made by the caller). Sleeps between tries."""
        while True:
            if error is not None:
                if gave_up(target, attempt, error):
                    return Outcome(target.name, attempt, error)
                self._sleep(self.backoff.delay(attempt, error))
            error = target.attempt(event, attempt, dry_run)
            if error is None:
                return Outcome(target.name, attempt + 1)
            attempt += 1

    async def adeliver(self, target: Target, event: WebhookEvent, dry_run: bool) -> Outcome:
        """:meth:`deliver` from async code: waits with ``asyncio.sleep`` between tries."""
        attempt = 0
        while True:
            error = await target.aattempt(event, attempt, dry_run)
            if error is None:
                return Outcome(target.name, attempt + 1)
            attempt += 1
            if gave_up(target, attempt, error):
                return Outcome(target.name, attempt, error)
            await asyncio.sleep(self.backoff.delay(attempt, error))


def gave_up(target: Target, attempts: int, error: BaseException) -> bool:
    """Whether a delivery that failed ``attempts`` times, last with ``error``, is over: its retries
    are used up, or the error says another try cannot help (``retryable = False``)."""
    return attempts > target.max_retries or getattr(error, "retryable", True) is False
