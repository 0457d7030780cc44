-- One executor for account work (issue 22): a lifecycle workflow's account tasks (create,
-- update, enable, disable, delete accounts; add or remove a group membership) run as sagas
-- of type workflow_task, queued with the identity's other sagas, instead of provisioning
-- requests of their own. The task's intent (operation, targets, created disabled) lives in
-- the saga's state document; only the type is new here.
ALTER TABLE sagas DROP CONSTRAINT sagas_saga_type_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_saga_type_check
    CHECK (saga_type IN ('joiner', 'mover', 'reactivation', 'leaver', 'access_grant',
                         'access_revoke', 'lockout', 'unlock', 'workflow_task'));
