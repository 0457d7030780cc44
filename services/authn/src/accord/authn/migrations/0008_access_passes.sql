-- Temporary Access Passes: at most one per identity (issuing another replaces it). Only an
-- HMAC of the code is kept (key_id names the keyring key it was made with); the code itself
-- is shown once, when issued. failed_attempts counts wrong codes; locked_at is set when
-- they reach the limit; used_at is the first successful redemption (a one-time pass is
-- then spent).
CREATE TABLE access_passes (
    user_id          text        PRIMARY KEY,
    pass_id          text        NOT NULL UNIQUE,
    key_id           text        NOT NULL,
    code_hash        bytea       NOT NULL,
    starts_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    one_time         boolean     NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    failed_attempts  integer     NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    used_at          timestamptz,
    locked_at        timestamptz,
    CHECK (expires_at > starts_at)
);
CREATE INDEX access_passes_expiry ON access_passes (expires_at);

-- Enrolment grants a redeemed pass gave: the SHA-256 of a 256-bit bearer value, until
-- expires_at. While valid, the identity may enrol its first factor through whoever holds it.
CREATE TABLE enrolment_grants (
    grant_hash  bytea       PRIMARY KEY,
    user_id     text        NOT NULL,
    pass_id     text        NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX enrolment_grants_user ON enrolment_grants (user_id);
