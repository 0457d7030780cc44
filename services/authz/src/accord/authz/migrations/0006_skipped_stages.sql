-- A request that ends before its last stage (denied, expired) leaves its later stages
-- `skipped`: never opened, and nobody's to decide.
ALTER TABLE approval_stages DROP CONSTRAINT approval_stages_status_check;
ALTER TABLE approval_stages ADD CONSTRAINT approval_stages_status_check
    CHECK (status IN ('waiting', 'pending', 'approved', 'denied', 'expired', 'skipped'));
UPDATE approval_stages s SET status = 'skipped'
    FROM access_requests r
    WHERE r.request_id = s.request_id AND s.status = 'waiting'
      AND r.status IN ('denied', 'expired');
