-- Identity events that arrived before the identity itself (Kafka does not order events
-- across topics). They wait here and are applied, in sequence order, right after the
-- identity's user.created.
CREATE TABLE parked_events (
    event_id     text        PRIMARY KEY,
    user_id      text        NOT NULL,
    sequence     bigint      NOT NULL,
    event_type   text        NOT NULL,
    version      integer     NOT NULL,
    data         jsonb       NOT NULL,
    source       text        NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_events_user ON parked_events (user_id, sequence);
