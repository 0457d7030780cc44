CREATE SCHEMA authz;

CREATE TABLE authz.access_requests (
    request_id text NOT NULL,
    requester_id text NOT NULL,
    principal_id text NOT NULL,
    application text NOT NULL,
    entitlement text NOT NULL,
    justification text,
    duration_seconds integer,
    status text DEFAULT 'pending'::text NOT NULL,
    reasons text[] DEFAULT '{}'::text[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_at timestamp with time zone,
    CONSTRAINT access_requests_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'permit'::text, 'deny'::text, 'approval_required'::text, 'approved'::text, 'denied'::text, 'expired'::text])))
);

CREATE TABLE authz.approval_stages (
    request_id text NOT NULL,
    stage integer NOT NULL,
    name text NOT NULL,
    approvers text[] NOT NULL,
    escalation text[] DEFAULT '{}'::text[] NOT NULL,
    status text DEFAULT 'waiting'::text NOT NULL,
    escalated boolean DEFAULT false NOT NULL,
    due_at timestamp with time zone,
    decided_by text,
    comment text,
    decided_at timestamp with time zone,
    CONSTRAINT approval_stages_stage_check CHECK ((stage >= 1)),
    CONSTRAINT approval_stages_status_check CHECK ((status = ANY (ARRAY['waiting'::text, 'pending'::text, 'approved'::text, 'denied'::text, 'expired'::text, 'skipped'::text])))
);

CREATE TABLE authz.dead_letters (
    consumer text NOT NULL,
    topic text NOT NULL,
    work_key text NOT NULL,
    event_id text NOT NULL,
    event_time timestamp with time zone NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authz.directory_groups (
    group_id text NOT NULL,
    display_name text NOT NULL,
    deleted boolean DEFAULT false NOT NULL,
    sequence bigint NOT NULL
);

CREATE TABLE authz.grants (
    grant_id text NOT NULL,
    request_id text NOT NULL,
    principal_id text NOT NULL,
    application text NOT NULL,
    entitlement text NOT NULL,
    provisioning jsonb DEFAULT '[]'::jsonb NOT NULL,
    granted_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    revoke_reason text,
    CONSTRAINT grants_check CHECK (((revoked_at IS NULL) OR (revoked_at >= granted_at)))
);

CREATE TABLE authz.group_members (
    group_id text NOT NULL,
    member_id text NOT NULL
);

CREATE TABLE authz.inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authz.outbox (
    id bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE authz.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE authz.outbox_id_seq OWNED BY authz.outbox.id;

CREATE TABLE authz.principal_factors (
    user_id text NOT NULL,
    credential_id text NOT NULL,
    factor text NOT NULL,
    removed boolean NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT principal_factors_factor_check CHECK ((factor = ANY (ARRAY['totp'::text, 'webauthn'::text])))
);

CREATE TABLE authz.principal_lockouts (
    user_id text NOT NULL,
    lockout_id text NOT NULL,
    ended boolean NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authz.principals (
    user_id text NOT NULL,
    department text,
    active boolean NOT NULL,
    deleted boolean DEFAULT false NOT NULL,
    sequence bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    manager_id text,
    user_name text
);

CREATE TABLE authz.schema_migrations (
    package text NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authz.workflow_approvals (
    approval_id text NOT NULL,
    user_id text NOT NULL,
    workflow_id text NOT NULL,
    run_id text NOT NULL,
    task_id text NOT NULL,
    asked text[] NOT NULL,
    approvers text[] NOT NULL,
    reason text,
    escalation boolean DEFAULT false NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    correlation_id text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    decided_by text,
    comment text,
    decided_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workflow_approvals_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'approved'::text, 'rejected'::text])))
);

ALTER TABLE ONLY authz.outbox ALTER COLUMN id SET DEFAULT nextval('authz.outbox_id_seq'::regclass);

ALTER TABLE ONLY authz.access_requests
    ADD CONSTRAINT access_requests_pkey PRIMARY KEY (request_id);

ALTER TABLE ONLY authz.approval_stages
    ADD CONSTRAINT approval_stages_pkey PRIMARY KEY (request_id, stage);

ALTER TABLE ONLY authz.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (consumer, topic, work_key, event_id);

ALTER TABLE ONLY authz.directory_groups
    ADD CONSTRAINT directory_groups_pkey PRIMARY KEY (group_id);

ALTER TABLE ONLY authz.grants
    ADD CONSTRAINT grants_pkey PRIMARY KEY (grant_id);

ALTER TABLE ONLY authz.grants
    ADD CONSTRAINT grants_request_id_key UNIQUE (request_id);

ALTER TABLE ONLY authz.group_members
    ADD CONSTRAINT group_members_pkey PRIMARY KEY (group_id, member_id);

ALTER TABLE ONLY authz.inbox
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, topic, event_id);

ALTER TABLE ONLY authz.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY authz.principal_factors
    ADD CONSTRAINT principal_factors_pkey PRIMARY KEY (user_id, credential_id);

ALTER TABLE ONLY authz.principal_lockouts
    ADD CONSTRAINT principal_lockouts_pkey PRIMARY KEY (user_id, lockout_id);

ALTER TABLE ONLY authz.principals
    ADD CONSTRAINT principals_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY authz.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (package, name);

ALTER TABLE ONLY authz.workflow_approvals
    ADD CONSTRAINT workflow_approvals_pkey PRIMARY KEY (approval_id);

CREATE INDEX access_requests_principal ON authz.access_requests USING btree (principal_id, created_at);

CREATE INDEX access_requests_requester ON authz.access_requests USING btree (requester_id, created_at);

CREATE INDEX approval_stages_due ON authz.approval_stages USING btree (due_at) WHERE (status = 'pending'::text);

CREATE INDEX grants_application ON authz.grants USING btree (application, entitlement, granted_at);

CREATE INDEX grants_due ON authz.grants USING btree (expires_at) WHERE ((revoked_at IS NULL) AND (expires_at IS NOT NULL));

CREATE UNIQUE INDEX grants_live ON authz.grants USING btree (principal_id, application, entitlement) WHERE (revoked_at IS NULL);

CREATE INDEX grants_principal ON authz.grants USING btree (principal_id, granted_at);

CREATE INDEX group_members_member ON authz.group_members USING btree (member_id);

CREATE INDEX workflow_approvals_pending ON authz.workflow_approvals USING btree (approval_id) WHERE (status = 'pending'::text);

ALTER TABLE ONLY authz.approval_stages
    ADD CONSTRAINT approval_stages_request_id_fkey FOREIGN KEY (request_id) REFERENCES authz.access_requests(request_id);

ALTER TABLE ONLY authz.grants
    ADD CONSTRAINT grants_request_id_fkey FOREIGN KEY (request_id) REFERENCES authz.access_requests(request_id);
