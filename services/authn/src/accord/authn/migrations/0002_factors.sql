-- MFA factors. A TOTP secret is stored only sealed (AES-256-GCM, bound to user_id and id;
-- key_id names the key that sealed it, for rotation). A WebAuthn credential is stored as
-- its public key and sign count. A TOTP enrolment stays pending until a code proves the
-- app holds the secret, and is void after expires_at; a WebAuthn registration proves
-- possession in its ceremony and is active at once.
CREATE TABLE mfa_credentials (
    id              text        PRIMARY KEY,
    user_id         text        NOT NULL,
    factor          text        NOT NULL CHECK (factor IN ('totp', 'webauthn')),
    label           text,
    status          text        NOT NULL CHECK (status IN ('pending', 'active')),
    sealed_secret   bytea,
    key_id          text,
    webauthn_id     bytea       UNIQUE,
    public_key      bytea,
    sign_count      bigint      NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    last_totp_step  bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    confirmed_at    timestamptz,
    last_used_at    timestamptz,
    -- Each factor carries its own material and nothing of the other's.
    CHECK (factor <> 'totp' OR (sealed_secret IS NOT NULL AND key_id IS NOT NULL
                                AND webauthn_id IS NULL AND public_key IS NULL)),
    CHECK (factor <> 'webauthn' OR (webauthn_id IS NOT NULL AND public_key IS NOT NULL
                                    AND sealed_secret IS NULL AND key_id IS NULL)),
    -- Active exactly when confirmed; only a pending enrolment expires.
    CHECK ((status = 'active') = (confirmed_at IS NOT NULL)),
    CHECK (status = 'pending' OR expires_at IS NULL)
);
CREATE INDEX mfa_credentials_user ON mfa_credentials (user_id);
CREATE INDEX mfa_credentials_pending ON mfa_credentials (expires_at) WHERE status = 'pending';

-- WebAuthn challenges handed out and not yet answered: each is taken once (deleted when
-- used, whether the ceremony then succeeds or not) and refused after expires_at.
CREATE TABLE mfa_challenges (
    id          text        PRIMARY KEY,
    user_id     text        NOT NULL,
    purpose     text        NOT NULL CHECK (purpose IN ('registration', 'authentication')),
    challenge   bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id, purpose, created_at);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
