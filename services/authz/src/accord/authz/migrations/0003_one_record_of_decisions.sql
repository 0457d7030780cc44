-- A decision is kept on its access request (status, reasons, decided_at); the separate
-- decisions table held the same facts twice.
DROP TABLE decisions;
