-- A failed saga heals when a late success arrives for a failed step (a dead letter replayed
-- after its target recovered): it stays failed while other steps are failed, and completes
-- once none is.
CREATE OR REPLACE FUNCTION sagas_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
