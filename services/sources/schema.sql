CREATE SCHEMA sources;

CREATE TABLE sources.dead_letters (
    consumer text NOT NULL,
    topic text NOT NULL,
    work_key text NOT NULL,
    event_id text NOT NULL,
    event_time timestamp with time zone NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE sources.held_events (
    run_id text NOT NULL,
    "position" integer NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL
);

CREATE TABLE sources.held_fields (
    run_id text NOT NULL,
    fields text[] NOT NULL
);

CREATE TABLE sources.held_keys (
    run_id text NOT NULL,
    key text NOT NULL,
    user_id text NOT NULL,
    status text NOT NULL,
    user_name text NOT NULL,
    digest bytea NOT NULL,
    sequence bigint NOT NULL
);

CREATE TABLE sources.identities (
    user_id text NOT NULL,
    user_name text,
    employee_number text,
    email text,
    sequence bigint NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    CONSTRAINT identities_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text, 'deleted'::text])))
);

CREATE TABLE sources.inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE sources.outbox (
    id bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE sources.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE sources.outbox_id_seq OWNED BY sources.outbox.id;

CREATE TABLE sources.runs (
    run_id text NOT NULL,
    source text NOT NULL,
    status text NOT NULL,
    trigger text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    rows_read integer DEFAULT 0 NOT NULL,
    counts jsonb DEFAULT '{}'::jsonb NOT NULL,
    problem_count integer DEFAULT 0 NOT NULL,
    problems jsonb DEFAULT '[]'::jsonb NOT NULL,
    reason text,
    decided_by text,
    decided_at timestamp with time zone,
    CONSTRAINT runs_status_check CHECK ((status = ANY (ARRAY['published'::text, 'held'::text, 'approved'::text, 'rejected'::text, 'failed'::text])))
);

CREATE TABLE sources.schema_migrations (
    package text NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE sources.source_keys (
    source text NOT NULL,
    key text NOT NULL,
    user_id text NOT NULL,
    status text NOT NULL,
    user_name text NOT NULL,
    digest bytea NOT NULL,
    sequence bigint NOT NULL,
    CONSTRAINT source_keys_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text, 'deleted'::text])))
);

CREATE TABLE sources.sources (
    name text NOT NULL,
    fields text[] NOT NULL
);

ALTER TABLE ONLY sources.outbox ALTER COLUMN id SET DEFAULT nextval('sources.outbox_id_seq'::regclass);

ALTER TABLE ONLY sources.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (consumer, topic, work_key, event_id);

ALTER TABLE ONLY sources.held_events
    ADD CONSTRAINT held_events_pkey PRIMARY KEY (run_id, "position");

ALTER TABLE ONLY sources.held_fields
    ADD CONSTRAINT held_fields_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY sources.held_keys
    ADD CONSTRAINT held_keys_pkey PRIMARY KEY (run_id, key);

ALTER TABLE ONLY sources.identities
    ADD CONSTRAINT identities_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY sources.inbox
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, topic, event_id);

ALTER TABLE ONLY sources.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY sources.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY sources.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (package, name);

ALTER TABLE ONLY sources.source_keys
    ADD CONSTRAINT source_keys_pkey PRIMARY KEY (source, key);

ALTER TABLE ONLY sources.sources
    ADD CONSTRAINT sources_pkey PRIMARY KEY (name);

CREATE INDEX identities_by_email ON sources.identities USING btree (lower(email));

CREATE INDEX identities_by_employee_number ON sources.identities USING btree (employee_number);

CREATE INDEX runs_by_source ON sources.runs USING btree (source, started_at DESC);

CREATE UNIQUE INDEX runs_one_held_per_source ON sources.runs USING btree (source) WHERE (status = 'held'::text);

ALTER TABLE ONLY sources.held_events
    ADD CONSTRAINT held_events_run_id_fkey FOREIGN KEY (run_id) REFERENCES sources.runs(run_id) ON DELETE CASCADE;

ALTER TABLE ONLY sources.held_fields
    ADD CONSTRAINT held_fields_run_id_fkey FOREIGN KEY (run_id) REFERENCES sources.runs(run_id) ON DELETE CASCADE;

ALTER TABLE ONLY sources.held_keys
    ADD CONSTRAINT held_keys_run_id_fkey FOREIGN KEY (run_id) REFERENCES sources.runs(run_id) ON DELETE CASCADE;
