-- The provisioner's ledger: what the orchestrator last asked for, per identity and target.
-- Reconciliation compares targets with it; a replayed (older) command never overrides a
-- newer one, so replaying a dead letter cannot recreate the account of someone who left.
CREATE TABLE desired_accounts (
    target       text        NOT NULL,
    user_id      text        NOT NULL,
    user_name    text        NOT NULL,
    profile      jsonb       NOT NULL,
    state        text        NOT NULL CHECK (state IN ('active', 'disabled', 'absent')),
    commanded_at timestamptz NOT NULL,
    command_id   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, user_id)
);

CREATE TABLE desired_memberships (
    target       text        NOT NULL,
    user_id      text        NOT NULL,
    group_name   text        NOT NULL,
    member       boolean     NOT NULL,
    commanded_at timestamptz NOT NULL,
    command_id   text        NOT NULL,
    PRIMARY KEY (target, user_id, group_name)
);

-- One row per reconciliation run, scheduled or from `accord reconcile`.
CREATE TABLE reconciliation_runs (
    run_id      text        PRIMARY KEY,
    target      text        NOT NULL,
    trigger     text        NOT NULL CHECK (trigger IN ('cli', 'schedule')),
    fix         boolean     NOT NULL,
    status      text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    summary     jsonb,
    error       text
);
CREATE INDEX reconciliation_runs_target ON reconciliation_runs (target, started_at DESC);
