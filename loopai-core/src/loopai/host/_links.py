"""What delivery sees of a host: its current handlers, through a weak reference (``host()``: None once gone).

Delivery workers and the breach recorder outlive no host: they hold it weakly, so that a host
that is dropped without being closed is still collected (and its finalizer drains and closes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from loopai._models import WebhookEventType
from loopai.delivery import Target
from loopai.host._dispatch import Dispatch

__all__ = ["handlers_of", "targets_of"]


def targets_of(host: Callable[[], Dispatch | None]) -> Callable[[], Mapping[str, Target]]:
    """The handlers delivery workers deliver to: the host's current plan (none once it is gone)."""

    def targets() -> Mapping[str, Target]:
        alive = host()
        return alive._current().by_name if alive is not None else {}

    return targets


def handlers_of(host: Callable[[], Dispatch | None]) -> Callable[[WebhookEventType], Sequence[str]]:
    """The handlers an event of a type is recorded for now: those of the current plan that take it;
    none in a dry run (never recorded), nor once the host is gone."""

    def handlers(event_type: WebhookEventType) -> Sequence[str]:
        alive = host()
        if alive is None or alive.dry_run:
            return ()
        return alive._current().everyone[event_type].delivered

    return handlers
