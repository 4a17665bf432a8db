-- Schema version 2: the outbox shared by every loopai process (loopai.delivery.PostgresOutbox).
-- Times are the server's clock: replicas whose clocks disagree still agree on leases and schedules.

-- Each event once, as the loopai that recorded it wrote it (JSON): read back when it is delivered.
CREATE TABLE loopai_outbox_events (
    event_id uuid PRIMARY KEY,
    event_type text NOT NULL,
    body text NOT NULL,
    emitted_at timestamptz NOT NULL
);

-- One row per event and handler. A pending row is due at next_attempt_at; a worker claims it by
-- setting lease_owner and lease_until (FOR UPDATE SKIP LOCKED: claimers never wait for each other)
-- and renews the lease while it lives; a lease that ran out is anyone's. recorded_by is the
-- recording call's id: a call retried after its reply was lost recognises its own rows.
CREATE TABLE loopai_outbox_deliveries (
    event_id uuid NOT NULL REFERENCES loopai_outbox_events (event_id),
    handler text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead', 'quarantined')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    dry_run boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    lease_until timestamptz,
    lease_owner text,
    recorded_by uuid,
    PRIMARY KEY (event_id, handler)
) WITH (fillfactor = 80);  -- room on the page for a lease's update without a new index entry

-- Claims (a handler's due deliveries, oldest first), the next due time, the pending counts. Partial:
-- a delivery leaves it when it is settled, so it stays small however long the history.
CREATE INDEX loopai_outbox_due ON loopai_outbox_deliveries (handler, next_attempt_at) WHERE status = 'pending';

-- Pruning (finished deliveries by age) and listing dead or quarantined ones.
CREATE INDEX loopai_outbox_settled ON loopai_outbox_deliveries (status, updated_at) WHERE status <> 'pending';
