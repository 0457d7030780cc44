-- Accord API tokens, shared by every service (each verifies callers against it).
-- Only a SHA-256 of the secret part is kept: the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    token_id     text        PRIMARY KEY,
    secret_hash  text        NOT NULL,
    subject      text        NOT NULL,
    roles        text[]      NOT NULL,
    scopes       text[],
    description  text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    CHECK (expires_at > created_at)
);
