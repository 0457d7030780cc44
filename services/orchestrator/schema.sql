CREATE SCHEMA orchestrator;

CREATE FUNCTION orchestrator.sagas_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF OLD.status IN ('completed', 'cancelled') THEN
        RAISE EXCEPTION 'saga % is % and cannot change', OLD.saga_id, OLD.status;
    END IF;
    IF OLD.status = 'queued' AND NEW.status NOT IN ('queued', 'running', 'completed', 'cancelled') THEN
        RAISE EXCEPTION 'queued saga % can only begin or be cancelled', OLD.saga_id;
    END IF;
    IF OLD.status = 'failed' AND NEW.status NOT IN ('failed', 'running', 'completed', 'cancelled') THEN
        RAISE EXCEPTION 'failed saga % can only heal, be retried or be cancelled', OLD.saga_id;
    END IF;
    IF OLD.status = 'compensating' AND NEW.status NOT IN ('compensating', 'failed') THEN
        RAISE EXCEPTION 'compensating saga % can only finish failed', OLD.saga_id;
    END IF;
    IF NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'saga % version must advance by one', OLD.saga_id;
    END IF;
    RETURN NEW;
END $$;

CREATE TABLE orchestrator.accounts (
    user_id text NOT NULL,
    target text NOT NULL,
    account_id text,
    state text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT accounts_id_unless_requested CHECK (((account_id IS NULL) = (state = 'requested'::text))),
    CONSTRAINT accounts_state_check CHECK ((state = ANY (ARRAY['active'::text, 'disabled'::text, 'requested'::text])))
);

CREATE TABLE orchestrator.dead_letters (
    consumer text NOT NULL,
    topic text NOT NULL,
    work_key text NOT NULL,
    event_id text NOT NULL,
    event_time timestamp with time zone NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.ended_lockouts (
    user_id text NOT NULL,
    lockout_id text NOT NULL,
    ended_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.identities (
    user_id text NOT NULL,
    user_name text NOT NULL,
    profile jsonb NOT NULL,
    status text NOT NULL,
    sequence bigint NOT NULL,
    source text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_by text,
    status_sequence bigint NOT NULL,
    CONSTRAINT identities_sequence_check CHECK ((sequence >= 0)),
    CONSTRAINT identities_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text, 'deleted'::text])))
);

CREATE TABLE orchestrator.inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.outbox (
    id bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE orchestrator.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE orchestrator.outbox_id_seq OWNED BY orchestrator.outbox.id;

CREATE TABLE orchestrator.parked_events (
    event_id text NOT NULL,
    user_id text NOT NULL,
    sequence bigint NOT NULL,
    event_type text NOT NULL,
    version integer NOT NULL,
    data jsonb NOT NULL,
    source text NOT NULL,
    parked_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.sagas (
    saga_id text NOT NULL,
    saga_type text NOT NULL,
    subject_id text NOT NULL,
    correlation_id text NOT NULL,
    status text NOT NULL,
    state jsonb NOT NULL,
    version integer DEFAULT 0 NOT NULL,
    started_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    seq bigint NOT NULL,
    holds_identity boolean DEFAULT false NOT NULL,
    CONSTRAINT sagas_holder_is_unfinished CHECK (((NOT holds_identity) OR (status = ANY (ARRAY['running'::text, 'compensating'::text, 'failed'::text])))),
    CONSTRAINT sagas_saga_type_check CHECK ((saga_type = ANY (ARRAY['joiner'::text, 'mover'::text, 'reactivation'::text, 'leaver'::text, 'access_grant'::text, 'access_revoke'::text, 'lockout'::text, 'unlock'::text, 'workflow_task'::text]))),
    CONSTRAINT sagas_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'compensating'::text, 'completed'::text, 'failed'::text, 'cancelled'::text])))
);

CREATE SEQUENCE orchestrator.sagas_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE orchestrator.sagas_seq_seq OWNED BY orchestrator.sagas.seq;

CREATE TABLE orchestrator.schema_migrations (
    package text NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.scim_equality_values (
    resource_type text NOT NULL,
    id text NOT NULL,
    urn text NOT NULL,
    value text NOT NULL
);

CREATE TABLE orchestrator.scim_resources (
    resource_type text NOT NULL,
    id text NOT NULL,
    data jsonb NOT NULL,
    version bigint NOT NULL,
    created timestamp with time zone NOT NULL,
    last_modified timestamp with time zone NOT NULL,
    folded jsonb,
    CONSTRAINT scim_resources_version_check CHECK ((version > 0))
);

CREATE TABLE orchestrator.scim_unique_values (
    urn text NOT NULL,
    value text NOT NULL,
    resource_type text NOT NULL,
    id text NOT NULL
);

CREATE TABLE orchestrator.timers (
    timer_id text NOT NULL,
    kind text NOT NULL,
    subject_id text NOT NULL,
    saga_id text,
    correlation_id text NOT NULL,
    due_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT timers_kind_check CHECK ((kind = ANY (ARRAY['saga_retry'::text, 'saga_timeout'::text, 'account_deletion'::text])))
);

CREATE TABLE orchestrator.workflow_callbacks (
    run_id text NOT NULL,
    task_id text NOT NULL,
    token text NOT NULL,
    secret_env text NOT NULL,
    state text DEFAULT 'awaiting'::text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workflow_callbacks_state_check CHECK ((state = ANY (ARRAY['awaiting'::text, 'delivered'::text, 'closed'::text])))
);

CREATE TABLE orchestrator.workflow_effects (
    effect_id text NOT NULL,
    run_id text NOT NULL,
    task_id text NOT NULL,
    identity_id text NOT NULL,
    command jsonb NOT NULL,
    due_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.workflow_runs (
    run_id text NOT NULL,
    workflow_id text NOT NULL,
    version text NOT NULL,
    identity_id text NOT NULL,
    category text NOT NULL,
    trigger jsonb NOT NULL,
    status text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    vars jsonb DEFAULT '{}'::jsonb NOT NULL,
    tasks jsonb DEFAULT '[]'::jsonb NOT NULL,
    revision bigint DEFAULT 0 NOT NULL,
    cancel_reason text,
    seq bigint NOT NULL,
    CONSTRAINT workflow_runs_revision_check CHECK ((revision >= 0)),
    CONSTRAINT workflow_runs_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'waiting'::text, 'completed'::text, 'failed'::text, 'cancelled'::text])))
);

CREATE SEQUENCE orchestrator.workflow_runs_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE orchestrator.workflow_runs_seq_seq OWNED BY orchestrator.workflow_runs.seq;

CREATE TABLE orchestrator.workflow_schedules (
    workflow_id text NOT NULL,
    last_run_at timestamp with time zone NOT NULL,
    running_slot timestamp with time zone,
    cursor text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE orchestrator.workflow_timers (
    timer_id text NOT NULL,
    identity_id text NOT NULL,
    workflow_id text NOT NULL,
    version text NOT NULL,
    attribute text NOT NULL,
    date_value text NOT NULL,
    fire_at timestamp with time zone NOT NULL,
    state text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workflow_timers_state_check CHECK ((state = ANY (ARRAY['scheduled'::text, 'fired'::text, 'skipped'::text, 'cancelled'::text])))
);

CREATE TABLE orchestrator.workflow_versions (
    workflow_id text NOT NULL,
    version text NOT NULL,
    definition jsonb NOT NULL,
    first_seen_at timestamp with time zone NOT NULL
);

CREATE TABLE orchestrator.workflow_wakeups (
    run_id text NOT NULL,
    task_id text NOT NULL,
    purpose text NOT NULL,
    fire_at timestamp with time zone NOT NULL,
    CONSTRAINT workflow_wakeups_purpose_check CHECK ((purpose = ANY (ARRAY['retry'::text, 'wait'::text, 'approval_timeout'::text, 'callback_timeout'::text, 'access_timeout'::text])))
);

ALTER TABLE ONLY orchestrator.outbox ALTER COLUMN id SET DEFAULT nextval('orchestrator.outbox_id_seq'::regclass);

ALTER TABLE ONLY orchestrator.sagas ALTER COLUMN seq SET DEFAULT nextval('orchestrator.sagas_seq_seq'::regclass);

ALTER TABLE ONLY orchestrator.workflow_runs ALTER COLUMN seq SET DEFAULT nextval('orchestrator.workflow_runs_seq_seq'::regclass);

ALTER TABLE ONLY orchestrator.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (user_id, target);

ALTER TABLE ONLY orchestrator.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (consumer, topic, work_key, event_id);

ALTER TABLE ONLY orchestrator.ended_lockouts
    ADD CONSTRAINT ended_lockouts_pkey PRIMARY KEY (user_id, lockout_id);

ALTER TABLE ONLY orchestrator.identities
    ADD CONSTRAINT identities_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY orchestrator.inbox
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, topic, event_id);

ALTER TABLE ONLY orchestrator.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY orchestrator.parked_events
    ADD CONSTRAINT parked_events_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY orchestrator.sagas
    ADD CONSTRAINT sagas_pkey PRIMARY KEY (saga_id);

ALTER TABLE ONLY orchestrator.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (package, name);

ALTER TABLE ONLY orchestrator.scim_equality_values
    ADD CONSTRAINT scim_equality_values_pkey PRIMARY KEY (resource_type, id, urn);

ALTER TABLE ONLY orchestrator.scim_resources
    ADD CONSTRAINT scim_resources_pkey PRIMARY KEY (resource_type, id);

ALTER TABLE ONLY orchestrator.scim_unique_values
    ADD CONSTRAINT scim_unique_values_taken UNIQUE (urn, value);

ALTER TABLE ONLY orchestrator.timers
    ADD CONSTRAINT timers_pkey PRIMARY KEY (timer_id);

ALTER TABLE ONLY orchestrator.workflow_callbacks
    ADD CONSTRAINT workflow_callbacks_pkey PRIMARY KEY (run_id, task_id);

ALTER TABLE ONLY orchestrator.workflow_effects
    ADD CONSTRAINT workflow_effects_pkey PRIMARY KEY (effect_id);

ALTER TABLE ONLY orchestrator.workflow_runs
    ADD CONSTRAINT workflow_runs_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY orchestrator.workflow_runs
    ADD CONSTRAINT workflow_runs_seq_key UNIQUE (seq);

ALTER TABLE ONLY orchestrator.workflow_schedules
    ADD CONSTRAINT workflow_schedules_pkey PRIMARY KEY (workflow_id);

ALTER TABLE ONLY orchestrator.workflow_timers
    ADD CONSTRAINT workflow_timers_pkey PRIMARY KEY (timer_id);

ALTER TABLE ONLY orchestrator.workflow_versions
    ADD CONSTRAINT workflow_versions_pkey PRIMARY KEY (workflow_id, version);

ALTER TABLE ONLY orchestrator.workflow_wakeups
    ADD CONSTRAINT workflow_wakeups_pkey PRIMARY KEY (run_id, task_id, purpose);

CREATE UNIQUE INDEX identities_user_name_live ON orchestrator.identities USING btree (lower(user_name)) WHERE (status <> 'deleted'::text);

CREATE INDEX parked_events_user ON orchestrator.parked_events USING btree (user_id, sequence);

CREATE INDEX sagas_by_status ON orchestrator.sagas USING btree (status, seq);

CREATE UNIQUE INDEX sagas_one_holder ON orchestrator.sagas USING btree (subject_id) WHERE holds_identity;

CREATE UNIQUE INDEX sagas_seq ON orchestrator.sagas USING btree (seq);

CREATE INDEX sagas_subject ON orchestrator.sagas USING btree (subject_id);

CREATE INDEX sagas_subject_status ON orchestrator.sagas USING btree (subject_id, status, seq);

CREATE INDEX scim_equality_values_lookup ON orchestrator.scim_equality_values USING btree (resource_type, urn, value);

CREATE INDEX scim_resources_display_name_trigrams ON orchestrator.scim_resources USING gin ((((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:User:displayName'::text)) orchestrator.gin_trgm_ops);

CREATE INDEX scim_resources_group_display_name ON orchestrator.scim_resources USING btree (resource_type, (((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:Group:displayName'::text)) COLLATE "C", created, id);

CREATE INDEX scim_resources_group_external_id ON orchestrator.scim_resources USING btree (resource_type, (((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:Group:externalId'::text)) COLLATE "C", created, id);

CREATE INDEX scim_resources_order ON orchestrator.scim_resources USING btree (resource_type, created, id);

CREATE INDEX scim_resources_unfolded ON orchestrator.scim_resources USING btree (resource_type) WHERE (folded IS NULL);

CREATE INDEX scim_resources_user_display_name ON orchestrator.scim_resources USING btree (resource_type, (((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:User:displayName'::text)) COLLATE "C", created, id);

CREATE INDEX scim_resources_user_external_id ON orchestrator.scim_resources USING btree (resource_type, (((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:User:externalId'::text)) COLLATE "C", created, id);

CREATE INDEX scim_resources_user_family_name ON orchestrator.scim_resources USING btree (resource_type, (((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:User:name.familyName'::text)) COLLATE "C", created, id);

CREATE INDEX scim_resources_user_name ON orchestrator.scim_resources USING btree (resource_type, (((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:User:userName'::text)) COLLATE "C", created, id);

CREATE INDEX scim_resources_user_name_trigrams ON orchestrator.scim_resources USING gin ((((folded -> 'v'::text) ->> 'urn:ietf:params:scim:schemas:core:2.0:User:userName'::text)) orchestrator.gin_trgm_ops);

CREATE INDEX scim_unique_values_owner ON orchestrator.scim_unique_values USING btree (resource_type, id);

CREATE INDEX timers_due ON orchestrator.timers USING btree (due_at);

CREATE INDEX timers_saga ON orchestrator.timers USING btree (saga_id, kind);

CREATE INDEX workflow_effects_by_run ON orchestrator.workflow_effects USING btree (run_id, task_id);

CREATE INDEX workflow_effects_due ON orchestrator.workflow_effects USING btree (due_at);

CREATE INDEX workflow_runs_by_identity ON orchestrator.workflow_runs USING btree (identity_id, status, seq);

CREATE INDEX workflow_runs_by_status ON orchestrator.workflow_runs USING btree (status, seq);

CREATE INDEX workflow_runs_by_workflow ON orchestrator.workflow_runs USING btree (workflow_id, seq);

CREATE UNIQUE INDEX workflow_runs_one_active ON orchestrator.workflow_runs USING btree (identity_id) WHERE (status = ANY (ARRAY['running'::text, 'waiting'::text]));

CREATE INDEX workflow_timers_by_identity ON orchestrator.workflow_timers USING btree (identity_id);

CREATE INDEX workflow_timers_due ON orchestrator.workflow_timers USING btree (fire_at) WHERE (state = 'scheduled'::text);

CREATE INDEX workflow_wakeups_due ON orchestrator.workflow_wakeups USING btree (fire_at);

CREATE TRIGGER sagas_guard BEFORE UPDATE ON orchestrator.sagas FOR EACH ROW EXECUTE FUNCTION orchestrator.sagas_guard();

ALTER TABLE ONLY orchestrator.scim_equality_values
    ADD CONSTRAINT scim_equality_values_resource_type_id_fkey FOREIGN KEY (resource_type, id) REFERENCES orchestrator.scim_resources(resource_type, id) ON DELETE CASCADE;

ALTER TABLE ONLY orchestrator.scim_unique_values
    ADD CONSTRAINT scim_unique_values_resource_type_id_fkey FOREIGN KEY (resource_type, id) REFERENCES orchestrator.scim_resources(resource_type, id) ON DELETE CASCADE;
