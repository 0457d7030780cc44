-- What the factor policy knows of each identity's authentication, from authn's events.
-- One row per lockout and per credential, so the order the events arrive in does not
-- matter (identity.locked and identity.unlocked, mfa.enrolled and mfa.removed are separate
-- topics): an unlock or a removal that arrives first leaves a row that its late lock or
-- enrolment does not reopen. Lockout and credential ids are never reused.

-- An identity is locked while one of its lockouts has not ended.
CREATE TABLE principal_lockouts (
    user_id     text        NOT NULL,
    lockout_id  text        NOT NULL,
    ended       boolean     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, lockout_id)
);

-- An identity has a kind of factor while one credential of that kind is not removed.
CREATE TABLE principal_factors (
    user_id        text        NOT NULL,
    credential_id  text        NOT NULL,
    factor         text        NOT NULL CHECK (factor IN ('totp', 'webauthn')),
    removed        boolean     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, credential_id)
);
