-- One saga holds an identity at a time: while it runs or compensates, and while it is failed
-- but will retry by itself (a leaver must not run in the gap before a joiner's retry). The
-- domain decides (account_saga.holds_identity); the database refuses a second holder.
ALTER TABLE sagas ADD COLUMN holds_identity boolean NOT NULL DEFAULT false;
ALTER TABLE sagas ADD CONSTRAINT sagas_holder_is_unfinished
    CHECK (NOT holds_identity OR status IN ('running', 'compensating', 'failed'));

-- Sagas of earlier versions: one holder per identity, preferring the one in flight, then a
-- failed one whose own retry is due (a saga_retry timer), the oldest first.
UPDATE sagas SET holds_identity = true
WHERE saga_id IN (
    SELECT DISTINCT ON (s.subject_id) s.saga_id
    FROM sagas s
    WHERE s.status IN ('running', 'compensating')
       OR (s.status = 'failed' AND EXISTS (
            SELECT 1 FROM timers t WHERE t.saga_id = s.saga_id AND t.kind = 'saga_retry'))
    ORDER BY s.subject_id, (s.status = 'failed'), s.seq
);
CREATE UNIQUE INDEX sagas_one_holder ON sagas (subject_id) WHERE holds_identity;

-- An account Accord asked a target to create, with no success seen yet, is 'requested': the
-- create may have happened (an answer lost to a timeout, a dead letter replayed later). A
-- leaver disables or deletes it too; only evidence (a success, or a target that answers it
-- has no such account) settles it.
ALTER TABLE accounts ALTER COLUMN account_id DROP NOT NULL;
ALTER TABLE accounts DROP CONSTRAINT accounts_state_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_state_check
    CHECK (state IN ('active', 'disabled', 'requested'));
ALTER TABLE accounts ADD CONSTRAINT accounts_id_unless_requested
    CHECK ((account_id IS NULL) = (state = 'requested'));
