-- Tenants: the applied state of a node is per tenant and extension, since two tenants
-- may both have extension 100 (two objects on the host: `100` and `acme-100`). Every
-- row from before tenants is the default tenant's, whose objects keep their names.
ALTER TABLE applied_extensions ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE applied_extensions DROP CONSTRAINT applied_extensions_pkey;
ALTER TABLE applied_extensions ADD PRIMARY KEY (node, tenant, number);
