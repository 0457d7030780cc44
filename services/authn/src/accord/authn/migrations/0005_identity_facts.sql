-- Authn's identities as three facts, each with the sequence of the event that last set it
-- (accord.authn.domain.identity): an identity's user.* events travel on five topics that
-- Kafka does not order against each other, and the same events must leave the same
-- identity whatever order they are consumed in. A newer user.updated no longer hides an
-- older user.deactivated's or user.deleted's effect, and an update never brings a deleted
-- identity back. `status` is what the facts say and `sequence` the newest of the three;
-- the database holds both to that.
ALTER TABLE identities
    ADD COLUMN profile_sequence bigint,
    ADD COLUMN active boolean,
    ADD COLUMN active_sequence bigint,
    ADD COLUMN deleted boolean,
    ADD COLUMN deleted_sequence bigint;
UPDATE identities SET
    profile_sequence = sequence,
    active = status = 'active',
    active_sequence = sequence,
    deleted = status = 'deleted',
    deleted_sequence = sequence;
ALTER TABLE identities
    ALTER COLUMN profile_sequence SET NOT NULL,
    ALTER COLUMN active SET NOT NULL,
    ALTER COLUMN active_sequence SET NOT NULL,
    ALTER COLUMN deleted SET NOT NULL,
    ALTER COLUMN deleted_sequence SET NOT NULL,
    ADD CONSTRAINT identities_status_of_facts CHECK (
        status = CASE WHEN deleted THEN 'deleted' WHEN active THEN 'active' ELSE 'inactive' END
    ),
    ADD CONSTRAINT identities_sequence_newest CHECK (
        sequence = greatest(profile_sequence, active_sequence, deleted_sequence)
    );
