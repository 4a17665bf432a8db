"""Delivering one event to one handler: tries, backoff with jitter, ``Retry-After``, dead letters.

The deliverer knows handlers only as :class:`Target`: a name, a retry budget and one isolated
attempt (which returns the error instead of raising). Every outcome is written to the outbox
when there is one: a failed attempt keeps the delivery pending, the last one makes it dead.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from loopai._isolation import describe
from loopai._models import WebhookEvent, WebhookEventType
from loopai.delivery._outbox import Outbox

__all__ = ["RETRY_AFTER_LIMIT", "Backoff", "Deliverer", "Outcome", "Target"]

RETRY_AFTER_LIMIT: Final = 300.0
"""Seconds a handler's ``retry_after`` (an HTTP ``Retry-After``) is honoured up to, by default."""


class Target(Protocol):
    """A webhook handler as the deliverer sees it."""

    @property
    def name(self) -> str: ...

    @property
    def max_retries(self) -> int: ...

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
"""How a dead delivery's error is written: ``(target, error, attempts) -> message``."""


def _default_describe(target: Target, error: BaseException, attempts: int) -> str:
    return f"webhook handler {target.name!r} raised {describe(error)} (after {attempts} attempts)"


class Deliverer:
    """Delivers events to :class:`Target` handlers, retrying, and records outcomes in ``outbox``."""

    def __init__(
        self,
        backoff: Backoff,
        describe_dead: Describe = _default_describe,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backoff = backoff
        self._describe = describe_dead
        self._sleep = sleep

    def _gave_up(self, target: Target, attempt: int, error: BaseException) -> bool:
        return attempt > target.max_retries or getattr(error, "retryable", True) is False

    def deliver(
        self,
        target: Target,
        event: WebhookEvent,
        dry_run: bool,
        outbox: Outbox | None,
        *,
        attempt: int = 0,
        error: BaseException | None = None,
    ) -> Outcome:
        """Deliver from try number ``attempt`` on; ``error`` is the previous try's error when
        ``attempt`` > 0 (the first try was made by the caller). Sleeps between tries."""
        event_id = str(event.event_id)
        while True:
            if error is not None:
                if self._gave_up(target, attempt, error):
                    return self._dead(target, event_id, attempt, error, outbox)
                if outbox is not None:
                    outbox.failed_attempt(event_id, target.name, attempt, describe(error))
                self._sleep(self.backoff.delay(attempt, error))
            error = target.attempt(event, attempt, dry_run)
            if error is None:
                if outbox is not None:
                    outbox.delivered(event_id, target.name, attempt + 1)
                return Outcome(target.name, attempt + 1)
            attempt += 1

    async def adeliver(
        self, target: Target, event: WebhookEvent, dry_run: bool, outbox: Outbox | None, *, attempt: int = 0
    ) -> Outcome:
        """:meth:`deliver` from async code: waits with ``asyncio.sleep`` between tries."""
        event_id = str(event.event_id)
        while True:
            error = await target.aattempt(event, attempt, dry_run)
            if error is None:
                if outbox is not None:
                    outbox.delivered(event_id, target.name, attempt + 1)
                return Outcome(target.name, attempt + 1)
            attempt += 1
            if self._gave_up(target, attempt, error):
                return self._dead(target, event_id, attempt, error, outbox)
            if outbox is not None:
                outbox.failed_attempt(event_id, target.name, attempt, describe(error))
            await asyncio.sleep(self.backoff.delay(attempt, error))

    def _dead(
        self, target: Target, event_id: str, attempts: int, error: BaseException, outbox: Outbox | None
    ) -> Outcome:
        if outbox is not None:
            outbox.dead(event_id, target.name, attempts, self._describe(target, error, attempts))
        return Outcome(target.name, attempts, error)

    def redeliver(
        self, outbox: Outbox, resolve: Callable[[WebhookEventType, str], Target | None]
    ) -> tuple[list[Outcome], set[str]]:
        """Deliver everything ``outbox`` holds as pending; ``resolve`` finds the handler of a
        delivery (None: not loaded, the delivery stays pending). Returns the outcomes and the
        names of the handlers that were not found."""
        outcomes: list[Outcome] = []
        missing: set[str] = set()
        for pending in outbox.pending():
            target = resolve(pending.event.event_type, pending.handler)
            if target is None:
                missing.add(pending.handler)
                continue
            outcomes.append(self.deliver(target, pending.event, pending.dry_run, outbox, attempt=pending.attempts))
        return outcomes, missing
