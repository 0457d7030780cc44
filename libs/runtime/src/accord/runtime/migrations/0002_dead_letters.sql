-- Dead letters of work a later event can still get done (routes that name their work, e.g.
-- the provisioner's commands per account): handling a later event of the same work deletes
-- them, in its transaction, and resolves them in the DLQ, so operators see only what still
-- needs action. event_time is the dead letter's event time: only a later event resolves it.
CREATE TABLE dead_letters (
    consumer   text        NOT NULL,
    topic      text        NOT NULL,
    work_key   text        NOT NULL,
    event_id   text        NOT NULL,
    event_time timestamptz NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, work_key, event_id)
);
