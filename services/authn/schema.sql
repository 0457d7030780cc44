CREATE SCHEMA authn;

CREATE TABLE authn.access_passes (
    user_id text NOT NULL,
    pass_id text NOT NULL,
    key_id text NOT NULL,
    code_hash bytea NOT NULL,
    starts_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    one_time boolean NOT NULL,
    created_by text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    failed_attempts integer DEFAULT 0 NOT NULL,
    used_at timestamp with time zone,
    locked_at timestamp with time zone,
    CONSTRAINT access_passes_check CHECK ((expires_at > starts_at)),
    CONSTRAINT access_passes_failed_attempts_check CHECK ((failed_attempts >= 0))
);

CREATE TABLE authn.approval_requests (
    request_id text NOT NULL,
    user_id text NOT NULL,
    kind text NOT NULL,
    requester_id text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    lockout_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_at timestamp with time zone,
    CONSTRAINT approval_requests_kind_check CHECK ((kind = ANY (ARRAY['unlock'::text, 'mfa-reset'::text]))),
    CONSTRAINT approval_requests_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'granted'::text, 'denied'::text, 'done'::text])))
);

CREATE TABLE authn.dead_letters (
    consumer text NOT NULL,
    topic text NOT NULL,
    work_key text NOT NULL,
    event_id text NOT NULL,
    event_time timestamp with time zone NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authn.enrolment_grants (
    grant_hash bytea NOT NULL,
    user_id text NOT NULL,
    pass_id text NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE authn.enrolment_requests (
    user_id text NOT NULL,
    factors text[] NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    saga_id text,
    enrolled_at timestamp with time zone
);

CREATE TABLE authn.identities (
    user_id text NOT NULL,
    user_name text,
    email text,
    status text NOT NULL,
    sequence bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    profile_sequence bigint NOT NULL,
    active boolean NOT NULL,
    active_sequence bigint NOT NULL,
    deleted boolean NOT NULL,
    deleted_sequence bigint NOT NULL,
    CONSTRAINT identities_sequence_newest CHECK ((sequence = GREATEST(profile_sequence, active_sequence, deleted_sequence))),
    CONSTRAINT identities_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text, 'deleted'::text]))),
    CONSTRAINT identities_status_of_facts CHECK ((status =
CASE
    WHEN deleted THEN 'deleted'::text
    WHEN active THEN 'active'::text
    ELSE 'inactive'::text
END))
);

CREATE TABLE authn.inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authn.lockouts (
    lockout_id text NOT NULL,
    user_id text NOT NULL,
    reason text NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    locked_at timestamp with time zone DEFAULT now() NOT NULL,
    unlocked_at timestamp with time zone,
    unlock_request_id text,
    CONSTRAINT lockouts_check CHECK (((unlocked_at IS NULL) = (unlock_request_id IS NULL)))
);

CREATE TABLE authn.mfa_challenges (
    id text NOT NULL,
    user_id text NOT NULL,
    purpose text NOT NULL,
    challenge bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT mfa_challenges_purpose_check CHECK ((purpose = ANY (ARRAY['registration'::text, 'authentication'::text])))
);

CREATE TABLE authn.mfa_credentials (
    id text NOT NULL,
    user_id text NOT NULL,
    factor text NOT NULL,
    label text,
    status text NOT NULL,
    sealed_secret bytea,
    key_id text,
    webauthn_id bytea,
    public_key bytea,
    sign_count bigint DEFAULT 0 NOT NULL,
    last_totp_step bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    confirmed_at timestamp with time zone,
    last_used_at timestamp with time zone,
    CONSTRAINT mfa_credentials_check CHECK (((factor <> 'totp'::text) OR ((sealed_secret IS NOT NULL) AND (key_id IS NOT NULL) AND (webauthn_id IS NULL) AND (public_key IS NULL)))),
    CONSTRAINT mfa_credentials_check1 CHECK (((factor <> 'webauthn'::text) OR ((webauthn_id IS NOT NULL) AND (public_key IS NOT NULL) AND (sealed_secret IS NULL) AND (key_id IS NULL)))),
    CONSTRAINT mfa_credentials_check2 CHECK (((status = 'active'::text) = (confirmed_at IS NOT NULL))),
    CONSTRAINT mfa_credentials_check3 CHECK (((status = 'pending'::text) OR (expires_at IS NULL))),
    CONSTRAINT mfa_credentials_factor_check CHECK ((factor = ANY (ARRAY['totp'::text, 'webauthn'::text]))),
    CONSTRAINT mfa_credentials_sign_count_check CHECK ((sign_count >= 0)),
    CONSTRAINT mfa_credentials_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'active'::text])))
);

CREATE TABLE authn.outbox (
    id bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE authn.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE authn.outbox_id_seq OWNED BY authn.outbox.id;

CREATE TABLE authn.schema_migrations (
    package text NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authn.sign_in_failures (
    event_id text NOT NULL,
    user_id text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    idp text NOT NULL,
    reason text NOT NULL
);

CREATE TABLE authn.sign_in_settled (
    user_id text NOT NULL,
    settled_at timestamp with time zone NOT NULL
);

CREATE TABLE authn.sign_in_successes (
    event_id text NOT NULL,
    user_id text NOT NULL,
    occurred_at timestamp with time zone NOT NULL
);

CREATE TABLE authn.ssf_received_jtis (
    issuer text NOT NULL,
    jti text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE authn.ssf_set_queue (
    jti text NOT NULL,
    stream_id text NOT NULL,
    user_id text,
    event_uri text NOT NULL,
    token text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT ssf_set_queue_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT ssf_set_queue_check CHECK (((status <> 'failed'::text) OR (last_error IS NOT NULL))),
    CONSTRAINT ssf_set_queue_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'acknowledged'::text, 'failed'::text])))
);

CREATE TABLE authn.ssf_stream_subjects (
    stream_id text NOT NULL,
    kind text NOT NULL,
    value text NOT NULL,
    included boolean NOT NULL,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ssf_stream_subjects_check CHECK (((kind <> 'email'::text) OR (value = lower(value)))),
    CONSTRAINT ssf_stream_subjects_kind_check CHECK ((kind = ANY (ARRAY['user_id'::text, 'email'::text])))
);

CREATE TABLE authn.ssf_streams (
    stream_id text NOT NULL,
    owner text NOT NULL,
    config jsonb NOT NULL,
    status text DEFAULT 'enabled'::text NOT NULL,
    status_reason text,
    last_verification_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ssf_streams_aud_is_the_owner CHECK (((config -> 'aud'::text) = jsonb_build_array(owner))),
    CONSTRAINT ssf_streams_check CHECK (((config ->> 'stream_id'::text) = stream_id)),
    CONSTRAINT ssf_streams_config_check CHECK (((config #>> '{delivery,method}'::text[]) = ANY (ARRAY['urn:ietf:rfc:8935'::text, 'urn:ietf:rfc:8936'::text]))),
    CONSTRAINT ssf_streams_status_check CHECK ((status = ANY (ARRAY['enabled'::text, 'paused'::text, 'disabled'::text])))
);

ALTER TABLE ONLY authn.outbox ALTER COLUMN id SET DEFAULT nextval('authn.outbox_id_seq'::regclass);

ALTER TABLE ONLY authn.access_passes
    ADD CONSTRAINT access_passes_pass_id_key UNIQUE (pass_id);

ALTER TABLE ONLY authn.access_passes
    ADD CONSTRAINT access_passes_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY authn.approval_requests
    ADD CONSTRAINT approval_requests_pkey PRIMARY KEY (request_id);

ALTER TABLE ONLY authn.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (consumer, topic, work_key, event_id);

ALTER TABLE ONLY authn.enrolment_grants
    ADD CONSTRAINT enrolment_grants_pkey PRIMARY KEY (grant_hash);

ALTER TABLE ONLY authn.enrolment_requests
    ADD CONSTRAINT enrolment_requests_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY authn.identities
    ADD CONSTRAINT identities_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY authn.inbox
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, topic, event_id);

ALTER TABLE ONLY authn.lockouts
    ADD CONSTRAINT lockouts_pkey PRIMARY KEY (lockout_id);

ALTER TABLE ONLY authn.mfa_challenges
    ADD CONSTRAINT mfa_challenges_challenge_key UNIQUE (challenge);

ALTER TABLE ONLY authn.mfa_challenges
    ADD CONSTRAINT mfa_challenges_pkey PRIMARY KEY (id);

ALTER TABLE ONLY authn.mfa_credentials
    ADD CONSTRAINT mfa_credentials_pkey PRIMARY KEY (id);

ALTER TABLE ONLY authn.mfa_credentials
    ADD CONSTRAINT mfa_credentials_webauthn_id_key UNIQUE (webauthn_id);

ALTER TABLE ONLY authn.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

ALTER TABLE ONLY authn.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (package, name);

ALTER TABLE ONLY authn.sign_in_failures
    ADD CONSTRAINT sign_in_failures_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY authn.sign_in_settled
    ADD CONSTRAINT sign_in_settled_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY authn.sign_in_successes
    ADD CONSTRAINT sign_in_successes_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY authn.ssf_received_jtis
    ADD CONSTRAINT ssf_received_jtis_pkey PRIMARY KEY (issuer, jti);

ALTER TABLE ONLY authn.ssf_set_queue
    ADD CONSTRAINT ssf_set_queue_pkey PRIMARY KEY (jti);

ALTER TABLE ONLY authn.ssf_stream_subjects
    ADD CONSTRAINT ssf_stream_subjects_pkey PRIMARY KEY (stream_id, kind, value);

ALTER TABLE ONLY authn.ssf_streams
    ADD CONSTRAINT ssf_streams_pkey PRIMARY KEY (stream_id);

CREATE INDEX access_passes_expiry ON authn.access_passes USING btree (expires_at);

CREATE INDEX approval_requests_user ON authn.approval_requests USING btree (user_id, created_at DESC);

CREATE INDEX enrolment_grants_user ON authn.enrolment_grants USING btree (user_id);

CREATE INDEX identities_email ON authn.identities USING btree (lower(email));

CREATE INDEX lockouts_by_user ON authn.lockouts USING btree (user_id, locked_at DESC);

CREATE UNIQUE INDEX lockouts_one_open ON authn.lockouts USING btree (user_id) WHERE (unlocked_at IS NULL);

CREATE INDEX mfa_challenges_expiry ON authn.mfa_challenges USING btree (expires_at);

CREATE INDEX mfa_challenges_user ON authn.mfa_challenges USING btree (user_id, purpose, created_at);

CREATE INDEX mfa_credentials_pending ON authn.mfa_credentials USING btree (expires_at) WHERE (status = 'pending'::text);

CREATE INDEX mfa_credentials_user ON authn.mfa_credentials USING btree (user_id);

CREATE INDEX sign_in_failures_user ON authn.sign_in_failures USING btree (user_id, occurred_at);

CREATE INDEX sign_in_successes_user ON authn.sign_in_successes USING btree (user_id, occurred_at);

CREATE INDEX ssf_received_jtis_age ON authn.ssf_received_jtis USING btree (received_at);

CREATE INDEX ssf_set_queue_closed ON authn.ssf_set_queue USING btree (created_at) WHERE (status = ANY (ARRAY['acknowledged'::text, 'failed'::text]));

CREATE INDEX ssf_set_queue_due ON authn.ssf_set_queue USING btree (next_attempt_at) WHERE (status = 'pending'::text);

CREATE INDEX ssf_set_queue_open ON authn.ssf_set_queue USING btree (stream_id, created_at) WHERE (status = ANY (ARRAY['pending'::text, 'delivered'::text]));

CREATE UNIQUE INDEX ssf_streams_one_per_push_endpoint ON authn.ssf_streams USING btree (owner, ((config #>> '{delivery,endpoint_url}'::text[]))) WHERE ((config #>> '{delivery,method}'::text[]) = 'urn:ietf:rfc:8935'::text);

CREATE INDEX ssf_streams_owner ON authn.ssf_streams USING btree (owner, created_at);

ALTER TABLE ONLY authn.ssf_set_queue
    ADD CONSTRAINT ssf_set_queue_stream_id_fkey FOREIGN KEY (stream_id) REFERENCES authn.ssf_streams(stream_id) ON DELETE CASCADE;

ALTER TABLE ONLY authn.ssf_stream_subjects
    ADD CONSTRAINT ssf_stream_subjects_stream_id_fkey FOREIGN KEY (stream_id) REFERENCES authn.ssf_streams(stream_id) ON DELETE CASCADE;
