"""The SQL statements of the SQLite outbox (the schema itself is in :mod:`._sqlite_file`)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEAD",
    "DUE",
    "INSERT_DELIVERY",
    "INSERT_EVENT",
    "LEASE",
    "MARK",
    "OPEN",
    "QUARANTINE",
    "RELEASE",
    "RELEASE_OWNER",
    "RETRY",
    "TAKE_OVER",
    "UNLEASED",
]

OPEN: Final = "status != 'delivered'"
"""Repeated in queries for deliveries not delivered, so that SQLite uses the partial index."""
INSERT_EVENT: Final = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)"
INSERT_DELIVERY: Final = (
    "INSERT INTO deliveries (event_id, handler, status, dry_run, updated_at, next_attempt_at) "
    "VALUES (?, ?, 'pending', ?, ?, ?)"
)
TAKE_OVER: Final = (
    "UPDATE deliveries SET status = 'pending', attempts = 0, last_error = NULL, dry_run = 0, updated_at = ?, "
    "next_attempt_at = ?, lease_until = 0, lease_owner = NULL WHERE event_id = ? AND handler = ? AND dry_run = 1"
)
"""A real emit takes over a dry run's delivery of the same event: a rehearsal delivered nothing."""
DUE: Final = (
    "SELECT d.event_id, d.attempts, d.dry_run, e.body FROM deliveries d JOIN events e USING (event_id) "
    f"WHERE d.handler = ? AND d.{OPEN} AND d.status = 'pending' AND d.next_attempt_at <= ? AND d.lease_until <= ? "
    "ORDER BY d.next_attempt_at LIMIT ?"
)
LEASE: Final = "UPDATE deliveries SET lease_until = ?, lease_owner = ? WHERE event_id = ? AND handler = ?"
UNLEASED: Final = "lease_until = 0, lease_owner = NULL"
MARK: Final = (
    f"UPDATE deliveries SET status = 'delivered', attempts = ?, last_error = NULL, updated_at = ?, {UNLEASED} "
    "WHERE event_id = ? AND handler = ?"
)
RETRY: Final = (
    f"UPDATE deliveries SET attempts = ?, last_error = ?, updated_at = ?, next_attempt_at = ?, {UNLEASED} "
    f"WHERE event_id = ? AND handler = ? AND {OPEN}"
)
DEAD: Final = (
    f"UPDATE deliveries SET status = 'dead', attempts = ?, last_error = ?, updated_at = ?, {UNLEASED} "
    f"WHERE event_id = ? AND handler = ? AND {OPEN}"
)
QUARANTINE: Final = (
    f"UPDATE deliveries SET status = 'quarantined', last_error = ?, updated_at = ?, {UNLEASED} "
    f"WHERE event_id = ? AND handler = ? AND {OPEN}"
)
RELEASE: Final = f"UPDATE deliveries SET {UNLEASED} WHERE event_id = ? AND handler = ? AND status = 'pending'"
RELEASE_OWNER: Final = f"UPDATE deliveries SET {UNLEASED} WHERE lease_owner = ? AND {OPEN} AND status = 'pending'"
# Every update but the delivered mark and requeue() is guarded by OPEN: when two processes share a
# file, a delivery one of them saw received never becomes pending or dead again.
