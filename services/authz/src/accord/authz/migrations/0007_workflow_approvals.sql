-- Approvals a lifecycle workflow's run asks for (approval.requested, issue 22): about an
-- identity, with no entitlement, so apart from access requests' approval_stages. One row
-- per ask: approval_id is the run's idempotency key for it, so a redelivered request finds
-- its row and records (and announces) nothing twice.
CREATE TABLE workflow_approvals (
    approval_id    text        PRIMARY KEY,
    user_id        text        NOT NULL,
    workflow_id    text        NOT NULL,
    run_id         text        NOT NULL,
    task_id        text        NOT NULL,
    asked          text[]      NOT NULL,   -- as the workflow named them: manager, group:<id>, user:<id>
    approvers      text[]      NOT NULL,   -- who they resolved to (never user_id itself)
    reason         text,
    escalation     boolean     NOT NULL DEFAULT false,
    expires_at     timestamptz NOT NULL,
    correlation_id text        NOT NULL,   -- the run's flow: the decision continues it
    status         text        NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by     text,
    comment        text,
    decided_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_approvals_pending ON workflow_approvals (approval_id)
    WHERE status = 'pending';
