-- Per-tenant apply: an apply may cover one tenant's changes only. Its audit row says which
-- (NULL: every tenant, as before), and a request to another node carries it so that node
-- applies the same tenant.
ALTER TABLE apply_audit_log ADD COLUMN tenant text;
ALTER TABLE apply_requests ADD COLUMN tenant text;
