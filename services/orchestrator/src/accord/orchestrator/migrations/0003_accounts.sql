-- The accounts each identity holds in target systems, as the provisioner reported them:
-- what a leaver has to disable or delete.
CREATE TABLE accounts (
    user_id     text        NOT NULL,
    target      text        NOT NULL,
    account_id  text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('active', 'disabled')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, target)
);
