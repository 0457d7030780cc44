-- The identity registry: the orchestrator's view of every identity, applied in
-- per-subject sequence order.
CREATE TABLE identities (
    user_id     text        PRIMARY KEY,
    user_name   text        NOT NULL UNIQUE,
    profile     jsonb       NOT NULL,
    status      text        NOT NULL CHECK (status IN ('active', 'inactive', 'deleted')),
    sequence    bigint      NOT NULL CHECK (sequence >= 0),
    source      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Durable sagas. The status machine is guarded here too: terminal sagas never change,
-- and writers must name the version they read (optimistic concurrency).
CREATE TABLE sagas (
    saga_id         text        PRIMARY KEY,
    saga_type       text        NOT NULL CHECK (saga_type IN ('joiner', 'mover', 'leaver')),
    subject_id      text        NOT NULL,
    correlation_id  text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    state           jsonb       NOT NULL,
    version         integer     NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_subject ON sagas (subject_id);

CREATE FUNCTION sagas_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'failed') THEN
        RAISE EXCEPTION 'saga % is % and cannot change', OLD.saga_id, OLD.status;
    END IF;
    IF NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'saga % version must advance by one', OLD.saga_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sagas_guard BEFORE UPDATE ON sagas FOR EACH ROW EXECUTE FUNCTION sagas_guard();
