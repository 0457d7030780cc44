-- default_subjects is ALL (SSF 1.0 §7.1): every subject is in a stream unless the receiver
-- removed it, and adding one only undoes its removal. The first subjects:add used to turn a
-- stream into an allow-list of the added subjects (subjects_listed); it no longer does.
ALTER TABLE ssf_streams DROP COLUMN subjects_listed;
