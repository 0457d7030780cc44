-- The callbacks waiting extension calls expect (issue 22): per run and task, the token the
-- callback must carry and the NAME of the environment variable holding the HMAC secret
-- (never the secret: it is read when a callback is checked, so a rotated secret works).
-- The token alone is worth nothing: a callback must also be signed with the secret.
CREATE TABLE workflow_callbacks (
    run_id     text        NOT NULL,
    task_id    text        NOT NULL,
    token      text        NOT NULL,
    secret_env text        NOT NULL,
    state      text        NOT NULL DEFAULT 'awaiting'
        CHECK (state IN ('awaiting', 'delivered', 'closed')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, task_id)
);
