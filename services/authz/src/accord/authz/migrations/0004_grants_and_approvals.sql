-- The profile facts approval chains need, and the groups policies see.
ALTER TABLE principals ADD COLUMN manager_id text;
ALTER TABLE principals ADD COLUMN user_name text;

-- Grants: who holds what, and since/until when. Never deleted: a revoked grant keeps its
-- interval, so "who had what on date X" is a query.
CREATE TABLE grants (
    grant_id     text        PRIMARY KEY,
    request_id   text        NOT NULL UNIQUE REFERENCES access_requests (request_id),
    principal_id text        NOT NULL,
    application  text        NOT NULL,
    entitlement  text        NOT NULL,
    provisioning jsonb       NOT NULL DEFAULT '[]',
    granted_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoke_reason text,
    CHECK (revoked_at IS NULL OR revoked_at >= granted_at)
);
CREATE INDEX grants_principal ON grants (principal_id, granted_at);
CREATE INDEX grants_application ON grants (application, entitlement, granted_at);
CREATE INDEX grants_due ON grants (expires_at) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
-- One live grant of an entitlement per identity.
CREATE UNIQUE INDEX grants_live ON grants (principal_id, application, entitlement)
    WHERE revoked_at IS NULL;

-- The approval chain of a request: one row per stage, decided in order.
CREATE TABLE approval_stages (
    request_id   text        NOT NULL REFERENCES access_requests (request_id),
    stage        integer     NOT NULL CHECK (stage >= 1),
    name         text        NOT NULL,
    approvers    text[]      NOT NULL,
    escalation   text[]      NOT NULL DEFAULT '{}',
    status       text        NOT NULL DEFAULT 'waiting'
                 CHECK (status IN ('waiting', 'pending', 'approved', 'denied', 'expired')),
    escalated    boolean     NOT NULL DEFAULT false,
    due_at       timestamptz,
    decided_by   text,
    comment      text,
    decided_at   timestamptz,
    PRIMARY KEY (request_id, stage)
);
CREATE INDEX approval_stages_due ON approval_stages (due_at) WHERE status = 'pending';

ALTER TABLE access_requests DROP CONSTRAINT access_requests_status_check;
ALTER TABLE access_requests ADD CONSTRAINT access_requests_status_check
    CHECK (status IN ('pending', 'permit', 'deny', 'approval_required', 'approved', 'denied',
                      'expired'));

-- Groups from group.* events; a member id that names a known group is a nested group.
CREATE TABLE directory_groups (
    group_id     text        PRIMARY KEY,
    display_name text        NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    sequence     bigint      NOT NULL
);
CREATE TABLE group_members (
    group_id  text NOT NULL,
    member_id text NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id);
