-- Authz's own projection of identities, fed by user.* events: the attributes policies
-- read. Written only when the event's sequence is newer, so late events change nothing.
CREATE TABLE principals (
    user_id     text        PRIMARY KEY,
    department  text,
    active      boolean     NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    sequence    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every decision taken on an access request, for the request's history.
CREATE TABLE decisions (
    request_id    text        PRIMARY KEY,
    principal_id  text        NOT NULL,
    application   text        NOT NULL,
    entitlement   text        NOT NULL,
    decision      text        NOT NULL CHECK (decision IN ('permit', 'deny', 'approval_required')),
    reasons       text[]      NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);
