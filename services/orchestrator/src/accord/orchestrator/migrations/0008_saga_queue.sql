-- One saga at a time per identity: a saga that arrives while another is in flight waits
-- 'queued' and is planned when its turn comes.
ALTER TABLE sagas DROP CONSTRAINT sagas_status_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_status_check
    CHECK (status IN ('queued', 'running', 'compensating', 'completed', 'failed', 'cancelled'));
CREATE INDEX sagas_subject_status ON sagas (subject_id, status, seq);

CREATE OR REPLACE FUNCTION sagas_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'cancelled') THEN
        RAISE EXCEPTION 'saga % is % and cannot change', OLD.saga_id, OLD.status;
    END IF;
    IF OLD.status = 'queued' AND NEW.status NOT IN ('queued', 'running', 'completed', 'cancelled') THEN
        RAISE EXCEPTION 'queued saga % can only begin or be cancelled', OLD.saga_id;
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
