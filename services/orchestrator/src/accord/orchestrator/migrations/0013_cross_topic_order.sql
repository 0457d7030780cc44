-- Orders of two topics the registry must not depend on (issue 17, item 4).
-- The sequence of the identity's last status event (user.created, .deactivated,
-- .reactivated, .deleted): a user.deleted is judged against it, not against a newer
-- user.updated consumed first, so a deletion followed by a correction still removes the
-- accounts, whichever of the two topics is consumed first.
ALTER TABLE identities ADD COLUMN status_sequence bigint;
UPDATE identities SET status_sequence = sequence;
ALTER TABLE identities ALTER COLUMN status_sequence SET NOT NULL;

-- Lockouts that ended (identity.unlocked), remembered whatever the order: identity.locked
-- and identity.unlocked are two topics, and an unlock consumed before its lockout must keep
-- that late lockout from disabling the accounts. Lockout ids are never reused.
CREATE TABLE ended_lockouts (
    user_id     text        NOT NULL,
    lockout_id  text        NOT NULL,
    ended_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, lockout_id)
);
