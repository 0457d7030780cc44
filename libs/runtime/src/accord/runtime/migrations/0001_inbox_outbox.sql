-- Inbox: an event id is recorded in the same transaction as its effect, so a redelivered
-- event is recognised and never applied twice.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    topic        text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, event_id)
);

-- Outbox: events caused by a state change commit with it; the relay publishes them in id
-- order and deletes them once the broker has acknowledged.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    event_id    text        NOT NULL,
    topic       text        NOT NULL,
    key         bytea       NOT NULL,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
