-- Access requests, whether they came through the API or straight from Kafka, with their
-- current status. A status only moves forward from pending.
CREATE TABLE access_requests (
    request_id        text        PRIMARY KEY,
    requester_id      text        NOT NULL,
    principal_id      text        NOT NULL,
    application       text        NOT NULL,
    entitlement       text        NOT NULL,
    justification     text,
    duration_seconds  integer,
    status            text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'permit', 'deny', 'approval_required')),
    reasons           text[]      NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz
);
CREATE INDEX access_requests_requester ON access_requests (requester_id, created_at);
CREATE INDEX access_requests_principal ON access_requests (principal_id, created_at);
