-- A request_entitlement task waits for authz's decision on its access request, and its
-- optional timeout is a wake-up like an approval's or a callback's (issue 22).
ALTER TABLE workflow_wakeups DROP CONSTRAINT workflow_wakeups_purpose_check;
ALTER TABLE workflow_wakeups ADD CONSTRAINT workflow_wakeups_purpose_check
    CHECK (purpose IN ('retry', 'wait', 'approval_timeout', 'callback_timeout', 'access_timeout'));
