-- Shared Signals Framework 1.0: the transmitter's streams and the SETs queued on them,
-- and the receiver's memory of the SETs it took (replay detection).

-- A stream belongs to the receiver (caller subject) that created it. The configuration is
-- the SSF stream configuration as authn keeps it (delivery authorization header included).
CREATE TABLE ssf_streams (
    stream_id             text        PRIMARY KEY,
    owner                 text        NOT NULL,
    config                jsonb       NOT NULL,
    status                text        NOT NULL DEFAULT 'enabled'
                                      CHECK (status IN ('enabled', 'paused', 'disabled')),
    status_reason         text,
    subjects_listed       boolean     NOT NULL DEFAULT false,
    last_verification_at  timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (config ->> 'stream_id' = stream_id),
    CHECK (config #>> '{delivery,method}' IN ('urn:ietf:rfc:8935', 'urn:ietf:rfc:8936'))
);
CREATE INDEX ssf_streams_owner ON ssf_streams (owner, created_at);
-- One push stream per receiver and endpoint: a second one would deliver every SET twice.
CREATE UNIQUE INDEX ssf_streams_one_per_push_endpoint
    ON ssf_streams (owner, (config #>> '{delivery,endpoint_url}'))
    WHERE config #>> '{delivery,method}' = 'urn:ietf:rfc:8935';

-- Subjects added to or removed from a stream (SSF §8.1.3). default_subjects is ALL: a
-- stream covers every identity until a subject is added (subjects_listed), then only the
-- included ones; a removed subject is excluded either way.
CREATE TABLE ssf_stream_subjects (
    stream_id  text        NOT NULL REFERENCES ssf_streams ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('user_id', 'email')),
    value      text        NOT NULL,
    included   boolean     NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, kind, value),
    CHECK (kind <> 'email' OR value = lower(value))
);

-- Signed SETs waiting for (or past) delivery. Push: pending -> delivered | failed, retried
-- with backoff meanwhile. Poll: pending -> delivered (handed out, awaiting its ack, handed
-- out again after a while) -> acknowledged | failed (the receiver's setErrs).
CREATE TABLE ssf_set_queue (
    jti              text        PRIMARY KEY,
    stream_id        text        NOT NULL REFERENCES ssf_streams ON DELETE CASCADE,
    user_id          text,
    event_uri        text        NOT NULL,
    token            text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'delivered', 'acknowledged',
                                                   'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CHECK (status <> 'failed' OR last_error IS NOT NULL)
);
CREATE INDEX ssf_set_queue_due ON ssf_set_queue (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX ssf_set_queue_open ON ssf_set_queue (stream_id, created_at)
    WHERE status IN ('pending', 'delivered');
CREATE INDEX ssf_set_queue_closed ON ssf_set_queue (created_at)
    WHERE status IN ('acknowledged', 'failed');

-- Every SET the receiver accepted, by issuer and jti: a second one is a replay. Rows
-- older than the accepted age of a SET can go (a SET that old is refused as stale).
CREATE TABLE ssf_received_jtis (
    issuer       text        NOT NULL,
    jti          text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX ssf_received_jtis_age ON ssf_received_jtis (received_at);
