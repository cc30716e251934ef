-- The audit log read by who wrote it (`GET /audit?actor=`, the console's Actor filter):
-- newest first, as every read of the log is.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
