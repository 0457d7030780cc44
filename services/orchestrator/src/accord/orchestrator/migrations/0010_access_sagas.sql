-- Access grants are provisioned as group memberships by two more workflows: access_grant
-- (add_member steps) and access_revoke (remove_member steps). Steps and their operations
-- live in the state JSON, which no constraint reads, so only the saga types change.
ALTER TABLE sagas DROP CONSTRAINT sagas_saga_type_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_saga_type_check
    CHECK (saga_type IN ('joiner', 'mover', 'reactivation', 'leaver', 'access_grant',
                         'access_revoke'));
