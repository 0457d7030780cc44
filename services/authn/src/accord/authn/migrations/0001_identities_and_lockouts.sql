-- Authn's own projection of identities, fed by user.* events: what lockouts, factor
-- labels and Shared Signals subjects need. Written only when the event's sequence is
-- newer, so a late event changes nothing.
CREATE TABLE identities (
    user_id     text        PRIMARY KEY,
    user_name   text,
    email       text,
    status      text        NOT NULL CHECK (status IN ('active', 'inactive', 'deleted')),
    sequence    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identities_email ON identities (lower(email));

-- Failed sign-ins in the lockout window, one row per authn.failed event (its id, so a
-- redelivered event counts once). A success or a lockout clears an identity's rows.
CREATE TABLE sign_in_failures (
    event_id     text        PRIMARY KEY,
    user_id      text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    idp          text        NOT NULL,
    reason       text        NOT NULL
);
CREATE INDEX sign_in_failures_user ON sign_in_failures (user_id, occurred_at);

-- Lockouts: at most one open per identity. Closed by an approved unlock request.
CREATE TABLE lockouts (
    lockout_id   text        PRIMARY KEY,
    user_id      text        NOT NULL,
    reason       text        NOT NULL,
    failures     integer     NOT NULL DEFAULT 0,
    locked_at    timestamptz NOT NULL DEFAULT now(),
    unlocked_at  timestamptz,
    unlock_request_id text,
    CHECK ((unlocked_at IS NULL) = (unlock_request_id IS NULL))
);
CREATE UNIQUE INDEX lockouts_one_open ON lockouts (user_id) WHERE unlocked_at IS NULL;
CREATE INDEX lockouts_by_user ON lockouts (user_id, locked_at DESC);

-- Requests authn filed with authz (unlock, factor reset), to act when they are granted.
CREATE TABLE approval_requests (
    request_id   text        PRIMARY KEY,
    user_id      text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('unlock', 'mfa-reset')),
    requester_id text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'granted', 'denied', 'done')),
    lockout_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz
);
CREATE INDEX approval_requests_user ON approval_requests (user_id, created_at DESC);

-- Enrolment asked for by the joiner saga, until the identity enrols a factor.
CREATE TABLE enrolment_requests (
    user_id      text        PRIMARY KEY,
    factors      text[]      NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    saga_id      text,
    enrolled_at  timestamptz
);
