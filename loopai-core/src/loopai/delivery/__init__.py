"""Durable delivery: the :class:`Outbox` protocol and its SQLite implementation, where the outbox is,
and the deliverer (tries, backoff, dead letters, redelivery)."""

from loopai.delivery._deliverer import RETRY_AFTER_LIMIT, Backoff, Deliverer, Outcome, Target
from loopai.delivery._outbox import DeliveryRecord, DeliveryStatus, Outbox, Pending
from loopai.delivery._paths import OutboxSpec, default_outbox_path, open_outbox, outbox_location, resolve_outbox
from loopai.delivery._sqlite import SqliteOutbox

__all__ = [
    "RETRY_AFTER_LIMIT",
    "Backoff",
    "Deliverer",
    "DeliveryRecord",
    "DeliveryStatus",
    "Outbox",
    "OutboxSpec",
    "Outcome",
    "Pending",
    "SqliteOutbox",
    "Target",
    "default_outbox_path",
    "open_outbox",
    "outbox_location",
    "resolve_outbox",
]
