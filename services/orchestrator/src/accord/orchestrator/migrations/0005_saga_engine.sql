-- The saga engine grows: movers, reactivations, compensation, operator retry and cancel,
-- and durable timers (a leaver's own retries, deletion after the retention period).
ALTER TABLE sagas DROP CONSTRAINT sagas_saga_type_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_saga_type_check
    CHECK (saga_type IN ('joiner', 'mover', 'reactivation', 'leaver'));
ALTER TABLE sagas DROP CONSTRAINT sagas_status_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_status_check
    CHECK (status IN ('running', 'compensating', 'completed', 'failed', 'cancelled'));
-- A listing cursor: newest first, stable under concurrent inserts.
ALTER TABLE sagas ADD COLUMN seq bigserial;
CREATE UNIQUE INDEX sagas_seq ON sagas (seq);
CREATE INDEX sagas_by_status ON sagas (status, seq);

-- The same status machine as the domain's TRANSITIONS: completed and cancelled are final,
-- a failed saga may only be retried (running) or cancelled.
CREATE OR REPLACE FUNCTION sagas_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'cancelled') THEN
        RAISE EXCEPTION 'saga % is % and cannot change', OLD.saga_id, OLD.status;
    END IF;
    IF OLD.status = 'failed' AND NEW.status NOT IN ('running', 'cancelled') THEN
        RAISE EXCEPTION 'failed saga % can only be retried or cancelled', OLD.saga_id;
    END IF;
    IF OLD.status = 'compensating' AND NEW.status NOT IN ('compensating', 'failed') THEN
        RAISE EXCEPTION 'compensating saga % can only finish failed', OLD.saga_id;
    END IF;
    IF NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'saga % version must advance by one', OLD.saga_id;
    END IF;
    RETURN NEW;
END $$;

-- Durable timers: due work that survives restarts. A timer is deleted in the transaction
-- that carries it out, so it fires once.
CREATE TABLE timers (
    timer_id        text        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('saga_retry', 'account_deletion')),
    subject_id      text        NOT NULL,
    saga_id         text,
    correlation_id  text        NOT NULL,
    due_at          timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX timers_due ON timers (due_at);
