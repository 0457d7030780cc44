-- Workflow effects done by I/O (mail, extension calls, access passes; issue 22). The run's
-- transaction queues the command; the effect loop claims it by pushing `due_at` to the end
-- of a lease, performs it outside any transaction and deletes it in the transaction that
-- records the result. A claimer that dies leaves it to be claimed again after the lease:
-- performed again with the same idempotency key (`effect_id`, run:task:attempt).
CREATE TABLE workflow_effects (
    effect_id   text        PRIMARY KEY,
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,
    identity_id text        NOT NULL,
    command     jsonb       NOT NULL,
    due_at      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_effects_due ON workflow_effects (due_at);
CREATE INDEX workflow_effects_by_run ON workflow_effects (run_id, task_id);
