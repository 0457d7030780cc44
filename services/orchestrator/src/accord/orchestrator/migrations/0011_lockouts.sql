-- Authentication risk: authn locks an identity (identity.locked) and the lockout saga
-- disables every account; an approved unlock (identity.unlocked) enables them again.
-- `locked_by` names the open lockout; while it is set no workflow enables an account.
ALTER TABLE identities ADD COLUMN locked_by text;
ALTER TABLE sagas DROP CONSTRAINT sagas_saga_type_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_saga_type_check
    CHECK (saga_type IN ('joiner', 'mover', 'reactivation', 'leaver', 'access_grant',
                         'access_revoke', 'lockout', 'unlock'));
