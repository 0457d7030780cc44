-- Workflow runs (issue 22): the saga engine generalised. A run is one row with its tasks in
-- a jsonb array: the tasks only ever change with their run, so a step reads the run once
-- and writes it once, guarded by `revision` (optimistic concurrency: the writer that read
-- revision N writes N + 1 or learns it lost).
CREATE TABLE workflow_runs (
    run_id          text        PRIMARY KEY,
    workflow_id     text        NOT NULL,
    version         text        NOT NULL,
    identity_id     text        NOT NULL,
    category        text        NOT NULL,
    trigger         jsonb       NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('queued', 'running', 'waiting', 'completed', 'failed', 'cancelled')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    vars            jsonb       NOT NULL DEFAULT '{}',
    tasks           jsonb       NOT NULL DEFAULT '[]',
    revision        bigint      NOT NULL DEFAULT 0 CHECK (revision >= 0),
    cancel_reason   text,
    -- The listing cursor and the queue's order: stable under concurrent inserts.
    seq             bigserial   NOT NULL UNIQUE
);
-- One run at a time per identity: at most one running or waiting. Two concurrent starts
-- for one identity are decided here, not by a read before the insert.
CREATE UNIQUE INDEX workflow_runs_one_active ON workflow_runs (identity_id)
    WHERE status IN ('running', 'waiting');
-- An identity's runs (its queue, its history) and the listings by workflow and by status.
CREATE INDEX workflow_runs_by_identity ON workflow_runs (identity_id, status, seq);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_id, seq);
CREATE INDEX workflow_runs_by_status ON workflow_runs (status, seq);

-- When a waiting task must be looked at again (a retry's backoff, a wait, an approval's or
-- a callback's timeout). Scheduling the same (run, task, purpose) again moves it; claiming
-- deletes it in the claimer's transaction, so it is handled once.
CREATE TABLE workflow_wakeups (
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,
    purpose     text        NOT NULL
        CHECK (purpose IN ('retry', 'wait', 'approval_timeout', 'callback_timeout')),
    fire_at     timestamptz NOT NULL,
    PRIMARY KEY (run_id, task_id, purpose)
);
CREATE INDEX workflow_wakeups_due ON workflow_wakeups (fire_at);

-- Time-based triggers' timers, one per (identity, workflow version, date attribute, date
-- value), `timer_id` being the hash of that key. A fired or skipped timer keeps its row:
-- that is what makes its key fire once.
CREATE TABLE workflow_timers (
    timer_id    text        PRIMARY KEY,
    identity_id text        NOT NULL,
    workflow_id text        NOT NULL,
    version     text        NOT NULL,
    attribute   text        NOT NULL,
    date_value  text        NOT NULL,
    fire_at     timestamptz NOT NULL,
    state       text        NOT NULL
        CHECK (state IN ('scheduled', 'fired', 'skipped', 'cancelled')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_timers_due ON workflow_timers (fire_at) WHERE state = 'scheduled';
CREATE INDEX workflow_timers_by_identity ON workflow_timers (identity_id);
