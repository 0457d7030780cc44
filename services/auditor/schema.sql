CREATE SCHEMA auditor;

CREATE FUNCTION auditor.audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END $$;

CREATE TABLE auditor.audit_chain_head (
    singleton boolean DEFAULT true NOT NULL,
    record_id bigint NOT NULL,
    hash text NOT NULL,
    chained_from bigint NOT NULL,
    CONSTRAINT audit_chain_head_singleton_check CHECK (singleton)
);

CREATE TABLE auditor.audit_checkpoints (
    record_id bigint NOT NULL,
    hash text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    key_id text NOT NULL,
    signature text NOT NULL,
    public_key text NOT NULL
);

CREATE TABLE auditor.audit_log (
    record_id bigint NOT NULL,
    source_event_id text NOT NULL,
    source_topic text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    actor text NOT NULL,
    subject text NOT NULL,
    target text,
    outcome text NOT NULL,
    correlation_id text NOT NULL,
    trace_id text,
    payload json NOT NULL,
    prev_hash text,
    hash text,
    CONSTRAINT audit_log_outcome_check CHECK ((outcome = ANY (ARRAY['success'::text, 'failure'::text, 'pending'::text, 'info'::text])))
);

CREATE TABLE auditor.dead_letters (
    consumer text NOT NULL,
    topic text NOT NULL,
    work_key text NOT NULL,
    event_id text NOT NULL,
    event_time timestamp with time zone NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE auditor.inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE auditor.outbox (
    id bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE auditor.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE auditor.outbox_id_seq OWNED BY auditor.outbox.id;

CREATE TABLE auditor.schema_migrations (
    package text NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY auditor.outbox ALTER COLUMN id SET DEFAULT nextval('auditor.outbox_id_seq'::regclass);

ALTER TABLE ONLY auditor.audit_chain_head
    ADD CONSTRAINT audit_chain_head_pkey PRIMARY KEY (singleton);

ALTER TABLE ONLY auditor.audit_checkpoints
    ADD CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (record_id);

ALTER TABLE ONLY auditor.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (record_id);

ALTER TABLE ONLY auditor.audit_log
    ADD CONSTRAINT audit_log_source_topic_source_event_id_key UNIQUE (source_topic, source_event_id);

ALTER TABLE ONLY auditor.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (consumer, topic, work_key, event_id);

ALTER TABLE ONLY auditor.inbox
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, topic, event_id);

ALTER TABLE ONLY auditor.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY auditor.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (package, name);

CREATE INDEX audit_log_correlation ON auditor.audit_log USING btree (correlation_id, record_id);

CREATE INDEX audit_log_subject ON auditor.audit_log USING btree (subject, record_id);

CREATE INDEX audit_log_time ON auditor.audit_log USING btree (occurred_at);

CREATE INDEX audit_log_type_time ON auditor.audit_log USING btree (event_type, occurred_at);

CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON auditor.audit_log FOR EACH ROW EXECUTE FUNCTION auditor.audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON auditor.audit_log FOR EACH STATEMENT EXECUTE FUNCTION auditor.audit_log_append_only();
