"""Durable delivery: the :class:`Outbox` protocol, its SQLite (embedded) and PostgreSQL (shared)
implementations, where the outbox is, grouped recording, the background workers (claims,
scheduled retries, dead letters, a circuit breaker per handler) and the inline deliverer used
without an outbox."""

from loopai.delivery._breaker import Breaker, CircuitState
from loopai.delivery._deliverer import RETRY_AFTER_LIMIT, Backoff, Deliverer, Describe, Outcome, Target, gave_up
from loopai.delivery._group import CommitGroup
from loopai.delivery._outbox import Claim, DeliveryRecord, DeliveryStatus, Notifying, Outbox, Requeued
from loopai.delivery._paths import (
    OutboxSpec,
    default_outbox_path,
    default_outboxes,
    is_database_url,
    left_in_shared,
    open_outbox,
    outbox_configured,
    outbox_location,
    outbox_setting,
    resolve_outbox,
    shared_of_before,
)
from loopai.delivery._postgres import PostgresOutbox
from loopai.delivery._sqlite import SqliteOutbox
from loopai.delivery._sqlite_file import APPLICATION_ID, SCHEMA_VERSION
from loopai.delivery._stats import HandlerDeliveries
from loopai.delivery._workers import Workers, WorkerSettings

__all__ = [
    "APPLICATION_ID",
    "RETRY_AFTER_LIMIT",
    "SCHEMA_VERSION",
    "Backoff",
    "Breaker",
    "CircuitState",
    "Claim",
    "CommitGroup",
    "Deliverer",
    "DeliveryRecord",
    "DeliveryStatus",
    "Describe",
    "HandlerDeliveries",
    "Notifying",
    "Outbox",
    "OutboxSpec",
    "Outcome",
    "PostgresOutbox",
    "Requeued",
    "SqliteOutbox",
    "Target",
    "WorkerSettings",
    "Workers",
    "default_outbox_path",
    "default_outboxes",
    "gave_up",
    "is_database_url",
    "left_in_shared",
    "open_outbox",
    "outbox_configured",
    "outbox_location",
    "outbox_setting",
    "resolve_outbox",
    "shared_of_before",
]
