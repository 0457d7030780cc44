-- A saga round whose steps get no answer in time fails them (a provisioner that is gone
-- must not leave a saga running for ever). The timer remembers which round it guards.
ALTER TABLE timers DROP CONSTRAINT timers_kind_check;
ALTER TABLE timers ADD CONSTRAINT timers_kind_check
    CHECK (kind IN ('saga_retry', 'saga_timeout', 'account_deletion'));
ALTER TABLE timers ADD COLUMN payload jsonb NOT NULL DEFAULT '{}';
CREATE INDEX timers_saga ON timers (saga_id, kind);
