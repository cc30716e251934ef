-- Tenant-bound tokens, and the tenant of every audit row.
--
-- A token with a tenant sees and changes only that tenant (NULL: unbound, every tenant,
-- as every token before). A tenant's tokens go with it: a deleted tenant has no users
-- left for them to act on.
ALTER TABLE api_tokens
    ADD COLUMN tenant_id bigint REFERENCES tenants (id) ON DELETE CASCADE;

-- The tenant an audit row is about: that of the user the action touched, else of the
-- token it created or revoked, else of the token that acted (an apply, an import). NULL:
-- none (a row of an unbound caller about no user), seen by unbound callers only. A deleted
-- tenant's rows stay, about no tenant.
ALTER TABLE audit_log
    ADD COLUMN tenant_id bigint REFERENCES tenants (id) ON DELETE SET NULL;
-- Rows from before: the tenant of the user when it still exists. A deleted user's rows
-- cannot be placed and stay NULL (unbound callers see them, as before).
UPDATE audit_log a SET tenant_id = u.tenant_id FROM users u WHERE u.id = a.user_id;
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);

-- Whatever writes an audit row without a tenant (an apply, an import's summary) gets the
-- acting token's: everything a tenant-bound token does is its tenant's. The token is live
-- (it has just been checked), so its name finds one row.
CREATE FUNCTION portal_audit_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id IS NULL THEN
        SELECT t.tenant_id INTO NEW.tenant_id
          FROM api_tokens t WHERE t.name = NEW.actor AND t.revoked_at IS NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_tenant BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION portal_audit_tenant();
