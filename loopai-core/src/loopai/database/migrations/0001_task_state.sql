-- Schema version 1: per-task state shared by every loopai process (loopai.state.PostgresStateStore).

-- Counts handed to samplers, and the time-based sampling claim. Processes add their counts in
-- batches; a claim is one conditional upsert on last_sample_time.
CREATE TABLE loopai_task_statistics (
    task_id uuid PRIMARY KEY,
    total_executions bigint NOT NULL DEFAULT 0,
    sampled_executions bigint NOT NULL DEFAULT 0,
    failed_executions bigint NOT NULL DEFAULT 0,
    last_sample_time timestamptz,
    -- The process whose claim set last_sample_time: a claim retried after a lost reply is recognised.
    last_claimed_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Each watched task's rolling window: its last N outcomes and latencies, oldest first, and
-- whether each threshold is breached. A process appends a batch under the row's lock.
CREATE TABLE loopai_task_windows (
    task_id uuid PRIMARY KEY,
    outcomes boolean[] NOT NULL DEFAULT '{}',
    latencies double precision[] NOT NULL DEFAULT '{}',
    accuracy_breached boolean NOT NULL DEFAULT false,
    latency_breached boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
