CREATE SCHEMA provisioner;

CREATE TABLE provisioner.dead_letters (
    consumer text NOT NULL,
    topic text NOT NULL,
    work_key text NOT NULL,
    event_id text NOT NULL,
    event_time timestamp with time zone NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE provisioner.desired_accounts (
    target text NOT NULL,
    user_id text NOT NULL,
    user_name text NOT NULL,
    profile jsonb NOT NULL,
    state text NOT NULL,
    commanded_at timestamp with time zone NOT NULL,
    command_id text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT desired_accounts_state_check CHECK ((state = ANY (ARRAY['active'::text, 'disabled'::text, 'absent'::text])))
);

CREATE TABLE provisioner.desired_memberships (
    target text NOT NULL,
    user_id text NOT NULL,
    group_name text NOT NULL,
    member boolean NOT NULL,
    commanded_at timestamp with time zone NOT NULL,
    command_id text NOT NULL
);

CREATE TABLE provisioner.inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE provisioner.outbox (
    id bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE provisioner.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE provisioner.outbox_id_seq OWNED BY provisioner.outbox.id;

CREATE TABLE provisioner.reconciliation_runs (
    run_id text NOT NULL,
    target text NOT NULL,
    trigger text NOT NULL,
    fix boolean NOT NULL,
    status text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    summary jsonb,
    error text,
    CONSTRAINT reconciliation_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'completed'::text, 'failed'::text]))),
    CONSTRAINT reconciliation_runs_trigger_check CHECK ((trigger = ANY (ARRAY['cli'::text, 'schedule'::text])))
);

CREATE TABLE provisioner.schema_migrations (
    package text NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY provisioner.outbox ALTER COLUMN id SET DEFAULT nextval('provisioner.outbox_id_seq'::regclass);

ALTER TABLE ONLY provisioner.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (consumer, topic, work_key, event_id);

ALTER TABLE ONLY provisioner.desired_accounts
    ADD CONSTRAINT desired_accounts_pkey PRIMARY KEY (target, user_id);

ALTER TABLE ONLY provisioner.desired_memberships
    ADD CONSTRAINT desired_memberships_pkey PRIMARY KEY (target, user_id, group_name);

ALTER TABLE ONLY provisioner.inbox
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, topic, event_id);

ALTER TABLE ONLY provisioner.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY provisioner.reconciliation_runs
    ADD CONSTRAINT reconciliation_runs_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY provisioner.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (package, name);

CREATE INDEX reconciliation_runs_target ON provisioner.reconciliation_runs USING btree (target, started_at DESC);
