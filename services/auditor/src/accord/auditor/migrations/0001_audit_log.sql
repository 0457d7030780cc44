-- The audit log: one normalised row per event read from any topic (DLQs included).
-- Append-only: the trigger below refuses UPDATE and DELETE for every role.
CREATE TABLE audit_log (
    record_id        bigserial   PRIMARY KEY,
    source_event_id  text        NOT NULL,
    source_topic     text        NOT NULL,
    event_type       text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    actor            text        NOT NULL,
    subject          text        NOT NULL,
    target           text,
    outcome          text        NOT NULL CHECK (outcome IN ('success', 'failure', 'pending', 'info')),
    correlation_id   text        NOT NULL,
    trace_id         text,
    payload          jsonb       NOT NULL,
    UNIQUE (source_topic, source_event_id)
);
CREATE INDEX audit_log_correlation ON audit_log (correlation_id, record_id);
CREATE INDEX audit_log_subject ON audit_log (subject, record_id);
CREATE INDEX audit_log_type_time ON audit_log (event_type, occurred_at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
